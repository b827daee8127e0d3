//! `pennyblack milter`: the options become a `milter::Config`; the library serves it.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use pennyblack::MintRequest;
use pennyblack::Policy;
use pennyblack::dkim;
use pennyblack::milter::{Config, Inbound, Outbound, RejectWith};
use pennyblack::policy::lookup::PolicyCache;
use pennyblack::postage::CheckLimits;

use crate::Exit;
use crate::args::{MilterArgs, RejectWithArg};

pub fn run(a: MilterArgs) -> Result<Exit> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = a.threads.unwrap_or(cores);
    if threads == 0 || a.max_mints == 0 {
        bail!("--threads and --max-mints must be at least 1");
    }
    // One resolver for SPF, DMARC and postage policies, made only when one of them is on.
    let policies = a.postage_policy == crate::args::OnOff::On && !a.inbound_only;
    let dns = if policies || a.sender_auth == crate::args::OnOff::On {
        Some(Arc::new(crate::cmd::dns_lookup(
            a.key_source.dns_server,
            a.key_source.dns_timeout,
        )?))
    } else {
        None
    };
    let outbound = if a.inbound_only {
        None
    } else {
        let (alg, parts) = a.cost.alg_and_parts()?;
        crate::cmd::warn_receiver_cost(alg, parts);
        let request = MintRequest::new("-")
            .alg(alg)
            .bits(a.cost.bits)
            .parts(parts);
        request
            .validate()
            .map_err(|e| anyhow::anyhow!("outbound stamps: {e}"))?;
        let max_bits = crate::cmd::max_bits(a.max_bits, a.cost.bits)?;
        let (keys, canon) = crate::cmd::signing_keys(&a.sign)?;
        Some(Outbound {
            request,
            threads,
            max_mints: a.max_mints,
            timeout: a.mint_timeout,
            domain: a.sign.domain.clone().unwrap_or_default(),
            keys,
            canon,
            policies: dns
                .clone()
                .filter(|_| policies)
                .map(|d| Arc::new(PolicyCache::new(d))),
            max_bits,
            keep_sent: crate::cmd::sent_store(a.keep_sent.as_deref(), a.keep_for)?,
            wallet: match &a.wallet {
                Some(w) => Some(pennyblack::ticket::wallet::Wallet::open(w).context("--wallet")?),
                None => None,
            },
        })
    };
    if a.inbound_only && a.wallet.is_some() {
        bail!("--wallet pays for outbound mail: drop --inbound-only");
    }
    let tickets = match &a.tickets.ticket_server {
        Some(_) => {
            let client = crate::cmd::ticket::client(&a.tickets)?;
            let info = client
                .info()
                .context("--ticket-server: the service's keys are fetched at start")?;
            Some(pennyblack::milter::InboundTickets {
                trusted: info
                    .trusted_keys()
                    .context("--ticket-server's key records")?,
                service: Arc::new(client),
                timeout: a.tickets.ticket_timeout,
            })
        }
        None => None,
    };
    if a.inbound_only && a.keep_sent.is_some() {
        bail!("--keep-sent keeps outbound mail: drop --inbound-only");
    }
    if a.dmarc_enforce && a.sender_auth == crate::args::OnOff::Off {
        anyhow::bail!("--dmarc-enforce needs the DMARC check: drop --sender-auth off");
    }
    let store = crate::cmd::spent_store(&a.policy)?.map(Arc::from);
    if tickets.is_some() && store.is_none() {
        bail!(
            "--ticket-server needs the spent store (an accepted message's tickets are recorded \
             there, so the same message again is refused): drop --no-spent"
        );
    }
    let keys: Arc<dyn dkim::KeyLookup> = Arc::from(crate::cmd::key_lookup(&a.key_source)?);
    let authserv_id = match a.authserv_id.clone() {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_owned()),
    };
    // Refusals and challenges state the requirement in the policy syntax, where a value is 1
    // to 128: one outside it would be a requirement no sender's software can read.
    if a.reject_below.is_some()
        && let Some((alg, v)) = a
            .policy
            .min_value
            .iter()
            .find(|(_, v)| !(1..=128).contains(v))
    {
        bail!(
            "--min-value {alg}={v}: with --reject-below a value is 1 to 128 (the refusal states \
             it in the postage policy syntax)"
        );
    }
    let challenges = challenger(&a, &authserv_id)?;
    let inbound = Inbound {
        tickets,
        challenges,
        authserv_id,
        bits: Some(a.min_bits),
        policy: Policy {
            validity: a.policy.validity,
            grace: a.policy.grace,
            require_binding: a.require_binding,
            require_full_binding: a.require_full_binding,
            ..crate::cmd::cost_policy(&a.policy)
        },
        now: a.policy.now,
        store,
        fail_open: a.policy.spent_unavailable == crate::args::Unavailable::Accept,
        keys,
        dkim: dkim::VerifyOptions {
            honour_l: a.honour_l,
            max_signatures: a.max_signatures,
            ..dkim::VerifyOptions::default()
        },
        limits: CheckLimits {
            max_stamps: a.max_stamps,
        },
        reject_below: a.reject_below,
        reject_with: match a.reject_with {
            RejectWithArg::Reject => RejectWith::Reject,
            RejectWithArg::Tempfail => RejectWith::Tempfail,
        },
        replay_with: match a.replay_with {
            RejectWithArg::Reject => RejectWith::Reject,
            RejectWithArg::Tempfail => RejectWith::Tempfail,
        },
        sender_auth: match a.sender_auth {
            crate::args::OnOff::On => Some(pennyblack::milter::SenderAuth {
                dns: dns.clone().expect("made for --sender-auth on"),
                enforce_dmarc: a.dmarc_enforce,
            }),
            crate::args::OnOff::Off => None,
        },
    };
    let config = Config {
        outbound,
        inbound,
        internal: a.internal,
        originating: a.originating,
        max_size: a.max_size,
        log: !a.quiet,
        socket_mode: a.socket_mode,
    };
    let shared = config.into_shared();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listen = a.listen;
    // The milter protocol has no authentication: whoever can connect gets mail signed.
    match &listen {
        pennyblack::milter::Listen::Unix(_) if a.socket_mode & 0o007 != 0 => eprintln!(
            "pennyblack milter: WARNING: --socket-mode {:o} lets every local user connect, and \
             so get mail stamped and signed in your name: use 660 and the MTA's group",
            a.socket_mode
        ),
        pennyblack::milter::Listen::Inet(addr) if !addr.ip().is_loopback() => eprintln!(
            "pennyblack milter: WARNING: listening on {addr}, not loopback: anyone who can reach \
             it can get mail stamped and signed in your name; firewall it"
        ),
        _ => {}
    }
    let grace = a.shutdown_grace;
    runtime.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            eprintln!("pennyblack milter: signal received, no longer accepting connections");
        };
        let shown = listen.to_string();
        pennyblack::milter::serve(&listen, shared, shutdown, grace, || {
            eprintln!("pennyblack milter: listening on {shown}");
        })
        .await
        .with_context(|| format!("listening on {shown}"))
    })?;
    eprintln!("pennyblack milter: stopped");
    Ok(Exit::Ok)
}

/// The postage challenges of `--challenge-relay`: its key (made when missing), the signing
/// keys of --sign (required: an unsigned challenge would be ignored), the rates.
fn challenger(
    a: &MilterArgs,
    authserv_id: &str,
) -> Result<Option<Arc<pennyblack::milter::challenge::Challenger>>> {
    use pennyblack::milter::challenge::{ChallengeConfig, Challenger, load_or_create_key};
    let Some(relay) = &a.challenge_relay else {
        if a.challenge_key.is_some() || a.challenge_from.is_some() {
            bail!("--challenge-key and --challenge-from need --challenge-relay");
        }
        return Ok(None);
    };
    pennyblack::relay::parse_host_port(relay)?;
    let Some(key_path) = &a.challenge_key else {
        bail!("--challenge-relay needs --challenge-key FILE (the MAC key; made when missing)");
    };
    let (keys, canon) = crate::cmd::signing_keys(&a.sign)?;
    let domain = a.sign.domain.clone().unwrap_or_default();
    if keys.is_empty() || domain.is_empty() {
        bail!(
            "--challenge-relay needs --domain and --sign SELECTOR:KEYFILE: challenges are \
             DKIM-signed, and an unsigned one is ignored by the sender"
        );
    }
    let key = load_or_create_key(key_path)
        .with_context(|| format!("--challenge-key {}", key_path.display()))?;
    let (per_sender, period) = a.challenge_rate;
    Ok(Some(Arc::new(Challenger::new(ChallengeConfig {
        relay: relay.clone(),
        from: a
            .challenge_from
            .clone()
            .unwrap_or_else(|| format!("postmaster@{domain}")),
        helo: authserv_id.to_owned(),
        key,
        ttl: a.challenge_ttl,
        per_sender,
        per_domain: a.challenge_domain_rate,
        period,
        max_senders: 10_000,
        per_hour: a.challenge_per_hour,
        max_recent: 10_000,
        domain,
        keys,
        canon,
        timeout: std::time::Duration::from_secs(30),
    }))))
}

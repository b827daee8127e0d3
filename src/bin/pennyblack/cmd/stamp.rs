//! `pennyblack stamp`: stamps for every recipient, then DKIM signatures; all or nothing.

use std::io::Write;

use anyhow::{Context, Result, bail};
use pennyblack::MintRequest;

use crate::args::OnOff;
use pennyblack::mail::Message;
use pennyblack::ticket::message::{attach_fields, ticket_recipients};
use pennyblack::ticket::wallet::Wallet;

use crate::Exit;
use crate::args::StampArgs;

pub fn run(a: StampArgs) -> Result<Exit> {
    let (alg, parts) = a.cost.alg_and_parts()?;
    crate::cmd::warn_receiver_cost(alg, parts);
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    // Keys first: a bad key file fails before any work.
    let (keys, canon) = crate::cmd::signing_keys(&a.sign)?;
    let keep_sent = crate::cmd::sent_store(a.keep_sent.as_deref(), a.keep_for)?;
    let raw = crate::cmd::read_stdin(a.max_size)?;
    let msg = Message::parse(raw).context("reading the message")?;
    let mut recipients: Vec<String> = if a.only_rcpt {
        Vec::new()
    } else {
        msg.recipients()
    };
    for r in &a.rcpts {
        if !recipients.iter().any(|x| x.eq_ignore_ascii_case(r)) {
            recipients.push(r.clone());
        }
    }
    let request = MintRequest::new("-")
        .alg(alg)
        .bits(a.cost.bits)
        .parts(parts);
    let now = pennyblack::unix_now();
    // --wallet: a ticket for each recipient the header names, while the wallet lasts; the
    // others are stamped. Tickets taken are put back if the message is not written.
    let wallet = match &a.wallet {
        Some(w) => Some(Wallet::open(w).context("--wallet")?),
        None => None,
    };
    let mut with_ticket: Vec<(String, pennyblack::ticket::wallet::Bought)> = Vec::new();
    if let Some(w) = &wallet {
        let wanted = ticket_recipients(&msg, &recipients);
        let taken = w
            .take(wanted.len(), now)
            .with_context(|| format!("--wallet {}", w.path().display()))?;
        if taken.len() < wanted.len() && !a.quiet {
            eprintln!(
                "pennyblack: the wallet held {} of the {} ticket(s) wanted; the other recipients get stamps",
                taken.len(),
                wanted.len()
            );
        }
        with_ticket = wanted.into_iter().zip(taken).collect();
    }
    let signing = Signing {
        keys: &keys,
        canon,
        keep_sent: keep_sent.as_ref(),
    };
    let result = stamp_with(
        &a,
        msg,
        &recipients,
        &request,
        &signing,
        threads,
        &with_ticket,
        now,
    );
    if result.is_err()
        && let Some(w) = &wallet
    {
        let back: Vec<_> = with_ticket.into_iter().map(|(_, b)| b).collect();
        if let Err(e) = w.put_back(&back) {
            eprintln!(
                "pennyblack: {} ticket(s) could not be put back in the wallet: {e}",
                back.len()
            );
        }
    }
    result
}

/// The signing keys, canonicalization and the kept-messages store.
struct Signing<'a> {
    keys: &'a crate::cmd::SelectorKeys,
    canon: (pennyblack::dkim::Canon, pennyblack::dkim::Canon),
    keep_sent: Option<&'a pennyblack::sent::SentStore>,
}

/// Stamps (and pays with tickets) and signs `msg`, writes it out and keeps it as asked.
#[allow(clippy::too_many_arguments)]
fn stamp_with(
    a: &StampArgs,
    msg: Message,
    recipients: &[String],
    request: &MintRequest,
    signing: &Signing<'_>,
    threads: usize,
    with_ticket: &[(String, pennyblack::ticket::wallet::Bought)],
    now: i64,
) -> Result<Exit> {
    let original = msg;
    let tickets = attach_fields(&original, with_ticket)?;
    let msg = if tickets.is_empty() {
        original.clone()
    } else {
        Message::parse(original.with_fields_on_top(&tickets)).context("adding the tickets")?
    };
    let stamped: Vec<String> = recipients
        .iter()
        .filter(|r| {
            !with_ticket
                .iter()
                .any(|(t, _)| pennyblack::bind::same_address(t, r))
        })
        .cloned()
        .collect();
    let requests = per_recipient(a, &stamped, &msg.recipients(), request)?;
    let domain = a.sign.domain.as_deref().unwrap_or("");
    let (keys, canon) = (signing.keys, signing.canon);
    let signers = crate::cmd::sign_requests(domain, keys, canon, now);
    let mut minter = crate::cmd::interruptible_minter(threads, a.deadline);
    let progress = !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if progress {
        minter = minter.on_progress(std::time::Duration::from_secs(1), |p| {
            let secs = p.elapsed.as_secs_f64().max(1e-9);
            eprint!(
                "\r\x1b[2Kstamping: {:.0}% of a stamp's expected work, {:.1} M hashes/s, {}/{} parts",
                100.0 * p.attempts as f64 / p.expected,
                p.attempts as f64 / secs / 1e6,
                p.found,
                p.parts
            );
        });
    }
    let fields = if requests.is_empty() && !with_ticket.is_empty() {
        pennyblack::postage::sign_fields(&msg, &signers).map_err(anyhow::Error::from)
    } else {
        pennyblack::postage::stamp_fields_each(&msg, &requests, &minter, &signers)
            .map_err(anyhow::Error::from)
    };
    if progress {
        eprint!("\r\x1b[2K");
    }
    let out = msg.with_fields_on_top(&fields?);
    // --keep-sent: the message as read, so that a postage challenge can be answered.
    if let Some(store) = signing.keep_sent {
        let from = a.mail_from.as_deref().unwrap_or("");
        store
            .keep(from, recipients, &original, now)
            .context("--keep-sent")?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(Exit::Ok)
}

/// Each recipient's mint request: `request`, or with --postage-policy on what its domain's
/// policy asks within --max-bits (each deviation said on standard error, naming the domain
/// only: some recipients are Bcc). A recipient `visible` (To, Cc) does not name gets `request`:
/// its domain's cost would name its domain to every reader.
fn per_recipient(
    a: &StampArgs,
    recipients: &[String],
    visible: &[String],
    request: &MintRequest,
) -> Result<Vec<(String, MintRequest)>> {
    let same = || {
        recipients
            .iter()
            .map(|r| (r.clone(), request.clone()))
            .collect()
    };
    if a.postage_policy == OnOff::Off {
        return Ok(same());
    }
    let max_bits = crate::cmd::max_bits(a.max_bits, a.cost.bits)?;
    #[cfg(feature = "dns")]
    {
        use pennyblack::policy::lookup::{PolicyCache, requests_for};
        let dns = crate::cmd::dns_lookup(a.dns.dns_server, a.dns.dns_timeout)?;
        let cache = PolicyCache::new(std::sync::Arc::new(dns));
        let (requests, deviations) =
            requests_for(&cache, recipients, visible, request, max_bits, None);
        for d in deviations {
            eprintln!("pennyblack: warning: {d}");
        }
        Ok(requests)
    }
    #[cfg(not(feature = "dns"))]
    {
        let _ = (same, max_bits, visible);
        bail!("--postage-policy on needs the DNS: built without the `dns` feature")
    }
}

//! `pennyblack check`: DKIM and stamps of one message, reported as Authentication-Results: the
//! receiving side's decision ([`pennyblack::reception::judge`], as the milter makes it) printed.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use pennyblack::dkim;
use pennyblack::postage::{CheckLimits, Outcome};
use pennyblack::reception::{Action, Content, Decision, Envelope, Inbound, InboundTickets, Reason};
use pennyblack::ticket::message::TicketOutcome;
use pennyblack::{Policy, ResourcePattern};

use crate::Exit;
use crate::args::CheckArgs;

pub fn run(a: CheckArgs) -> Result<Exit> {
    let keys: Arc<dyn dkim::KeyLookup> = Arc::from(crate::cmd::key_lookup(&a.key_source)?);
    // Recipients are addresses (each paid on its own, never a pattern, added by the reception
    // engine); --resource adds the operator's own patterns.
    let policy = Policy {
        min_bits: a.bits,
        resources: a
            .resources
            .iter()
            .map(|r| ResourcePattern::new(r.as_str()))
            .collect(),
        validity: a.policy.validity,
        grace: a.policy.grace,
        require_binding: a.require_binding,
        require_full_binding: a.require_full_binding,
        ..crate::cmd::cost_policy(&a.policy)
    };
    // --ticket-server: the service's keys first (a receiver trusts the issuer it cancels at).
    let tickets = match &a.tickets.ticket_server {
        Some(_) => {
            if a.rcpts.is_empty() {
                bail!("--ticket-server needs the recipients: --rcpt ADDR");
            }
            let client = crate::cmd::ticket::client(&a.tickets)?;
            let info = client.info().context("--ticket-server")?;
            let trusted = info
                .trusted_keys()
                .context("--ticket-server's key records")?;
            Some(InboundTickets {
                trusted,
                service: Arc::new(client),
                timeout: a.tickets.ticket_timeout,
            })
        }
        None => None,
    };
    let mut inb = Inbound::new(&a.authserv_id, keys, policy);
    inb.now = a.policy.now;
    inb.store = crate::cmd::spent_store(&a.policy)?.map(Arc::from);
    inb.fail_open = a.policy.spent_unavailable == crate::args::Unavailable::Accept;
    inb.dkim = dkim::VerifyOptions {
        honour_l: a.honour_l,
        max_signatures: a.max_signatures,
        ..dkim::VerifyOptions::default()
    };
    inb.limits = CheckLimits {
        max_stamps: a.max_stamps,
    };
    inb.reject_below = a.reject_below;
    inb.tickets = tickets;
    // SPF and DMARC, with the SMTP session's facts.
    #[cfg(feature = "dns")]
    if a.sender.client_ip.is_some() {
        let dns = crate::cmd::dns_lookup(a.key_source.dns_server, a.key_source.dns_timeout)?;
        inb.sender_auth = Some(pennyblack::reception::SenderAuth {
            dns: Arc::new(dns),
            enforce_dmarc: false,
        });
    }
    #[allow(unused_mut)]
    let mut env = Envelope {
        recipients: a.rcpts.clone(),
        ..Envelope::default()
    };
    #[cfg(feature = "dns")]
    {
        env.client = a.sender.client_ip;
        env.helo = a.sender.helo.clone().unwrap_or_default();
        env.sender = a.sender.mail_from.clone().unwrap_or_default();
    }
    let raw = crate::cmd::read_stdin(a.max_size)?;
    let decision = pennyblack::reception::judge(&inb, &env, Content::Message(raw.clone()));
    let Some(found) = &decision.findings else {
        // Unreadable, or not checked for now (the spent store, the ticket service): an error.
        let why = decision.not_checked.as_deref().unwrap_or("not checked");
        if decision.reason == Reason::Unreadable {
            bail!("reading the message: {why}");
        }
        bail!("{why}");
    };
    let (v, tickets) = (&found.verdict, &found.tickets);
    let fields = &decision.fields;
    let tickets_service = inb.tickets.as_ref();
    let outcome = found.outcome;
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut json = serde_json::json!({
            "outcome": outcome,
            "hashcash": v.hashcash(),
            "dkim": v.dkim.iter().map(|d| serde_json::json!({
                "result": d.status.keyword(), "reason": d.status.reason(),
                "domain": d.domain, "selector": d.selector, "algorithm": d.algorithm,
            })).collect::<Vec<_>>(),
            "stamps": v.stamps.iter().map(|s| serde_json::json!({
                "stamp": s.verdict.stamp(), "valid": s.verdict.is_valid(),
                "reason": s.verdict.result().err().map(|e| e.to_string()),
                "value_bits": s.verdict.value, "bound_to": s.bound_to,
                "unchecked": s.verdict.unchecked.iter().map(|u| u.name()).collect::<Vec<_>>(),
                "pays_recipient": s.pays.map(|r| &v.recipients[r].address),
            })).collect::<Vec<_>>(),
            "recipients": v.recipients.iter().map(|r| serde_json::json!({
                "address": r.address, "result": r.outcome, "value_bits": r.value,
            })).collect::<Vec<_>>(),
            "skipped_stamps": v.skipped,
            "decision": decision_json(&decision),
        });
        if tickets_service.is_some() {
            json["tickets"] = tickets
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "recipient": t.address, "result": t.outcome.keyword(),
                        "reason": match &t.outcome {
                            TicketOutcome::Fail(w) | TicketOutcome::TempError(w) => Some(w),
                            _ => None,
                        },
                        "issuer": t.issuer, "signed_by": t.signed_by,
                    })
                })
                .collect();
        }
        #[cfg(feature = "dns")]
        if let (Some(spf), Some(dmarc)) = (&found.spf, &found.dmarc) {
            json["spf"] = serde_json::to_value(spf)?;
            json["dmarc"] = serde_json::to_value(dmarc)?;
            for (j, s) in json["stamps"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .zip(&v.stamps)
            {
                j["aligned"] = serde_json::Value::Bool(s.bound_to.as_ref().is_some_and(|d| {
                    dmarc
                        .aligned_signers
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(d))
                }));
            }
        }
        writeln!(out, "{json}")?;
    } else if a.verdict_only {
        for f in fields {
            out.write_all(f.as_bytes())?;
        }
    } else {
        // Our fields on top, the message as it came but for forgeries of them (fields below
        // that claim our authserv-id), which a reader could not tell from ours.
        let msg = pennyblack::mail::Message::parse(raw).context("reading the message")?;
        for f in fields {
            out.write_all(f.as_bytes())?;
        }
        out.write_all(&pennyblack::authres::without_forged(&msg, &a.authserv_id))?;
    }
    out.flush()?;
    Ok(match outcome {
        _ if matches!(decision.action, Action::Refuse(_)) => Exit::Invalid,
        Outcome::Pass => Exit::Ok,
        Outcome::Fail => Exit::Invalid,
        // No stamp, or valid but not fully checked (no --bits, no recipient, --no-spent).
        _ => Exit::NotFullyChecked,
    })
}

/// The decision as `check --json` reports it: what the receiver does with the message, why,
/// the reply it gives when it refuses, and each unpaid recipient's reason.
fn decision_json(d: &Decision) -> serde_json::Value {
    let (action, reply, hold, removed) = match &d.action {
        Action::Deliver { hold, remove } => ("deliver", None, hold.clone(), remove.clone()),
        Action::Refuse(r) => ("refuse", Some(r), None, Vec::new()),
        Action::Tempfail(r) => ("tempfail", Some(r), None, Vec::new()),
        Action::Discard => ("discard", None, None, Vec::new()),
    };
    serde_json::json!({
        "action": action,
        "reason": d.reason.keyword(),
        "reply": reply.map(|r| r.to_string()),
        "hold": hold,
        "removed_recipients": removed,
        "requirement": d.requirement,
        "unpaid": d.findings.iter().flat_map(|f| &f.unpaid).map(|(a, w)| serde_json::json!({
            "recipient": a, "reason": w,
        })).collect::<Vec<_>>(),
    })
}

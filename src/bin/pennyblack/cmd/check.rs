//! `pennyblack check`: DKIM and stamps of one message, reported as Authentication-Results.

use std::io::Write;

use anyhow::{Context, Result, bail};
use pennyblack::dkim;
use pennyblack::mail::Message;
use pennyblack::postage::{CheckLimits, Outcome, check_message};
use pennyblack::ticket::message::{
    TicketOutcome, cancel_tickets, offline_tickets, outcome_with_tickets, record_tickets,
};
use pennyblack::{Policy, ResourcePattern, SystemClock};

use crate::Exit;
use crate::args::CheckArgs;

pub fn run(a: CheckArgs) -> Result<Exit> {
    let keys = crate::cmd::key_lookup(&a.key_source)?;
    // Recipients are addresses (each paid on its own, never a pattern); --resource adds the
    // operator's own patterns.
    let policy = Policy {
        min_bits: a.bits,
        resources: a
            .rcpts
            .iter()
            .map(|r| ResourcePattern::address(r.as_str()))
            .chain(a.resources.iter().map(|r| ResourcePattern::new(r.as_str())))
            .collect(),
        validity: a.policy.validity,
        grace: a.policy.grace,
        require_binding: a.require_binding,
        ..crate::cmd::cost_policy(&a.policy)
    };
    let verifier = crate::cmd::verifier(policy, &a.policy)?;
    // --ticket-server: the service's keys first (a receiver trusts the issuer it cancels at).
    let tickets_service = match &a.tickets.ticket_server {
        Some(_) => {
            if a.rcpts.is_empty() {
                bail!("--ticket-server needs the recipients: --rcpt ADDR");
            }
            let client = crate::cmd::ticket::client(&a.tickets)?;
            let info = client.info().context("--ticket-server")?;
            let trusted = info
                .trusted_keys()
                .context("--ticket-server's key records")?;
            Some((client, trusted))
        }
        None => None,
    };
    let now = a
        .policy
        .now
        .unwrap_or_else(|| pennyblack::Clock::now(&SystemClock));
    let raw = crate::cmd::read_stdin(a.max_size)?;
    let msg = Message::parse(raw).context("reading the message")?;
    let opts = dkim::VerifyOptions {
        honour_l: a.honour_l,
        now,
        max_signatures: a.max_signatures,
        ..dkim::VerifyOptions::default()
    };
    let limits = CheckLimits {
        max_stamps: a.max_stamps,
    };
    let v = check_message(&msg, &verifier, keys.as_ref(), &opts, &limits)?;
    let eol = msg.eol();
    // Tickets pay for the recipients no stamp pays: checked offline, cancelled online.
    let mut tickets = match &tickets_service {
        Some((client, trusted)) => {
            let mut t = offline_tickets(
                &msg,
                &v.unpaid_recipients(a.bits.unwrap_or(0)),
                &v.dkim,
                trusted,
                now,
            );
            let deadline = std::time::Instant::now() + a.tickets.ticket_timeout;
            cancel_tickets(&mut t, client, Some(deadline));
            t
        }
        None => Vec::new(),
    };
    // Recorded as spent (with the stamps): the same message checked again is a replay.
    if let Some(store) = verifier.spent_store()
        && let Err(e) = record_tickets(store, &mut tickets, now)
        && !verifier.is_fail_open()
    {
        return Err(e).context("recording the tickets as spent");
    }
    // SPF and DMARC, with the SMTP session's facts.
    #[cfg(feature = "dns")]
    let sender = match a.sender.client_ip {
        Some(ip) => {
            use pennyblack::sender;
            let dns = crate::cmd::dns_lookup(a.key_source.dns_server, a.key_source.dns_timeout)?;
            let spf = sender::check_spf(
                &dns,
                &sender::SpfRequest {
                    client_ip: ip,
                    helo: a.sender.helo.clone().unwrap_or_default(),
                    mail_from: a.sender.mail_from.clone().unwrap_or_default(),
                    receiver: a.authserv_id.clone(),
                },
            );
            let dmarc = sender::check_dmarc(&dns, &msg, &v.dkim, &spf);
            Some((spf, dmarc))
        }
        None => None,
    };
    #[cfg(not(feature = "dns"))]
    let sender: Option<((), ())> = None;
    let mut fields: Vec<String> = match &sender {
        #[cfg(feature = "dns")]
        Some((spf, dmarc)) => [
            pennyblack::authres::sender_field(&a.authserv_id, &v, spf, dmarc, eol),
            pennyblack::authres::hashcash_field_aligned(
                &a.authserv_id,
                &v,
                a.bits,
                Some(&dmarc.aligned_signers),
                eol,
            ),
        ],
        _ => [
            pennyblack::authres::dkim_field(&a.authserv_id, &v, eol),
            pennyblack::authres::hashcash_field(&a.authserv_id, &v, a.bits, eol),
        ],
    }
    .into();
    if tickets_service.is_some() {
        fields.push(pennyblack::authres::ticket_field(
            &a.authserv_id,
            &tickets,
            eol,
        ));
    }
    let outcome = outcome_with_tickets(&v, &tickets);
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
        if let Some((spf, dmarc)) = &sender {
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
        for f in &fields {
            out.write_all(f.as_bytes())?;
        }
    } else {
        out.write_all(&msg.with_fields_on_top(&fields))?;
    }
    out.flush()?;
    Ok(match outcome {
        Outcome::Pass => Exit::Ok,
        Outcome::Fail => Exit::Invalid,
        // No stamp, or valid but not fully checked (no --bits, no recipient, --no-spent).
        _ => Exit::NotFullyChecked,
    })
}

//! Tickets on whole messages (feature `tickets`): a sender attaches one `X-Postage-Ticket:`
//! field per recipient ([`attach_fields`]); a receiver checks them offline and cancels them
//! online ([`check_tickets`]).
//!
//! Only recipients the message's To or Cc names get a ticket: the field names its recipient in
//! clear, and every recipient reads the header, so a Bcc recipient is paid with a stamp (whose
//! resource can be hidden) instead.

use crate::bind::{Binding, normalize_address, same_address};
use crate::dkim::{DkimResult, DkimStatus};
use crate::mail::{Message, format_field};
use crate::postage::BindingView;

use super::client::{Cancelled, ClientError};
use super::wallet::Bought;
use super::{Carried, TICKET_FIELD, TicketError, TrustedKeys};

/// At most this many `X-Postage-Ticket` fields of a message are parsed.
pub const MAX_TICKET_FIELDS: usize = 64;

/// The message's binding as a ticket's proof covers it.
pub fn binding_of(msg: &Message) -> String {
    Binding::of(&BindingView::new(msg)).encode()
}

/// The `X-Postage-Ticket:` fields paying for `rcpts` (each with a bought ticket), in order,
/// each ending in the message's line ending. Fails only for an address a ticket cannot carry.
pub fn attach_fields(msg: &Message, paid: &[(String, Bought)]) -> Result<Vec<String>, TicketError> {
    let binding = binding_of(msg);
    paid.iter()
        .map(|(rcpt, (ticket, secret))| {
            let c = Carried::new(ticket.clone(), secret, rcpt, &binding)?;
            Ok(format_field(TICKET_FIELD, &c.to_string(), msg.eol()))
        })
        .collect()
}

/// Which of `rcpts` a sender may pay with a ticket: those the message's To or Cc names, once
/// per address, in order.
pub fn ticket_recipients(msg: &Message, rcpts: &[String]) -> Vec<String> {
    let visible = msg.recipients();
    let mut out: Vec<String> = Vec::new();
    for r in rcpts {
        if visible.iter().any(|v| same_address(v, r)) && !out.iter().any(|o| same_address(o, r)) {
            out.push(r.clone());
        }
    }
    out
}

/// A receiver's ticket service: cancels a carried ticket for a recipient and a message.
pub trait Canceller: Send + Sync {
    /// Cancels `carried` for `rcpt` and the message whose binding is `binding`.
    fn cancel(
        &self,
        carried: &Carried,
        rcpt: &str,
        binding: &str,
    ) -> Result<Cancelled, ClientError>;
}

impl Canceller for super::client::Client {
    fn cancel(
        &self,
        carried: &Carried,
        rcpt: &str,
        binding: &str,
    ) -> Result<Cancelled, ClientError> {
        super::client::Client::cancel(self, carried, rcpt, binding)
    }
}

/// What a recipient's ticket came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketOutcome {
    /// Valid, and cancelled for this recipient and message (or cancelled so before: a retry).
    Pass {
        /// A retry of a cancel made before.
        repeat: bool,
    },
    /// Valid offline (signature, expiry, binding), not cancelled (yet): never paid.
    Valid,
    /// A ticket for the recipient, refused: why.
    Fail(String),
    /// The service could not be asked now: why.
    TempError(String),
    /// No ticket names the recipient.
    None,
}

impl TicketOutcome {
    /// The result keyword of `Authentication-Results` (`neutral`: valid, not cancelled).
    pub fn keyword(&self) -> &'static str {
        match self {
            TicketOutcome::Pass { .. } => "pass",
            TicketOutcome::Valid => "neutral",
            TicketOutcome::Fail(_) => "fail",
            TicketOutcome::TempError(_) => "temperror",
            TicketOutcome::None => "none",
        }
    }
}

/// One recipient's ticket verdict.
#[derive(Debug, Clone)]
pub struct RecipientTicket {
    /// The recipient.
    pub address: String,
    /// Whether the message's To or Cc names it (reports name only those).
    pub visible: bool,
    /// The outcome.
    pub outcome: TicketOutcome,
    /// The ticket's issuer, when a ticket names the recipient.
    pub issuer: Option<String>,
    /// The domain of a passing DKIM signature covering the ticket's field.
    pub signed_by: Option<String>,
    /// The ticket, when one names the recipient.
    pub ticket: Option<super::Ticket>,
    /// The ticket as carried, while it waits to be cancelled.
    carried: Option<Carried>,
}

impl RecipientTicket {
    /// Whether the recipient is paid by its ticket.
    pub fn paid(&self) -> bool {
        matches!(self.outcome, TicketOutcome::Pass { .. })
    }
}

/// Checks the tickets of `msg` for `rcpts` (the recipients no stamp pays) offline: for each,
/// the first ticket naming it must be a trusted issuer's, unexpired at `now`, and bound to this
/// very message; such a ticket is [`TicketOutcome::Valid`], for [`cancel_tickets`] to cancel.
/// One ticket (serial) naming two of the recipients is refused for both. At most
/// [`MAX_TICKET_FIELDS`] fields are read.
pub fn offline_tickets(
    msg: &Message,
    rcpts: &[String],
    dkim: &[DkimResult],
    trusted: &TrustedKeys,
    now: i64,
) -> Vec<RecipientTicket> {
    let fields: Vec<_> = msg.fields_named(TICKET_FIELD).collect();
    let total = fields.len();
    let parsed: Vec<(usize, Result<Carried, TicketError>)> = fields
        .iter()
        .take(MAX_TICKET_FIELDS)
        .enumerate()
        .map(|(i, f)| (i, Carried::parse(&f.value())))
        .collect();
    let visible = msg.recipients();
    let view = BindingView::new(msg);
    let mut out: Vec<RecipientTicket> = rcpts
        .iter()
        .map(|rcpt| {
            let norm = normalize_address(rcpt);
            let mut out = RecipientTicket {
                address: rcpt.clone(),
                visible: visible.iter().any(|v| same_address(v, rcpt)),
                outcome: TicketOutcome::None,
                issuer: None,
                signed_by: None,
                ticket: None,
                carried: None,
            };
            let Some((i, carried)) = parsed.iter().find_map(|(i, c)| match c {
                Ok(c) if normalize_address(&c.rcpt) == norm => Some((*i, c)),
                _ => None,
            }) else {
                return out;
            };
            out.issuer = Some(carried.ticket.issuer.clone());
            out.ticket = Some(carried.ticket.clone());
            let from_bottom = total - i;
            out.signed_by = dkim
                .iter()
                .find(|d| {
                    d.status == DkimStatus::Pass
                        && d.covers(&TICKET_FIELD.to_ascii_lowercase()) >= from_bottom
                })
                .map(|d| d.domain.clone());
            if let Err(e) = carried.ticket.verify(trusted, now) {
                out.outcome = TicketOutcome::Fail(e.to_string());
                return out;
            }
            if !Binding::decode(&carried.binding).is_some_and(|b| b.matches(&view)) {
                out.outcome = TicketOutcome::Fail("bound to another message".into());
                return out;
            }
            out.outcome = TicketOutcome::Valid;
            out.carried = Some(carried.clone());
            out
        })
        .collect();
    // One ticket for two recipients (two spellings of one address, or a copied field): neither.
    for a in 0..out.len() {
        let Some(serial) = out[a].ticket.as_ref().map(|t| (t.issuer.clone(), t.serial)) else {
            continue;
        };
        let twice = out.iter().enumerate().any(|(b, o)| {
            b != a
                && o.ticket
                    .as_ref()
                    .is_some_and(|t| (t.issuer.clone(), t.serial) == serial)
        });
        if twice {
            out[a].outcome = TicketOutcome::Fail("one ticket for two recipients".into());
            out[a].carried = None;
        }
    }
    out
}

/// Refuses the tickets whose binding leaves out fields a reader sees (a version-1 binding: see
/// [`crate::bind::Binding::is_full`]), for a receiver demanding full bindings; they are then
/// never cancelled.
pub fn refuse_partly_bound(tickets: &mut [RecipientTicket]) {
    for t in tickets.iter_mut() {
        let partly = t
            .carried
            .as_ref()
            .is_some_and(|c| !Binding::decode(&c.binding).is_some_and(|b| b.is_full()));
        if t.outcome == TicketOutcome::Valid && partly {
            t.outcome = TicketOutcome::Fail(
                "bound to its message without every field a reader sees".into(),
            );
            t.carried = None;
        }
    }
}

/// Cancels the [`TicketOutcome::Valid`] tickets with `service` (which checks each proof),
/// until `deadline`: a ticket the service refuses (403, 404, 409, 410) is `Fail`; one it could
/// not answer for (unreachable, a timeout, any other status) is `TempError`, and once that
/// happened, or the deadline passed, the others are `TempError` without asking, so a hung
/// service costs one timeout per message, not one per recipient.
pub fn cancel_tickets(
    tickets: &mut [RecipientTicket],
    service: &dyn Canceller,
    deadline: Option<std::time::Instant>,
) {
    let mut down: Option<String> = None;
    for t in tickets.iter_mut() {
        let Some(carried) = t.carried.take() else {
            continue;
        };
        if down.is_none() && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            down = Some("the ticket service took too long".into());
        }
        if let Some(why) = &down {
            t.outcome = TicketOutcome::TempError(why.clone());
            continue;
        }
        t.outcome = match service.cancel(&carried, &t.address, &carried.binding) {
            Ok(c) => TicketOutcome::Pass { repeat: c.repeat },
            Err(ClientError::Refused { status, error, .. })
                if matches!(status, 403 | 404 | 409 | 410) =>
            {
                TicketOutcome::Fail(format!("{status}: {error}"))
            }
            Err(e) => {
                let why = match e {
                    ClientError::Refused { status, error, .. } => format!("{status}: {error}"),
                    _ => "the ticket service could not be reached".to_owned(),
                };
                down = Some(why.clone());
                TicketOutcome::TempError(why)
            }
        };
    }
}

/// [`offline_tickets`], then [`cancel_tickets`] without a deadline (each request has the
/// client's own timeout).
pub fn check_tickets(
    msg: &Message,
    rcpts: &[String],
    dkim: &[DkimResult],
    trusted: &TrustedKeys,
    service: &dyn Canceller,
    now: i64,
) -> Vec<RecipientTicket> {
    let mut t = offline_tickets(msg, rcpts, dkim, trusted, now);
    cancel_tickets(&mut t, service, None);
    t
}

/// The message's outcome with its tickets: each recipient is paid by a valid stamp (its stamp
/// outcome) or by its ticket (pass); a ticket refused for a recipient no stamp names is a fail
/// (a ticket the service could not be asked about leaves the recipient unpaid: none);
/// then as [`crate::postage::MessageVerdict::outcome`]: fail if a signature failed or some
/// recipient fails, none if some recipient has neither, neutral if some check was not made.
pub fn outcome_with_tickets(
    v: &crate::postage::MessageVerdict,
    tickets: &[RecipientTicket],
) -> crate::postage::Outcome {
    use crate::postage::Outcome;
    if tickets.is_empty() || v.recipients.is_empty() {
        return v.outcome();
    }
    let dkim_failed = v
        .dkim
        .iter()
        .any(|d| matches!(d.status, DkimStatus::Fail(_)));
    let per: Vec<Outcome> = v
        .recipients
        .iter()
        .map(|r| match tickets.iter().find(|t| t.address == r.address) {
            Some(t) if t.paid() => Outcome::Pass,
            Some(t)
                if r.outcome == Outcome::None && matches!(t.outcome, TicketOutcome::Fail(_)) =>
            {
                Outcome::Fail
            }
            _ => r.outcome,
        })
        .collect();
    if dkim_failed {
        Outcome::Fail
    } else {
        crate::postage::worst(per.into_iter())
    }
}

/// The recipients neither a valid stamp of at least `bits` nor a cancelled ticket pays.
pub fn unpaid_with_tickets(
    v: &crate::postage::MessageVerdict,
    bits: u32,
    tickets: &[RecipientTicket],
) -> Vec<String> {
    v.unpaid_recipients(bits)
        .into_iter()
        .filter(|r| !tickets.iter().any(|t| &t.address == r && t.paid()))
        .collect()
}

/// The spent-store key of a ticket: its issuer and serial.
pub fn ticket_spent_key(ticket: &super::Ticket) -> crate::spent::SpentKey {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"pennyblack spent-key ticket\0");
    h.update(ticket.issuer.to_ascii_lowercase().as_bytes());
    h.update([0]);
    h.update(ticket.serial);
    h.finalize().into()
}

/// Records the tickets that paid (each until its expiry and a day) in `store`, all or none, as
/// the message carrying them is accepted: a ticket cancelled again for the same recipient and
/// message is the sender's retry of a refused message (the service says so, and it passes),
/// but once the message was accepted, the same message again is a replay. The tickets found
/// recorded before are marked failed (a replay); returns whether all were fresh. A store that
/// fails is an error.
pub fn record_tickets(
    store: &dyn crate::SpentStore,
    tickets: &mut [RecipientTicket],
    now: i64,
) -> Result<bool, crate::Error> {
    let paid: Vec<usize> = (0..tickets.len())
        .filter(|&i| tickets[i].paid() && tickets[i].ticket.is_some())
        .collect();
    if paid.is_empty() {
        return Ok(true);
    }
    let items: Vec<crate::spent::Spend> = paid
        .iter()
        .map(|&i| {
            let t = tickets[i].ticket.as_ref().expect("paid tickets are known");
            crate::spent::Spend {
                key: ticket_spent_key(t),
                legacy: None,
                date: None,
                keep_until: t.expires.saturating_add(86_400),
            }
        })
        .collect();
    let fresh = store.spend_if_all_fresh(&items, now)?;
    let mut all = true;
    for (&i, f) in paid.iter().zip(fresh) {
        if !f {
            all = false;
            tickets[i].outcome = TicketOutcome::Fail(
                "a replay: a message with this ticket was accepted before".into(),
            );
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ticket::Issuer;

    /// A service that answers from a script and counts what it was asked.
    struct Script {
        asked: Mutex<Vec<String>>,
        answer: fn(&str) -> Result<Cancelled, ClientError>,
    }

    impl Canceller for Script {
        fn cancel(&self, _: &Carried, rcpt: &str, _: &str) -> Result<Cancelled, ClientError> {
            self.asked.lock().unwrap().push(rcpt.to_owned());
            (self.answer)(rcpt)
        }
    }

    fn script(answer: fn(&str) -> Result<Cancelled, ClientError>) -> Script {
        Script {
            asked: Mutex::new(Vec::new()),
            answer,
        }
    }

    const MSG: &str = "From: a@example.org\r\nTo: b@example.net, c@example.net, d@example.net\r\n\
Subject: s\r\n\r\nbody\r\n";

    fn issuer() -> Issuer {
        Issuer::new("tickets.example.org", "k1", [1; 32], [2; 32]).unwrap()
    }

    /// MSG with tickets for `rcpts` (serials 1, 2, ...), expiring at `exp`.
    fn paid(rcpts: &[&str], exp: i64) -> Message {
        let msg = Message::parse(MSG.as_bytes().to_vec()).unwrap();
        let bought: Vec<(String, Bought)> = rcpts
            .iter()
            .zip(1u8..)
            .map(|(r, n)| ((*r).to_owned(), issuer().issue([n; 16], exp)))
            .collect();
        let fields = attach_fields(&msg, &bought).unwrap();
        Message::parse(msg.with_fields_on_top(&fields)).unwrap()
    }

    fn trusted() -> TrustedKeys {
        let mut t = TrustedKeys::new();
        t.add_record("tickets.example.org", &issuer().key_record())
            .unwrap();
        t
    }

    fn rcpts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn offline_refusals_never_reach_the_service() {
        let ok = script(|_| Ok(Cancelled { repeat: false }));
        // Expired, an untrusted issuer, another message: refused before the service is asked.
        let msg = paid(&["b@example.net"], 1000);
        let v = check_tickets(&msg, &rcpts(&["b@example.net"]), &[], &trusted(), &ok, 2000);
        assert!(matches!(&v[0].outcome, TicketOutcome::Fail(w) if w.contains("expired")));
        let msg = paid(&["b@example.net"], 5000);
        let v = check_tickets(
            &msg,
            &rcpts(&["b@example.net"]),
            &[],
            &TrustedKeys::new(),
            &ok,
            0,
        );
        assert!(matches!(&v[0].outcome, TicketOutcome::Fail(w) if w.contains("no trusted key")));
        let lifted = String::from_utf8(msg.as_bytes().to_vec())
            .unwrap()
            .replace("body", "another body");
        let lifted = Message::parse(lifted.into_bytes()).unwrap();
        let v = check_tickets(&lifted, &rcpts(&["b@example.net"]), &[], &trusted(), &ok, 0);
        assert_eq!(
            v[0].outcome,
            TicketOutcome::Fail("bound to another message".into())
        );
        assert!(ok.asked.lock().unwrap().is_empty());
        // The genuine one is cancelled for its recipient only; a recipient without a ticket
        // is none, and a ticket for someone else pays nobody else.
        let v = check_tickets(
            &msg,
            &rcpts(&["B@Example.net", "c@example.net"]),
            &[],
            &trusted(),
            &ok,
            0,
        );
        assert_eq!(v[0].outcome, TicketOutcome::Pass { repeat: false });
        assert_eq!(v[1].outcome, TicketOutcome::None);
        assert_eq!(*ok.asked.lock().unwrap(), ["B@Example.net"]);
        // One ticket for two spellings of one address: neither is paid, nothing is asked.
        let v = check_tickets(
            &msg,
            &rcpts(&["b@example.net", "B@EXAMPLE.NET"]),
            &[],
            &trusted(),
            &ok,
            0,
        );
        for t in &v {
            assert_eq!(
                t.outcome,
                TicketOutcome::Fail("one ticket for two recipients".into())
            );
        }
        assert_eq!(ok.asked.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_full_binding_policy_refuses_tickets_bound_the_version_one_way() {
        let msg = paid(&["b@example.net"], 5000);
        let mut v = offline_tickets(&msg, &rcpts(&["b@example.net"]), &[], &trusted(), 0);
        refuse_partly_bound(&mut v);
        assert_eq!(
            v[0].outcome,
            TicketOutcome::Valid,
            "today's tickets are fully bound"
        );
        // A ticket carried under a version-1 binding (fields absent at sending may be added).
        let plain = Message::parse(MSG.as_bytes().to_vec()).unwrap();
        let old = Binding::of_v1(&BindingView::new(&plain)).encode();
        let (ticket, secret) = issuer().issue([7; 16], 5000);
        let carried = Carried::new(ticket, &secret, "b@example.net", &old).unwrap();
        let field = format_field(TICKET_FIELD, &carried.to_string(), plain.eol());
        let msg = Message::parse(plain.with_fields_on_top(&[field])).unwrap();
        let mut v = offline_tickets(&msg, &rcpts(&["b@example.net"]), &[], &trusted(), 0);
        assert_eq!(v[0].outcome, TicketOutcome::Valid);
        refuse_partly_bound(&mut v);
        assert!(
            matches!(&v[0].outcome, TicketOutcome::Fail(w) if w.contains("every field a reader sees")),
            "{:?}",
            v[0].outcome
        );
        // Refused, it is never cancelled.
        let ok = script(|_| Ok(Cancelled { repeat: false }));
        cancel_tickets(&mut v, &ok, None);
        assert!(ok.asked.lock().unwrap().is_empty());
    }

    #[test]
    fn a_silent_service_is_asked_once_per_message() {
        let down = script(|_| {
            Err(ClientError::Unreachable {
                url: "http://127.0.0.1:1".into(),
                error: "timed out".into(),
            })
        });
        let list = ["b@example.net", "c@example.net", "d@example.net"];
        let msg = paid(&list, 5000);
        let v = check_tickets(&msg, &rcpts(&list), &[], &trusted(), &down, 0);
        assert!(
            v.iter()
                .all(|t| matches!(t.outcome, TicketOutcome::TempError(_)))
        );
        assert_eq!(down.asked.lock().unwrap().len(), 1);
        // A refusal (4xx) is a fail, and the service is still asked for the others.
        let used = script(|r| {
            if r.starts_with('b') {
                Err(ClientError::Refused {
                    url: String::new(),
                    status: 409,
                    error: "used".into(),
                })
            } else {
                Ok(Cancelled { repeat: true })
            }
        });
        let v = check_tickets(&msg, &rcpts(&list), &[], &trusted(), &used, 0);
        assert!(matches!(v[0].outcome, TicketOutcome::Fail(_)));
        assert_eq!(v[1].outcome, TicketOutcome::Pass { repeat: true });
        assert_eq!(used.asked.lock().unwrap().len(), 3);
    }

    #[test]
    fn an_accepted_message_s_tickets_are_a_replay_the_second_time() {
        let ok = script(|_| Ok(Cancelled { repeat: true }));
        let msg = paid(&["b@example.net", "c@example.net"], 5000);
        let list = rcpts(&["b@example.net", "c@example.net"]);
        let store = crate::spent::MemoryStore::new();
        let mut first = check_tickets(&msg, &list, &[], &trusted(), &ok, 0);
        assert!(record_tickets(&store, &mut first, 0).unwrap());
        assert!(first.iter().all(RecipientTicket::paid));
        let mut again = check_tickets(&msg, &list, &[], &trusted(), &ok, 0);
        assert!(!record_tickets(&store, &mut again, 0).unwrap());
        assert!(again.iter().all(|t| !t.paid()));
    }
}

//! The outbound judgement, apart from the milter protocol: what each recipient's stamp costs
//! (the recipient domains' postage policies), which recipients the message pays already, which
//! a ticket from the wallet pays, and the stamps and signatures it gets. The session
//! (`session.rs`) only runs these on a blocking thread within its timeout and turns the result
//! into milter actions.

use std::time::Instant;

use super::Outbound;
use crate::bind::same_address;
use crate::dkim::SignRequest;
use crate::mail::Message;
use crate::policy::lookup::{Deviation, requests_for};
use crate::postage::{StampError, sign_fields, stamp_fields_each};
use crate::{MintRequest, Minter};

/// What an outbound message gets: its new fields (signatures, stamps, tickets, in that order),
/// how many are stamps and tickets, and a note on the wallet for the log.
pub(super) struct Stamped {
    pub(super) fields: Vec<String>,
    pub(super) stamps: usize,
    pub(super) tickets: usize,
    pub(super) wallet_note: Option<String>,
}

/// Each recipient's mint request: with policies followed, what its domain asks (looked up by
/// `deadline`; hidden recipients get one cost the readers know, see
/// [`requests_for`]), else the configured cost; and the deviations to log.
pub(super) fn requests(
    out: &Outbound,
    rcpts: &[String],
    visible: &[String],
    deadline: Instant,
) -> (Vec<(String, MintRequest)>, Vec<Deviation>) {
    match &out.policies {
        Some(cache) => requests_for(
            cache,
            rcpts,
            visible,
            &out.request,
            out.max_bits,
            Some(deadline),
        ),
        None => (
            rcpts
                .iter()
                .map(|r| (r.clone(), out.request.clone()))
                .collect(),
            Vec::new(),
        ),
    }
}

/// Stamps (when `have_slot`: a minting slot was free in time) and signs `msg` for `rcpts`:
/// the recipients a valid stamp bound to it pays already are not paid twice, the wallet pays
/// those the header names while it lasts, and the others get stamps at their `requests`.
/// Returns the fields, or why not even a signature could be made (the message then goes on
/// as it came, its tickets back in the wallet); beside it, why it went unstamped, if it did.
pub(super) fn stamp_and_sign(
    out: &Outbound,
    msg: Message,
    rcpts: &[String],
    requests: Vec<(String, MintRequest)>,
    minter: &Minter,
    have_slot: bool,
) -> (Result<Stamped, StampError>, Option<StampError>) {
    let now = crate::clock::unix_now();
    let signers = SignRequest::each(&out.domain, &out.keys, out.canon, now);
    // Recipients the message already pays with a valid stamp bound to it, worth what this
    // relay would mint (`pennyblack answer` re-sending for a challenge, or `stamp` before
    // submission), are not paid twice; the message is signed all the same.
    let before = crate::postage::paid_already(&msg, &requests);
    let unpaid: Vec<String> = rcpts
        .iter()
        .filter(|r| !before.contains(r))
        .cloned()
        .collect();
    // Tickets next (--wallet): for the recipients the header names, while they last; the
    // message then carries them under its signatures.
    let (msg, tickets, wallet_note) = with_tickets(out.wallet.as_ref(), msg, &unpaid, now);
    let requests: Vec<_> = requests
        .into_iter()
        .filter(|(r, _)| !before.contains(r) && !tickets.paid.iter().any(|p| same_address(p, r)))
        .collect();
    let stamped = match have_slot {
        _ if requests.is_empty() => sign_fields(&msg, &signers).map(|f| (f, 0)),
        true => stamp_fields_each(&msg, &requests, minter, &signers).map(|f| (f, requests.len())),
        false => Err(StampError::Mint {
            // Never the addresses: some may be Bcc recipients, and this reaches the log.
            resource: format!("{} recipient(s)", rcpts.len()),
            error: crate::MintError::DeadlineExceeded(out.timeout),
        }),
    };
    let with = |(mut fields, stamps): (Vec<String>, usize)| {
        fields.extend(tickets.fields.iter().cloned());
        Stamped {
            fields,
            stamps,
            tickets: tickets.fields.len(),
            wallet_note: wallet_note.clone(),
        }
    };
    let result = match stamped {
        Ok(fields) => (Ok(with(fields)), None),
        Err(e) => (sign_fields(&msg, &signers).map(|f| with((f, 0))), Some(e)),
    };
    // Not even signed: the message goes on as it came, and its tickets back to the wallet.
    if result.0.is_err()
        && let Some(w) = &out.wallet
    {
        let _ = w.put_back(&tickets.bought);
    }
    result
}

/// The tickets a message carries for its recipients: the fields and the recipients paid.
#[derive(Default)]
struct Tickets {
    fields: Vec<String>,
    paid: Vec<String>,
    bought: Vec<crate::ticket::wallet::Bought>,
}

/// `msg` with tickets from `wallet` on top for the recipients its header names, as many as the
/// wallet holds; a note for the log when the wallet fell short or failed. Tickets taken but
/// not attached are put back.
fn with_tickets(
    wallet: Option<&crate::ticket::wallet::Wallet>,
    msg: Message,
    rcpts: &[String],
    now: i64,
) -> (Message, Tickets, Option<String>) {
    use crate::ticket::message::{attach_fields, ticket_recipients};
    let Some(wallet) = wallet else {
        return (msg, Tickets::default(), None);
    };
    let wanted = ticket_recipients(&msg, rcpts);
    if wanted.is_empty() {
        return (msg, Tickets::default(), None);
    }
    let taken = match wallet.take(wanted.len(), now) {
        Ok(t) => t,
        Err(e) => {
            return (
                msg,
                Tickets::default(),
                Some(format!("wallet: {e}; stamps instead")),
            );
        }
    };
    let note = (taken.len() < wanted.len()).then(|| {
        format!(
            "the wallet held {} of the {} ticket(s) wanted; stamps for the others",
            taken.len(),
            wanted.len()
        )
    });
    let paid: Vec<(String, _)> = wanted.into_iter().zip(taken).collect();
    let fields = match attach_fields(&msg, &paid) {
        Ok(f) => f,
        Err(e) => {
            let back: Vec<_> = paid.into_iter().map(|(_, b)| b).collect();
            let _ = wallet.put_back(&back);
            return (
                msg,
                Tickets::default(),
                Some(format!("tickets: {e}; stamps instead")),
            );
        }
    };
    match Message::parse(msg.with_fields_on_top(&fields)) {
        Ok(with) => (
            with,
            Tickets {
                fields,
                bought: paid.iter().map(|(_, b)| b.clone()).collect(),
                paid: paid.into_iter().map(|(r, _)| r).collect(),
            },
            note,
        ),
        Err(e) => {
            let back: Vec<_> = paid.into_iter().map(|(_, b)| b).collect();
            let _ = wallet.put_back(&back);
            (
                msg,
                Tickets::default(),
                Some(format!("tickets: {e}; stamps instead")),
            )
        }
    }
}

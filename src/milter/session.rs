//! One connection from the MTA: the state of its SMTP session and of the message in progress,
//! and the decisions made at the end of each message — outbound (stamp and sign) or inbound
//! (check, add our verdicts, remove forged ones, refuse under a rejection policy). The protocol
//! callbacks that fill this state are in `protocol.rs`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use miltr_common::actions::{Discard, Replycode};
use miltr_common::modifications::headers::{ChangeHeader, InsertHeader};
use miltr_common::modifications::quarantine::Quarantine;
use miltr_common::modifications::recipients::DeleteRecipient;
use miltr_common::modifications::{ModificationResponse, ModificationResponseBuilder};

use super::{RejectWith, Shared};
use crate::Minter;
use crate::bind::same_address;
use crate::dkim::{self, SignRequest};
use crate::mail::{Eol, Message};
use crate::policy::lookup::requests_for;
use crate::postage::{Outcome, check_message_if, sign_fields, stamp_fields_each};
use crate::ticket::message::{
    RecipientTicket, TicketOutcome, cancel_tickets, offline_tickets, outcome_with_tickets,
    record_tickets, unpaid_with_tickets,
};
use crate::verify::{Policy, ResourcePattern, Verifier};

/// One connection from the MTA: the state of the SMTP session and of the current message.
pub struct Session {
    pub(super) shared: Arc<Shared>,
    pub(super) leading_space: bool,
    /// Whether the MTA lets us remove recipients (SMFIF_DELRCPT was agreed).
    pub(super) delete_rcpt: bool,
    pub(super) client: Option<IpAddr>,
    /// The HELO/EHLO name of the SMTP session.
    pub(super) helo: String,
    pub(super) macros: HashMap<String, String>,
    /// Set when connect-stage macros arrived for the connect that follows.
    pub(super) connect_macros: bool,
    pub(super) msg: Msg,
}

/// The message in progress: envelope, header fields and body as the MTA passes them.
#[derive(Default)]
pub(super) struct Msg {
    pub(super) sender: String,
    pub(super) rcpts: Vec<String>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) size: usize,
    pub(super) too_big: bool,
    /// How many `Authentication-Results` fields arrived so far, and the positions (1-based
    /// among those) of the ones claiming our authserv-id: kept whatever the message's size, so
    /// forgeries are removed on every path.
    pub(super) authres_seen: u32,
    pub(super) forged: Vec<u32>,
    /// The envelope recipients as a set, for constant-time duplicate checks.
    pub(super) rcpt_set: HashSet<String>,
}

/// Errors end the connection (the MTA then applies its default action, e.g. tempfail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A worker thread died.
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

impl Session {
    /// A new connection.
    pub fn new(shared: Arc<Shared>) -> Self {
        Session {
            shared,
            leading_space: false,
            delete_rcpt: false,
            client: None,
            helo: String::new(),
            macros: HashMap::new(),
            connect_macros: false,
            msg: Msg::default(),
        }
    }

    pub(super) fn macro_value(&self, name: &str) -> &str {
        self.macros.get(name).map_or("", String::as_str)
    }

    /// Outbound only for a SASL-authenticated sender or an internal client; `--originating`
    /// may narrow that to some MTA daemons, never widen it.
    pub(super) fn is_outbound(&self) -> Option<&'static str> {
        let c = &self.shared.config;
        c.outbound.as_ref()?;
        let why = if !self.macro_value("{auth_authen}").is_empty() {
            "authenticated sender"
        } else if self
            .client
            .is_some_and(|ip| c.internal.iter().any(|n| n.contains(&ip)))
        {
            "internal client"
        } else {
            return None;
        };
        let daemon = self.macro_value("{daemon_name}");
        if !c.originating.is_empty() && !c.originating.iter().any(|d| d == daemon) {
            return None;
        }
        Some(why)
    }

    /// Forgets everything of the SMTP session: a reused connection (QUIT_NC) or a new one
    /// starts with no macro, client or message of an earlier session.
    pub(super) fn reset_session(&mut self) {
        self.macros.clear();
        self.client = None;
        self.helo.clear();
        self.msg = Msg::default();
    }

    /// Forgets the message and the macros that belong to it (queue id, SASL login: the MTA
    /// sends them again with the next MAIL FROM), keeping the connection's.
    pub(super) fn reset_message(&mut self) {
        self.msg = Msg::default();
        for k in [
            "i",
            "{auth_authen}",
            "{auth_type}",
            "{auth_author}",
            "{mail_addr}",
            "{rcpt_addr}",
        ] {
            self.macros.remove(k);
        }
    }

    /// The message as the MTA will deliver it: fields as received, CRLF line endings.
    fn raw_message(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(self.msg.size + 64);
        for (name, value) in &self.msg.headers {
            raw.extend_from_slice(name.as_bytes());
            raw.push(b':');
            if !self.leading_space {
                raw.push(b' ');
            }
            // Folded values arrive with bare LF (Postfix) or CRLF (Sendmail).
            let v = value.replace("\r\n", "\n").replace('\n', "\r\n");
            raw.extend_from_slice(v.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&self.msg.body);
        raw
    }

    /// A formatted field (`Name: value` folded, with line endings) as the milter protocol wants
    /// it: the value after the colon (with its leading space only if negotiated), LF folding.
    fn field_for_mta(&self, field: &str) -> (String, String) {
        let (name, value) = field.split_once(':').unwrap_or((field, ""));
        let value = value.trim_end_matches(['\r', '\n']).replace("\r\n", "\n");
        let value = if self.leading_space {
            value
        } else {
            value.strip_prefix(' ').unwrap_or(&value).to_owned()
        };
        (name.to_owned(), value)
    }

    /// Inserts `fields` at the top of the header, in their order.
    fn insert_on_top(&self, mods: &mut ModificationResponseBuilder, fields: &[String]) {
        for (i, f) in fields.iter().enumerate() {
            let (name, value) = self.field_for_mta(f);
            mods.push(InsertHeader::new(
                i as u32,
                name.as_bytes(),
                value.as_bytes(),
            ));
        }
    }

    pub(super) async fn outbound(
        &mut self,
        why: &str,
    ) -> Result<ModificationResponse, SessionError> {
        let shared = Arc::clone(&self.shared);
        let out = shared
            .config
            .outbound
            .as_ref()
            .expect("outbound configured");
        let qid = self.macro_value("i").to_owned();
        let started = Instant::now();
        let raw = self.raw_message();
        let msg = match Message::parse(raw) {
            Ok(m) => m,
            Err(e) => {
                shared.log(&qid, format_args!("outbound ({why}): not stamped: {e}"));
                return Ok(ModificationResponse::empty_continue());
            }
        };
        let rcpts = std::mem::take(&mut self.msg.rcpts);
        let to_keep = out
            .keep_sent
            .as_ref()
            .map(|_| (msg.clone(), self.msg.sender.clone(), rcpts.clone()));
        shared.log(
            &qid,
            format_args!(
                "outbound ({why}) from <{}>: minting {} stamp(s)",
                self.msg.sender,
                rcpts.len()
            ),
        );
        // Recipient domains' postage policies, within a quarter of the mint timeout (a failure:
        // the configured cost), looked up before waiting for a slot so no slot waits on the
        // DNS; slow name servers cannot use up the time the stamps need (review 19).
        let requests = match &out.policies {
            Some(cache) => {
                let (cache, list, request) =
                    (Arc::clone(cache), rcpts.clone(), out.request.clone());
                let (max_bits, deadline) = (out.max_bits, started + out.timeout / 4);
                let (requests, deviations) = tokio::task::spawn_blocking(move || {
                    requests_for(&cache, &list, &request, max_bits, Some(deadline))
                })
                .await
                .map_err(|e| SessionError::Worker(e.to_string()))?;
                for d in deviations {
                    shared.log(&qid, format_args!("outbound ({why}): {d}"));
                }
                requests
            }
            None => rcpts
                .iter()
                .map(|r| (r.clone(), out.request.clone()))
                .collect(),
        };
        let permit = match tokio::time::timeout(
            out.timeout.saturating_sub(started.elapsed()),
            Arc::clone(&shared.slots).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Some(p),
            _ => None,
        };
        let minter = Minter::new().threads(out.threads);
        let cancel = minter.cancel_flag();
        let left = out.timeout.saturating_sub(started.elapsed());
        let worker_shared = Arc::clone(&shared);
        let work = tokio::task::spawn_blocking(move || {
            let out = worker_shared.config.outbound.as_ref().expect("outbound");
            let now = crate::clock::unix_now();
            let signers: Vec<SignRequest<'_>> = out
                .keys
                .iter()
                .map(|(sel, key)| SignRequest {
                    domain: &out.domain,
                    selector: sel,
                    key,
                    canon: out.canon,
                    time: now,
                })
                .collect();
            // Recipients the message already pays with a valid stamp bound to it, worth what
            // this relay would mint (`pennyblack answer` re-sending for a challenge, or `stamp`
            // before submission), are not paid twice; the message is signed all the same.
            let before = crate::postage::paid_already(&msg, &requests);
            let unpaid: Vec<String> = rcpts
                .iter()
                .filter(|r| !before.contains(r))
                .cloned()
                .collect();
            // Tickets next (--wallet): for the recipients the header names, while they last;
            // the message then carries them under its signatures.
            let (msg, tickets, wallet_note) = with_tickets(out.wallet.as_ref(), msg, &unpaid, now);
            let requests: Vec<_> = requests
                .into_iter()
                .filter(|(r, _)| {
                    !before.contains(r) && !tickets.paid.iter().any(|p| same_address(p, r))
                })
                .collect();
            let stamped = match permit {
                _ if requests.is_empty() => sign_fields(&msg, &signers).map(|f| (f, 0)),
                Some(_permit) => stamp_fields_each(&msg, &requests, &minter, &signers)
                    .map(|f| (f, requests.len())),
                None => Err(crate::postage::StampError::Mint {
                    // Never the addresses: some may be Bcc recipients, and this reaches the log.
                    resource: format!("{} recipient(s)", rcpts.len()),
                    error: crate::MintError::DeadlineExceeded(out.timeout),
                }),
            };
            let with = |(mut f, n): (Vec<String>, usize)| {
                f.extend(tickets.fields.iter().cloned());
                (f, n, tickets.fields.len(), wallet_note.clone())
            };
            let result = match stamped {
                Ok(fields) => (Ok(with(fields)), None),
                Err(e) => (sign_fields(&msg, &signers).map(|f| with((f, 0))), Some(e)),
            };
            // Not even signed: the message goes on as it came, and its tickets back to the
            // wallet.
            if result.0.is_err()
                && let Some(w) = &out.wallet
            {
                let _ = w.put_back(&tickets.bought);
            }
            result
        });
        tokio::pin!(work);
        let (fields, mint_error) = tokio::select! {
            r = &mut work => r,
            () = tokio::time::sleep(left) => {
                cancel.store(true, Ordering::Relaxed);
                (&mut work).await
            }
        }
        .map_err(|e| SessionError::Worker(e.to_string()))?;
        if let Some(kept) = to_keep {
            self.keep_sent(&qid, kept).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let mut mods = ModificationResponse::builder();
        match fields {
            Ok((fields, stamps, tickets, wallet_note)) => {
                let signed = fields.len() - stamps - tickets;
                if let Some(note) = wallet_note {
                    shared.log(&qid, format_args!("outbound ({why}): {note}"));
                }
                match &mint_error {
                    None => shared.log(
                        &qid,
                        format_args!(
                            "outbound ({why}): {stamps} stamp(s), {tickets} ticket(s), {signed} signature(s) in {elapsed:.2}s"
                        ),
                    ),
                    Some(e) => shared.log(
                        &qid,
                        format_args!(
                            "outbound ({why}): passed UNSTAMPED after {elapsed:.2}s ({e}); {signed} signature(s)"
                        ),
                    ),
                }
                self.insert_on_top(&mut mods, &fields);
            }
            Err(e) => shared.log(
                &qid,
                format_args!("outbound ({why}): passed unstamped and unsigned: {e}"),
            ),
        }
        Ok(mods.contin())
    }

    /// `--keep-sent`: the outbound message as it came (before its stamps), for answering a
    /// postage challenge later. A failure is logged; the message goes on either way.
    async fn keep_sent(&self, qid: &str, (msg, sender, rcpts): (Message, String, Vec<String>)) {
        let shared = Arc::clone(&self.shared);
        let kept = tokio::task::spawn_blocking(move || {
            let store = shared.config.outbound.as_ref()?.keep_sent.as_ref()?;
            Some(store.keep(&sender, &rcpts, &msg, crate::clock::unix_now()))
        })
        .await;
        match kept {
            Ok(Some(Ok(_))) | Ok(None) => {}
            Ok(Some(Err(e))) => self
                .shared
                .log(qid, format_args!("outbound: not kept for answers: {e}")),
            Err(e) => self
                .shared
                .log(qid, format_args!("outbound: not kept for answers: {e}")),
        }
    }

    pub(super) async fn inbound(&mut self) -> Result<ModificationResponse, SessionError> {
        let shared = Arc::clone(&self.shared);
        let inb = &shared.config.inbound;
        let qid = self.macro_value("i").to_owned();
        let refuse = |why: &str| -> ModificationResponse {
            let code = match inb.reject_with {
                RejectWith::Reject => Replycode::new([5, 5, 0], [5, 7, 1], why),
                RejectWith::Tempfail => Replycode::new([4, 5, 1], [4, 7, 1], why),
            };
            ModificationResponse::builder().build(code)
        };
        // Forged verdicts in our name go on every path that delivers the message, and ours
        // are always added: the unchecked ones say why.
        let forged = std::mem::take(&mut self.msg.forged);
        // `drop`: envelope recipients who have the message already (through an answer to our
        // challenge) and are taken off this copy.
        let deliver_held =
            |session: &Self, fields: &[String], hold: Option<String>, drop: &[String]| {
                let mut mods = ModificationResponse::builder();
                for r in drop {
                    mods.push(DeleteRecipient::new(format!("<{r}>").as_bytes()));
                }
                // Highest position first: the MTA renumbers the fields after each removal.
                for &idx in forged.iter().rev() {
                    mods.push(ChangeHeader::new(idx, b"Authentication-Results", b""));
                }
                session.insert_on_top(&mut mods, fields);
                if let Some(why) = hold {
                    mods.push(Quarantine::new(why.as_bytes()));
                }
                mods.contin()
            };
        let deliver = |session: &Self, fields: &[String]| deliver_held(session, fields, None, &[]);
        let unchecked = |result: &str, why: &str| {
            crate::authres::unchecked_fields(&inb.authserv_id, result, why, Eol::Lf)
        };
        // --dmarc-enforce: a message that cannot be read cannot show its From domain's policy
        // is met, so it is refused (else one header line over 998 octets, or padding past
        // --max-size, would carry a p=reject spoof past the check: review 18).
        let enforce = inb.sender_auth.as_ref().is_some_and(|a| a.enforce_dmarc);
        if self.msg.too_big {
            shared.log(
                &qid,
                format_args!(
                    "inbound: larger than {} bytes, not checked",
                    shared.config.max_size
                ),
            );
            return Ok(match inb.reject_below {
                Some(_) => refuse("message too large to check its postage"),
                None if enforce => refuse("message too large to check its sender's DMARC policy"),
                None => deliver(
                    self,
                    &unchecked(
                        "permerror",
                        &format!(
                            "message larger than {} bytes, not checked",
                            shared.config.max_size
                        ),
                    ),
                ),
            });
        }
        let raw = self.raw_message();
        let rcpts = std::mem::take(&mut self.msg.rcpts);
        let worker_shared = Arc::clone(&shared);
        let delete_rcpt = self.delete_rcpt;
        // SPF needs the client's address: a session without one (a local pickup) gets none.
        let sender = self.msg.sender.clone();
        let spf_request = self.client.map(|ip| crate::sender::SpfRequest {
            client_ip: ip,
            helo: self.helo.clone(),
            mail_from: self.msg.sender.clone(),
            receiver: inb.authserv_id.clone(),
        });
        let checked = tokio::task::spawn_blocking(move || {
            let inb = &worker_shared.config.inbound;
            let msg = Message::parse(raw).map_err(|e| ("permerror", e.to_string()))?;
            let sender_auth = inb.sender_auth.as_ref();
            let spf = match (sender_auth, &spf_request) {
                (Some(a), Some(req)) => Some(crate::sender::check_spf(&a.dns, req)),
                _ => None,
            };
            // DMARC needs the DKIM results: it runs inside the acceptance test, before any stamp
            // is recorded, so a message refused for DMARC burns no stamp.
            let dmarc = std::sync::OnceLock::new();
            // Envelope recipients are addresses, never patterns: `RCPT TO:<*>` names only `*`.
            let resources: Vec<ResourcePattern> = rcpts
                .iter()
                .map(|r| ResourcePattern::address(r.as_str()))
                .collect();
            let policy = Policy {
                min_bits: inb.bits,
                resources,
                ..inb.policy.clone()
            };
            let mut verifier = Verifier::new(policy).fail_open(inb.fail_open);
            if let Some(now) = inb.now {
                verifier = verifier.with_clock(crate::FixedClock(now));
            }
            if let Some(store) = &inb.store {
                verifier = verifier.with_store(Arc::clone(store));
            }
            let opts = dkim::VerifyOptions {
                now: inb.now.unwrap_or_else(crate::clock::unix_now),
                ..inb.dkim
            };
            // The MTA retrying an original we refused, after the sender's answer to our challenge
            // delivered it: the recipients the answer paid have it, so this copy need not pay
            // for them, and they are taken off it (never delivered to twice, never unpaid). Only
            // when the MTA lets us remove recipients (else only a copy with none left, which is
            // discarded), only for plain addresses (the MTA removes a recipient by its exact
            // text), and never for a copy that carries an answer itself (the answer's own
            // retry, if a later filter refused it, must be delivered, not dropped) (review).
            let answer_now = crate::clock::unix_now();
            let challenger = inb.challenges.as_ref();
            let plain = |r: &str| {
                r.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"\"()<>[]:;,\\".contains(&b))
            };
            let mut done: Vec<String> = match challenger {
                Some(ch)
                    if inb.reject_below.is_some()
                        && ch.has_deliveries()
                        && !super::challenge::carries_our_answer(
                            &msg,
                            &sender,
                            ch.key(),
                            answer_now,
                        ) =>
                {
                    let had = ch.delivered_to(
                        &sender,
                        &crate::bind::body_digest(msg.body()),
                        crate::sent::message_id_of(&msg).as_deref(),
                        answer_now,
                    );
                    rcpts
                        .iter()
                        .filter(|r| plain(r) && had.iter().any(|d| d.eq_ignore_ascii_case(r)))
                        .cloned()
                        .collect()
                }
                _ => Vec::new(),
            };
            if !delete_rcpt && done.len() < rcpts.len() {
                done.clear();
            }
            let is_done = |r: &str| done.iter().any(|d| d == r);
            // The recipients no stamp pays at `bits`, but for those an answer paid already.
            let unpaid_here = |v: &crate::postage::MessageVerdict, bits: u32| -> Vec<String> {
                v.unpaid_recipients(bits)
                    .into_iter()
                    .filter(|r| !is_done(r))
                    .collect()
            };
            // Tickets pay for the recipients no stamp pays (at --reject-below, else --bits):
            // checked offline and cancelled online once, when the stamps' verdict is known.
            let ticket_bits = inb.reject_below.or(inb.bits).unwrap_or(0);
            let ticket_now = inb.now.unwrap_or_else(crate::clock::unix_now);
            let tickets = std::sync::Mutex::new(None::<Vec<RecipientTicket>>);
            let tickets_of = |v: &crate::postage::MessageVerdict| -> Vec<RecipientTicket> {
                tickets
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert_with(|| match &inb.tickets {
                        Some(t) => offline_tickets(
                            &msg,
                            &unpaid_here(v, ticket_bits),
                            &v.dkim,
                            &t.trusted,
                            ticket_now,
                        ),
                        None => Vec::new(),
                    })
                    .clone()
            };
            let unpaid_of = |v: &crate::postage::MessageVerdict, min: u32| -> Vec<String> {
                unpaid_with_tickets(v, min, &tickets_of(v))
                    .into_iter()
                    .filter(|r| !is_done(r))
                    .collect()
            };
            // Nothing is recorded as spent unless the message is going to be accepted.
            let paid_enough = |v: &crate::postage::MessageVerdict| {
                inb.reject_below
                    .is_none_or(|min| unpaid_of(v, min).is_empty())
            };
            // Tickets are cancelled only when the message would be accepted with them (every
            // recipient a stamp does not pay has a ticket valid offline), within the service's
            // timeout for the whole message: a refused message burns none of its tickets, and
            // a hung service cannot hold the message past the MTA's timeout (review 20).
            let deadline = inb
                .tickets
                .as_ref()
                .map(|t| std::time::Instant::now() + t.timeout);
            let cancelled = std::sync::atomic::AtomicBool::new(false);
            let cancel_if_accepted = |v: &crate::postage::MessageVerdict| {
                let Some(t) = &inb.tickets else {
                    return;
                };
                if cancelled.swap(true, Ordering::Relaxed) {
                    return;
                }
                tickets_of(v);
                let mut guard = tickets.lock().expect("not poisoned");
                let list = guard.as_mut().expect("looked at above");
                let would = inb.reject_below.is_none_or(|min| {
                    unpaid_here(v, min).iter().all(|r| {
                        list.iter()
                            .any(|x| &x.address == r && x.outcome == TicketOutcome::Valid)
                    })
                });
                if would {
                    cancel_tickets(list, t.service.as_ref(), deadline);
                }
            };
            let dmarc_of = |v: &crate::postage::MessageVerdict| match (sender_auth, &spf) {
                (Some(a), Some(spf)) => Some(
                    dmarc
                        .get_or_init(|| crate::sender::check_dmarc(&a.dns, &msg, &v.dkim, spf))
                        .clone(),
                ),
                _ => None,
            };
            let dmarc_refuses = |v: &crate::postage::MessageVerdict| {
                sender_auth.is_some_and(|a| a.enforce_dmarc)
                    && dmarc_of(v).is_some_and(|d| d.action() == crate::sender::DmarcPolicy::Reject)
            };
            let (v, accepted) = check_message_if(
                &msg,
                &verifier,
                inb.keys.as_ref(),
                &opts,
                &inb.limits,
                |v| {
                    if dmarc_refuses(v) {
                        return false;
                    }
                    cancel_if_accepted(v);
                    paid_enough(v)
                },
            )
            .map_err(|e| ("temperror", e.to_string()))?;
            // The accepted message's tickets are recorded in the spent store, after its stamps:
            // the same message again is a replay, while a retry of a refused one passes (the
            // service repeats its cancel). A store that fails is a temperror, as for stamps.
            if accepted
                && let (Some(store), Some(list)) =
                    (&inb.store, tickets.lock().expect("not poisoned").as_mut())
                && let Err(e) = record_tickets(store.as_ref(), list, ticket_now)
                && !inb.fail_open
            {
                return Err(("temperror", format!("recording the tickets: {e}")));
            }
            // A message accepted with an answer to one of our challenges: its MTA's retries of
            // the original are recognised for the recipients the answer paid.
            if accepted
                && let Some(ch) = challenger
                && let Some(d) =
                    super::challenge::answered_delivery(&msg, &sender, &rcpts, ch.key(), answer_now)
            {
                ch.record_delivery(d, answer_now);
            }
            let dmarc = dmarc_of(&v);
            let mut fields: Vec<String> = match (&spf, &dmarc) {
                (Some(spf), Some(dmarc)) => [
                    crate::authres::sender_field(&inb.authserv_id, &v, spf, dmarc, Eol::Lf),
                    crate::authres::hashcash_field_aligned(
                        &inb.authserv_id,
                        &v,
                        inb.bits,
                        Some(&dmarc.aligned_signers),
                        Eol::Lf,
                    ),
                ],
                _ => [
                    crate::authres::dkim_field(&inb.authserv_id, &v, Eol::Lf),
                    crate::authres::hashcash_field(&inb.authserv_id, &v, inb.bits, Eol::Lf),
                ],
            }
            .into();
            let paid = paid_enough(&v);
            let carried = tickets
                .lock()
                .expect("not poisoned")
                .clone()
                .unwrap_or_default();
            // Unpaid because the ticket service could not answer: try again later (451), never
            // a permanent refusal.
            if !paid
                && inb.reject_below.is_some()
                && let Some(why) = carried.iter().find_map(|t| match &t.outcome {
                    TicketOutcome::TempError(w) => Some(w.clone()),
                    _ => None,
                })
            {
                return Err(("temperror", format!("ticket service: {why}")));
            }
            if inb.tickets.is_some() {
                fields.push(crate::authres::ticket_field(
                    &inb.authserv_id,
                    &carried,
                    Eol::Lf,
                ));
            }
            let unpaid = inb.reject_below.map_or(0, |min| unpaid_of(&v, min).len());
            // What a postage challenge needs to know of a message refused for postage.
            let facts = match (&inb.challenges, inb.reject_below) {
                (Some(ch), Some(min)) if !paid => Some(super::challenge::Facts::of(
                    &msg,
                    &sender,
                    spf.as_ref().is_some_and(|s| {
                        s.result == crate::sender::SpfResult::Pass
                            && s.identity == crate::sender::SpfIdentity::MailFrom
                    }),
                    &v.dkim,
                    unpaid_of(&v, min),
                    ch.key(),
                    crate::clock::unix_now(),
                )),
                _ => None,
            };
            let summary = (v.recipients.len(), unpaid, paid);
            let action = match &dmarc {
                Some(d) if sender_auth.is_some_and(|a| a.enforce_dmarc) => {
                    Some((d.action(), d.from_domain.clone(), d.policy))
                }
                _ => None,
            };
            let mut sender_words = match (&spf, &dmarc) {
                (Some(s), Some(d)) => {
                    format!(" spf={} dmarc={}", s.result.keyword(), d.result.keyword())
                }
                _ => String::new(),
            };
            if inb.tickets.is_some() {
                let cancelled = carried.iter().filter(|t| t.paid()).count();
                sender_words.push_str(&format!(" tickets={cancelled}/{} cancelled", carried.len()));
            }
            Ok::<_, (&'static str, String)>((
                fields,
                v.hashcash(),
                outcome_with_tickets(&v, &carried),
                summary,
                action,
                sender_words,
                facts,
                if paid { done } else { Vec::new() },
            ))
        })
        .await
        .map_err(|e| SessionError::Worker(e.to_string()))?;
        let (
            fields,
            hashcash,
            outcome,
            (recipients, unpaid, paid),
            action,
            sender_words,
            facts,
            done,
        ) = match checked {
            Ok(c) => c,
            Err((result, e)) => {
                shared.log(&qid, format_args!("inbound: not checked ({result}): {e}"));
                return Ok(match inb.reject_below {
                    Some(_) if result == "temperror" => {
                        ModificationResponse::builder().build(Replycode::new(
                            [4, 5, 1],
                            [4, 7, 1],
                            "postage could not be checked now, try again later",
                        ))
                    }
                    Some(_) => refuse("the message could not be read to check its postage"),
                    None if enforce && result == "permerror" => {
                        refuse("the message could not be read to check its sender's DMARC policy")
                    }
                    None => deliver(self, &unchecked(result, &format!("not checked: {e}"))),
                });
            }
        };
        shared.log(
            &qid,
            format_args!(
                "inbound: x-hashcash={} dkim/overall={}{sender_words} recipients={recipients} unpaid={unpaid}",
                word(hashcash),
                word(outcome),
            ),
        );
        // Every envelope recipient pays on its own: one unpaid recipient refuses the message,
        // so no unpaid recipient is ever delivered to (and a message without any is refused).
        // The reply states the requirement in the policy syntax, for software to read
        // (`policy::requirement_in_reply`); an authenticated sender may get a challenge.
        if let Some(min) = inb.reject_below
            && (!paid || recipients == 0)
        {
            let req = super::challenge::requirement(
                min,
                &inb.policy.min_value,
                inb.policy.min_memory_kib,
            );
            if let (Some(ch), Some(facts)) = (&inb.challenges, facts) {
                ch.consider(&shared, &qid, facts, req.clone());
            }
            return Ok(refuse(&format!(
                "postage required [{req}] for {unpaid} of {recipients} recipient(s)"
            )));
        }
        // --dmarc-enforce: the author domain's policy for a DMARC fail (never a temperror).
        match action {
            Some((crate::sender::DmarcPolicy::Reject, domain, _)) => {
                shared.log(
                    &qid,
                    format_args!("inbound: refused, DMARC policy of {domain}"),
                );
                return Ok(ModificationResponse::builder().build(Replycode::new(
                    [5, 5, 0],
                    [5, 7, 1],
                    &format!("DMARC policy of {domain} refuses this message (p=reject)"),
                )));
            }
            Some((crate::sender::DmarcPolicy::Quarantine, domain, _)) => {
                shared.log(
                    &qid,
                    format_args!("inbound: quarantined, DMARC policy of {domain}"),
                );
                if done.len() < recipients {
                    return Ok(deliver_held(
                        self,
                        &fields,
                        Some(format!("DMARC policy of {domain}: quarantine")),
                        &done,
                    ));
                }
            }
            _ => {}
        }
        if !done.is_empty() {
            shared.log(
                &qid,
                format_args!(
                    "inbound: a retry of a message delivered through an answer to our challenge: {} of {recipients} recipient(s) have it{}",
                    done.len(),
                    if done.len() == recipients { ", discarded" } else { ", taken off" },
                ),
            );
            if done.len() == recipients {
                return Ok(ModificationResponse::builder().build(Discard));
            }
        }
        Ok(deliver_held(self, &fields, None, &done))
    }
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

fn word(o: Outcome) -> &'static str {
    o.keyword()
}

//! One connection from the MTA: the state of its SMTP session and of the message in progress,
//! and the translation at the end of each message of the judgement made elsewhere into milter
//! actions: outbound (`outbound.rs`: stamps, tickets, signatures, within `--mint-timeout`) or
//! inbound ([`crate::reception::judge`]: our verdicts added, forged ones removed, refusals).
//! The protocol callbacks that fill this state are in `protocol.rs`.

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

use super::Shared;
use crate::Minter;
use crate::mail::Message;

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
        // DNS; slow name servers cannot use up the time the stamps need.
        let requests = match &out.policies {
            Some(_) => {
                let (list, visible) = (rcpts.clone(), msg.recipients());
                let deadline = started + out.timeout / 4;
                let worker = Arc::clone(&shared);
                let (requests, deviations) = tokio::task::spawn_blocking(move || {
                    let out = worker.config.outbound.as_ref().expect("outbound");
                    super::outbound::requests(out, &list, &visible, deadline)
                })
                .await
                .map_err(|e| SessionError::Worker(e.to_string()))?;
                for d in deviations {
                    shared.log(&qid, format_args!("outbound ({why}): {d}"));
                }
                requests
            }
            None => super::outbound::requests(out, &rcpts, &[], started).0,
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
            // The slot is held until the stamps are minted.
            let _slot = &permit;
            super::outbound::stamp_and_sign(out, msg, &rcpts, requests, &minter, permit.is_some())
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
            Ok(super::outbound::Stamped {
                fields,
                stamps,
                tickets,
                wallet_note,
            }) => {
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

    /// Inbound: the message judged by [`crate::reception::judge`] on a blocking thread, its
    /// decision translated into milter actions. Forged verdicts in our name are removed on every
    /// path that delivers the message, and ours always added.
    pub(super) async fn inbound(&mut self) -> Result<ModificationResponse, SessionError> {
        use crate::reception::{Action, Content, Envelope};
        let shared = Arc::clone(&self.shared);
        let qid = self.macro_value("i").to_owned();
        let forged = std::mem::take(&mut self.msg.forged);
        let content = if self.msg.too_big {
            Content::TooLarge(shared.config.max_size)
        } else {
            Content::Message(self.raw_message())
        };
        let env = Envelope {
            client: self.client,
            helo: self.helo.clone(),
            sender: self.msg.sender.clone(),
            recipients: std::mem::take(&mut self.msg.rcpts),
            queue_id: qid.clone(),
            can_remove_recipients: self.delete_rcpt,
        };
        let worker = Arc::clone(&shared);
        let decision = tokio::task::spawn_blocking(move || {
            crate::reception::judge(&worker.config.inbound, &env, content)
        })
        .await
        .map_err(|e| SessionError::Worker(e.to_string()))?;
        shared.log(&qid, format_args!("inbound {}", decision.log));
        if let (Some(ch), Some((facts, req))) =
            (&shared.config.inbound.challenges, decision.challenge)
        {
            ch.consider(&shared, &qid, facts, req);
        }
        Ok(match decision.action {
            Action::Deliver { hold, remove } => {
                let mut mods = ModificationResponse::builder();
                for r in &remove {
                    mods.push(DeleteRecipient::new(format!("<{r}>").as_bytes()));
                }
                // Highest position first: the MTA renumbers the fields after each removal.
                for &idx in forged.iter().rev() {
                    mods.push(ChangeHeader::new(idx, b"Authentication-Results", b""));
                }
                self.insert_on_top(&mut mods, &decision.fields);
                if let Some(why) = hold {
                    mods.push(Quarantine::new(why.as_bytes()));
                }
                mods.contin()
            }
            Action::Refuse(r) | Action::Tempfail(r) => {
                let digit = |n: u16| (n % 10) as u8;
                let code = [digit(r.code / 100), digit(r.code / 10), digit(r.code)];
                let status = r.status.map(u16::from);
                ModificationResponse::builder().build(Replycode::new(code, status, &r.text))
            }
            Action::Discard => ModificationResponse::builder().build(Discard),
        })
    }
}

//! A mail filter for Postfix and Sendmail (the milter protocol, spoken by `miltr-server`).
//!
//! Per message the filter either stamps and signs (outbound: a SASL-authenticated sender or a
//! client in an internal network, optionally narrowed to the MTA daemons named as originating)
//! or checks (everything else), with the same library calls as the `stamp` and `check` commands:
//! [`postage::stamp_fields`](crate::postage::stamp_fields) and
//! [`postage::check_message`](crate::postage::check_message).
//!
//! Failure policy: a stamp that cannot be minted within [`Outbound::timeout`] (slots busy, or the
//! work too slow) lets the message through unstamped (still signed) and says so in the log;
//! the filter never holds mail back for its own sake. Inbound, every `Authentication-Results`
//! field claiming our authserv-id is removed on every path, and our verdict fields are always
//! added: `permerror` for a message too large or unreadable, `temperror` when a check failed
//! (with a rejection policy such a message is refused or tempfailed instead).
//!
//! The rooms: `config.rs` holds the configuration ([`Config`], [`Outbound`], [`Inbound`],
//! [`Listen`]) and the state every connection shares ([`Shared`]); `session.rs` one connection's
//! state and the translation of each message's decision into milter actions ([`Session`]);
//! `outbound.rs` the outbound judgement (costs, tickets, stamps, signatures), inbound's being
//! [`crate::reception::judge`]; `protocol.rs` the milter
//! protocol callbacks that feed a session; `serve.rs` the listening sockets and the graceful stop
//! ([`serve()`]); `challenge.rs` the postage challenges sent to authenticated senders whose
//! mail was refused for postage ([`challenge::Challenger`]).

pub mod challenge;
mod config;
mod outbound;
mod protocol;
mod serve;
mod session;

pub use config::{
    Config, Inbound, InboundTickets, Listen, Outbound, RejectWith, SenderAuth, Shared,
};
pub use serve::serve;
pub use session::{Session, SessionError};

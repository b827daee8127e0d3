//! The filter's configuration: what it does with outbound and inbound mail, which mail counts as
//! outbound, where the filter listens, and [`Shared`], the state every connection shares (the
//! configuration and the slots for concurrent mints). The `milter` command builds a [`Config`]
//! from its options.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::Semaphore;

use crate::dkim::{self, Canon, KeyLookup, SigningKey};
use crate::policy::lookup::PolicyCache;
use crate::postage::CheckLimits;
use crate::verify::Policy;
use crate::{MintRequest, SpentStore};

/// What the filter does with outbound mail.
pub struct Outbound {
    /// The cost of each stamp (its resource is replaced by each envelope recipient).
    pub request: MintRequest,
    /// Worker threads per message (each stamp uses all of them).
    pub threads: usize,
    /// At most this many messages are minted at once; others wait for a slot.
    pub max_mints: usize,
    /// Time allowed for the stamps of one message, waiting for a slot and looking up the
    /// recipient domains' postage policies included. Beyond it the
    /// message passes unstamped. Keep it well below the MTA's content timeout
    /// (Postfix `milter_content_timeout`, 300 s by default).
    pub timeout: Duration,
    /// DKIM signing domain (`d=`).
    pub domain: String,
    /// DKIM keys with their selectors; one signature each. Empty: stamps only.
    pub keys: Vec<(String, SigningKey)>,
    /// Header and body canonicalization of the signatures.
    pub canon: (Canon, Canon),
    /// Follow the postage policies recipient domains publish (`_postage.DOMAIN`), looked up
    /// within `timeout` and kept in this cache; `None`: `request` for every recipient.
    pub policies: Option<Arc<PolicyCache>>,
    /// The most bits minted for a policy; one asking more gets `request`, and a log line.
    pub max_bits: u32,
    /// Keep each outbound message (as it came, before its stamps) here, so that a postage
    /// challenge can be answered (`pennyblack answer`); `None` keeps nothing.
    pub keep_sent: Option<crate::sent::SentStore>,
    /// Pay the recipients a message's To or Cc names with tickets from this wallet (the others,
    /// and all of them once it is empty, get stamps); `None` stamps every recipient.
    pub wallet: Option<crate::ticket::wallet::Wallet>,
}

/// A receiver's ticket service: the keys of the issuer it trusts, and the service that cancels
/// the tickets it accepts.
pub struct InboundTickets {
    /// The issuer's keys (from its well-known URL).
    pub trusted: crate::ticket::TrustedKeys,
    /// Cancels tickets (the receiver's account at the issuer).
    pub service: Arc<dyn crate::ticket::message::Canceller>,
    /// The time a message's cancels may take in all (each request has its own timeout too).
    pub timeout: Duration,
}

/// What the filter does when a check finds no good enough stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectWith {
    /// A permanent failure (550 5.7.1): the sender gets a bounce.
    Reject,
    /// A temporary failure (451 4.7.1): the sender retries later.
    Tempfail,
}

/// What the filter does with inbound mail.
pub struct Inbound {
    /// The `authserv-id` of the Authentication-Results fields (usually this host's name).
    /// Fields already in the message that claim this id are removed as forgeries.
    pub authserv_id: String,
    /// The least bits a stamp must show to be valid; `None` accepts any honest claim (and such a
    /// stamp is then reported neutral, never pass).
    pub bits: Option<u32>,
    /// Validity, grace and binding rule of stamps (its `min_bits` and `resources` are ignored:
    /// the resources are the envelope recipients, each matched literally, each paid on its own).
    pub policy: Policy,
    /// Check as if it were this time (Unix seconds) instead of the system clock: for tests.
    pub now: Option<i64>,
    /// The spent-stamp store shared by every connection; `None` does not record stamps.
    pub store: Option<Arc<dyn SpentStore>>,
    /// Accept stamps when the store fails (and say so in the verdict) instead of failing.
    pub fail_open: bool,
    /// Where DKIM keys come from.
    pub keys: Arc<dyn KeyLookup>,
    /// DKIM options (`now` is replaced by the time of each check).
    pub dkim: dkim::VerifyOptions,
    /// Limits on stamps examined per message.
    pub limits: CheckLimits,
    /// Refuse messages without a valid stamp of at least this many bits.
    pub reject_below: Option<u32>,
    /// How to refuse them.
    pub reject_with: RejectWith,
    /// SPF and DMARC for inbound mail, from the SMTP session; `None` checks neither.
    pub sender_auth: Option<SenderAuth>,
    /// Postage challenges to authenticated senders of messages refused for postage (with
    /// `reject_below`); `None` sends none.
    pub challenges: Option<Arc<super::challenge::Challenger>>,
    /// Tickets pay for the recipients no stamp pays: checked offline, cancelled online, and
    /// reported (`x-postage-ticket`); `None` ignores tickets.
    pub tickets: Option<InboundTickets>,
}

/// SPF (RFC 7208) and DMARC (RFC 7489) checks of inbound mail.
pub struct SenderAuth {
    /// The resolver (the DKIM key lookups' own, unless keys come from a file).
    pub dns: Arc<crate::dkim::DnsLookup>,
    /// Act on a DMARC fail: refuse (550 5.7.1) under `p=reject`, quarantine (the MTA's hold
    /// queue) under `p=quarantine`, each one step milder under `t=y`. A temperror never
    /// refuses. Off: the result is only reported.
    pub enforce_dmarc: bool,
}

/// The whole filter configuration, shared by every connection.
pub struct Config {
    /// Stamp and sign outbound mail; `None` treats every message as inbound.
    pub outbound: Option<Outbound>,
    /// Check inbound mail.
    pub inbound: Inbound,
    /// Clients in these networks send outbound mail (as SASL-authenticated senders do).
    pub internal: Vec<IpNet>,
    /// When not empty, only mail received by these MTA daemons (the `{daemon_name}` macro,
    /// Postfix `milter_macro_daemon_name`) can be outbound: it narrows the two rules above and
    /// never makes mail outbound by itself.
    pub originating: Vec<String>,
    /// Messages larger than this (header and body) are passed on unchanged, or refused under
    /// a rejection policy.
    pub max_size: usize,
    /// Log one line per message to standard error.
    pub log: bool,
    /// Permissions of a Unix socket (the MTA's user must be able to write to it).
    pub socket_mode: u32,
}

impl Config {
    /// Starts the shared state: the slots for concurrent mints.
    pub fn into_shared(self) -> Arc<Shared> {
        let slots = self.outbound.as_ref().map_or(1, |o| o.max_mints.max(1));
        Arc::new(Shared {
            slots: Arc::new(Semaphore::new(slots)),
            config: self,
        })
    }
}

/// The state every connection shares.
pub struct Shared {
    pub(super) config: Config,
    pub(super) slots: Arc<Semaphore>,
}

impl Shared {
    /// One line of the per-message log (when [`Config::log`]), under the message's queue id.
    pub(super) fn log(&self, queue_id: &str, text: std::fmt::Arguments<'_>) {
        if self.config.log {
            let id = if queue_id.is_empty() { "-" } else { queue_id };
            eprintln!("pennyblack milter: {id}: {text}");
        }
    }
}

/// Where the filter listens: `inet:HOST:PORT` or `unix:PATH` (Postfix's notation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address.
    Inet(std::net::SocketAddr),
    /// A Unix-domain socket path.
    Unix(std::path::PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
            if p.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            return Ok(Listen::Unix(p.into()));
        }
        let a = s.strip_prefix("inet:").unwrap_or(s);
        // Sendmail writes inet:PORT@HOST.
        let a = match a.split_once('@') {
            Some((port, host)) => format!("{host}:{port}"),
            None => a.to_owned(),
        };
        use std::net::ToSocketAddrs;
        a.to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next())
            .map(Listen::Inet)
            .ok_or_else(|| format!("{s:?} is not inet:HOST:PORT or unix:PATH"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Inet(a) => write!(f, "inet:{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_notations() {
        assert_eq!(
            "inet:127.0.0.1:8891".parse::<Listen>().unwrap(),
            Listen::Inet("127.0.0.1:8891".parse().unwrap())
        );
        assert_eq!(
            "inet:8891@127.0.0.1".parse::<Listen>().unwrap(),
            Listen::Inet("127.0.0.1:8891".parse().unwrap())
        );
        assert_eq!(
            "unix:/run/pb.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/run/pb.sock".into())
        );
        assert!("unix:".parse::<Listen>().is_err());
        assert!("inet:nohost".parse::<Listen>().is_err());
    }
}

//! The filter's configuration: what it does with outbound and inbound mail, which mail counts as
//! outbound, where the filter listens, and [`Shared`], the state every connection shares (the
//! configuration and the slots for concurrent mints). The `milter` command builds a [`Config`]
//! from its options.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::Semaphore;

use crate::MintRequest;
use crate::dkim::{Canon, SigningKey};
use crate::policy::lookup::PolicyCache;
pub use crate::reception::{Inbound, InboundTickets, RejectWith, SenderAuth};

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

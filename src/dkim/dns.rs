//! DKIM key records from the DNS (cargo feature `dns`, on by default), with `hickory-resolver`.
//!
//! The same resolver answers the SPF and DMARC lookups of [`crate::sender`]: it is the one
//! `mail-auth`'s authenticator wraps, so DKIM keys, SPF and DMARC records all come from the
//! system's resolver or all from the one server given.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use mail_auth::MessageAuthenticator;

use super::keys::{KeyLookup, LookupError};

/// TXT lookups through the system's resolver (`/etc/resolv.conf`) or a given server.
pub struct DnsLookup {
    auth: MessageAuthenticator,
    /// Always `Some` until dropped (taken out in `drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for DnsLookup {
    /// The lookup's own runtime is shut down without blocking, so a `DnsLookup` can be dropped
    /// anywhere, also inside another runtime's task (the milter drops its configuration there
    /// when it stops); dropping a runtime normally blocks, which panics in that context.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for DnsLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsLookup")
    }
}

/// Why a [`DnsLookup`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The lookup's own runtime (a one-thread Tokio runtime) could not be started.
    #[error("DNS lookups: could not start a runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The resolver could not be built: the system's configuration (`/etc/resolv.conf`) could
    /// not be read or holds no usable server, or the given server cannot be used.
    #[error("DNS resolver: {0}")]
    Resolver(#[source] Box<NetError>),
}

fn runtime() -> Result<tokio::runtime::Runtime, DnsError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DnsError::Runtime)
}

fn resolver_error(e: NetError) -> DnsError {
    DnsError::Resolver(Box::new(e))
}

impl DnsLookup {
    /// Uses the system's resolver configuration.
    pub fn system() -> Result<DnsLookup, DnsError> {
        let runtime = runtime()?;
        let auth = runtime
            .block_on(async { MessageAuthenticator::new_system_conf() })
            .map_err(resolver_error)?;
        Ok(DnsLookup {
            auth,
            runtime: Some(runtime),
        })
    }

    /// Asks only `server` (UDP and TCP), with `timeout` per query: for tests and split DNS.
    pub fn with_server(server: SocketAddr, timeout: Duration) -> Result<DnsLookup, DnsError> {
        let runtime = runtime()?;
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        for c in &mut ns.connections {
            c.port = server.port();
        }
        let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
        let auth = runtime
            .block_on(async {
                let mut opts = ResolverOpts::default();
                opts.timeout = timeout;
                opts.attempts = 1;
                MessageAuthenticator::new(config, opts)
            })
            .map_err(resolver_error)?;
        Ok(DnsLookup {
            auth,
            runtime: Some(runtime),
        })
    }

    /// Runs `f` on the lookup's own runtime, blocking; `None` once it is shutting down.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        self.runtime.as_ref().map(|rt| rt.block_on(f))
    }

    /// `mail-auth`'s authenticator over this lookup's resolver.
    pub(crate) fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }
}

impl DnsLookup {
    /// The TXT record strings at `name` (each record's character-strings joined) and the least
    /// TTL among them, in seconds, waiting at most `timeout` (`None`: the resolver's own
    /// timeout). No such name, or no TXT record at it, is [`LookupError::NotFound`]; a
    /// timeout or a server failure [`LookupError::Temporary`].
    pub fn txt_with_ttl(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<(Vec<String>, u32), LookupError> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let Some(runtime) = &self.runtime else {
            return Err(LookupError::Temporary(
                "the resolver is shutting down".into(),
            ));
        };
        let query = self.auth.resolver().txt_lookup(fqdn);
        let answer = match timeout {
            None => runtime.block_on(query),
            Some(t) => match runtime.block_on(async { tokio::time::timeout(t, query).await }) {
                Ok(a) => a,
                Err(_) => {
                    return Err(LookupError::Temporary(format!(
                        "no answer within {:.1}s",
                        t.as_secs_f64()
                    )));
                }
            },
        };
        match answer {
            Ok(lookup) => {
                let mut ttl = u32::MAX;
                let records: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => {
                            ttl = ttl.min(r.ttl);
                            Some(
                                txt.txt_data
                                    .iter()
                                    .map(|s| String::from_utf8_lossy(s).into_owned())
                                    .collect::<String>(),
                            )
                        }
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    Err(LookupError::NotFound)
                } else {
                    Ok((records, ttl))
                }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Err(LookupError::NotFound),
            Err(e) => Err(LookupError::Temporary(e.to_string())),
        }
    }
}

impl KeyLookup for DnsLookup {
    fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        self.txt_with_ttl(name, None).map(|(records, _)| records)
    }
}

//! The client side of `ticketd` (feature `tickets`): what a sender needs to buy tickets and a
//! receiver to cancel and refund them, over plain HTTP (ureq; TLS is the job of a proxy in front
//! of the service, or of a loopback or private network between them).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::wallet::Bought;
use super::{Carried, Ticket, TrustedKeys};

/// What went wrong talking to the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service could not be reached or did not answer in time.
    #[error("{url}: {error}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// Why.
        error: String,
    },
    /// The service refused the request.
    #[error("{url}: {status}: {error}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The service's reason.
        error: String,
    },
    /// The answer is not what the protocol says.
    #[error("{url}: unexpected answer: {why}")]
    BadAnswer {
        /// The URL asked.
        url: String,
        /// What was wrong.
        why: String,
    },
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What the service announces at `/.well-known/pennyblack-tickets`.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    /// The issuer's name.
    pub issuer: String,
    /// Its key records.
    pub keys: Vec<String>,
    /// The price of a ticket in bits of a stamp for `ACCOUNT@ISSUER`.
    pub price_bits: u32,
    /// How long a ticket stays valid.
    pub lifetime: Duration,
}

impl ServiceInfo {
    /// The issuer's keys, trusted.
    pub fn trusted_keys(&self) -> Result<TrustedKeys, super::TicketError> {
        let mut t = TrustedKeys::new();
        for k in &self.keys {
            t.add_record(&self.issuer, k)?;
        }
        Ok(t)
    }
}

/// An account's balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The account's name.
    pub account: String,
    /// `sender` or `receiver`.
    pub role: String,
    /// Tickets it can still buy without work (sender) or refunds it gave (receiver).
    pub balance: u64,
}

/// The result of a cancel the service accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    /// The same cancel (recipient and message) was made before: a retry.
    pub repeat: bool,
}

/// A client of one `ticketd` with one account's token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the service at `base` (e.g. `http://127.0.0.1:8025`) with the bearer
    /// `token`; each request gives up after `timeout`.
    pub fn new(base: &str, token: &str, timeout: Duration) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            agent,
        }
    }

    fn call(&self, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| ClientError::Unreachable {
            url: url.clone(),
            error: e.to_string(),
        };
        let auth = format!("Bearer {}", self.token);
        let mut resp = match body {
            Some(b) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(&b)
                .map_err(unreachable)?,
            None => self
                .agent
                .get(&url)
                .header("Authorization", &auth)
                .call()
                .map_err(unreachable)?,
        };
        let status = resp.status().as_u16();
        let v: Value = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_json()
            .map_err(|e| ClientError::BadAnswer {
                url: url.clone(),
                why: format!("not JSON ({status}): {e}"),
            })?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Refused {
                url,
                status,
                error: v["error"]
                    .as_str()
                    .unwrap_or("?")
                    .chars()
                    .take(300)
                    .collect(),
            });
        }
        Ok(v)
    }

    fn bad(&self, why: &str) -> ClientError {
        ClientError::BadAnswer {
            url: self.base.clone(),
            why: why.to_owned(),
        }
    }

    /// The service's announcement: issuer, keys, price.
    pub fn info(&self) -> Result<ServiceInfo, ClientError> {
        let v = self.call("/.well-known/pennyblack-tickets", None)?;
        let issuer = v["issuer"]
            .as_str()
            .ok_or_else(|| self.bad("no issuer"))?
            .to_owned();
        let keys = v["keys"]
            .as_array()
            .ok_or_else(|| self.bad("no keys"))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        let price_bits = v["price"]["bits"]
            .as_u64()
            .and_then(|b| u32::try_from(b).ok())
            .ok_or_else(|| self.bad("no price"))?;
        let lifetime = Duration::from_secs(v["lifetime_seconds"].as_u64().unwrap_or(0));
        Ok(ServiceInfo {
            issuer,
            keys,
            price_bits,
            lifetime,
        })
    }

    /// This account's balance.
    pub fn balance(&self) -> Result<Balance, ClientError> {
        let v = self.call("/v1/balance", None)?;
        Ok(Balance {
            account: v["account"]
                .as_str()
                .ok_or_else(|| self.bad("no account"))?
                .to_owned(),
            role: v["role"].as_str().unwrap_or("").to_owned(),
            balance: v["balance"]
                .as_u64()
                .ok_or_else(|| self.bad("no balance"))?,
        })
    }

    /// Buys `count` tickets, paying with `stamps` (for `ACCOUNT@ISSUER` at the price; none to
    /// pay from the balance). Returns the tickets with their secrets, each checked against
    /// `trusted`, and the balance left.
    pub fn buy(
        &self,
        count: u64,
        stamps: &[String],
        trusted: &TrustedKeys,
    ) -> Result<(Vec<Bought>, u64), ClientError> {
        let v = self.call("/v1/buy", Some(json!({ "count": count, "stamps": stamps })))?;
        let list = v["tickets"]
            .as_array()
            .ok_or_else(|| self.bad("no tickets"))?;
        let mut out = Vec::with_capacity(list.len());
        for t in list {
            let ticket = t["ticket"]
                .as_str()
                .and_then(|s| Ticket::parse(s).ok())
                .ok_or_else(|| self.bad("a ticket does not parse"))?;
            ticket
                .verify(trusted, crate::clock::unix_now())
                .map_err(|e| self.bad(&format!("a ticket bought does not verify: {e}")))?;
            let secret: [u8; 32] = t["secret"]
                .as_str()
                .and_then(|s| B64.decode(s).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| self.bad("a ticket's secret does not parse"))?;
            out.push((ticket, secret));
        }
        if out.len() as u64 != count {
            return Err(self.bad(&format!("asked {count} tickets, got {}", out.len())));
        }
        Ok((out, v["balance"].as_u64().unwrap_or(0)))
    }

    /// Cancels `carried` for `rcpt` and the message whose binding is `binding` (a receiver).
    pub fn cancel(
        &self,
        carried: &Carried,
        rcpt: &str,
        binding: &str,
    ) -> Result<Cancelled, ClientError> {
        let v = self.call(
            "/v1/cancel",
            Some(json!({ "ticket": carried.to_string(), "rcpt": rcpt, "binding": binding })),
        )?;
        if v["result"] != "cancelled" {
            return Err(self.bad("the cancel was not confirmed"));
        }
        Ok(Cancelled {
            repeat: v["repeat"].as_bool().unwrap_or(false),
        })
    }

    /// Refunds the ticket `serial` (a receiver that cancelled it).
    pub fn refund(&self, ticket: &Ticket) -> Result<(), ClientError> {
        let v = self.call(
            "/v1/refund",
            Some(json!({ "serial": ticket.serial_text() })),
        )?;
        if v["result"] != "refunded" {
            return Err(self.bad("the refund was not confirmed"));
        }
        Ok(())
    }
}

//! A spent store in Redis (cargo feature `redis`): any number of receiving machines share one
//! spent set and exactly one of them accepts a stamp. A batch is one script run (one round trip,
//! atomic as a whole): for each stamp, record it if neither its key nor its legacy key is there,
//! else keep the entry at least as long as this checker asks.
//!
//! Lifetimes are relative (`EX` seconds from the checker's own clock), so a checker whose clock
//! lags Redis's never sends a time Redis already considers past. Each batch carries a random
//! token, written as the value of the keys it records: when a reply is lost (a timeout) and the
//! batch is sent again, the keys it already wrote are recognised as its own and still reported
//! fresh, so a retry never turns a fresh stamp into a spent one.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::{Spend, SpentKey, SpentStore};
use crate::error::{Error, StoreError};

/// Key prefix in Redis.
const PREFIX: &str = "pennyblack:spent:";

/// KEYS: per item its key and its legacy key (the key again when it has none). ARGV[1]: the
/// batch's token; ARGV[2]: the mode, `0` record each fresh item, `1` all or nothing (nothing is
/// recorded unless every item is fresh; spent entries are still kept as long as asked), `2`
/// only look; ARGV[2 + i]: item i's lifetime in
/// seconds, 0 for good. Returns 1 (fresh) or 0 (spent) per item.
///
/// Every key is looked at before any is written. A recorded item's value is the token, its
/// index and its answer, so the same batch sent again after a lost reply gets the same answers
/// (a retry never turns a fresh stamp into a spent one, nor a spent one into a fresh one), and
/// of a key repeated within the batch only the first occurrence is fresh.
const SPEND_SCRIPT: &str = r#"
local n = #KEYS / 2
local mode = ARGV[2]
local out, state, seen = {}, {}, {}
for i = 1, n do
  local key, legacy = KEYS[2 * i - 1], KEYS[2 * i]
  local mine = ARGV[1] .. ':' .. i .. ':'
  local value = redis.call('GET', key)
  if seen[key] then
    state[i] = 'spent'; out[i] = 0
  elseif value and string.sub(value, 1, #mine) == mine then
    state[i] = 'retry'; out[i] = tonumber(string.sub(value, #mine + 1))
  elseif value then
    state[i] = 'spent'; out[i] = 0
  elseif legacy ~= key and redis.call('EXISTS', legacy) == 1 then
    state[i] = 'new'; out[i] = 0
  else
    state[i] = 'new'; out[i] = 1
  end
  seen[key] = true
end
if mode == '2' then return out end
-- A spent entry is kept at least as long as this check asks (a no-op on a key not there).
local function extend(i)
  local key, ttl = KEYS[2 * i - 1], tonumber(ARGV[i + 2])
  if ttl == 0 then
    redis.call('PERSIST', key)
  else
    local left = redis.call('TTL', key)
    if left >= 0 and left < ttl then redis.call('EXPIRE', key, ttl) end
  end
end
if mode == '1' then
  local all = true
  for i = 1, n do
    if out[i] == 0 then all = false end
  end
  if not all then
    -- Nothing is recorded; the spent entries are still kept as long as asked.
    for i = 1, n do
      if state[i] == 'spent' then extend(i) end
    end
    return out
  end
end
for i = 1, n do
  local key = KEYS[2 * i - 1]
  local ttl = tonumber(ARGV[i + 2])
  if state[i] == 'new' then
    local value = ARGV[1] .. ':' .. i .. ':' .. out[i]
    if ttl == 0 then
      redis.call('SET', key, value)
    else
      redis.call('SET', key, value, 'EX', ttl)
    end
  elseif state[i] == 'spent' then
    extend(i)
  end
end
return out
"#;

/// The schemes a Redis location may have, for error messages.
pub const SCHEMES: &str = "redis://, rediss:// (TLS), redis+cluster://, redis+sentinel://";

/// How to reach Redis beyond the location itself.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// How long to wait for a connection and for each reply.
    pub timeout: Duration,
    /// A PEM file of CA certificates to trust for `rediss://` instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM files) for `rediss://`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The password (overrides one in the location), so it need not be on a command line.
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Where the spent set lives.
enum Server {
    /// One server (or a replicated primary behind one address).
    Single(redis::Client),
    /// A Redis Cluster: keys spread over slots, each batch split per slot.
    Cluster(redis::cluster::ClusterClient),
    /// The primary that Sentinel names for a service: followed across failovers.
    Sentinel(Mutex<redis::sentinel::SentinelClient>),
}

enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn as_dyn(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => c.as_mut(),
        }
    }
}

/// A spent store on a Redis server, a Redis Cluster, or the primary a Sentinel names.
pub struct RedisStore {
    server: Server,
    conn: Mutex<Option<Conn>>,
    timeout: Duration,
    /// The location with any password replaced by `***`: what errors and logs show.
    shown: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("location", &self.shown)
            .finish()
    }
}

fn key_name(key: &SpentKey) -> String {
    let mut s = String::with_capacity(PREFIX.len() + 64);
    s.push_str(PREFIX);
    for b in key {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The location with the password of its user information replaced by `***`, and nothing of
/// an error message that could echo it: the only form of a location we ever print.
pub fn redact(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_owned();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = match authority.rsplit_once('@') {
        Some((user, hosts)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{hosts}"),
            None => format!("{user}@{hosts}"),
        },
        None => authority.to_owned(),
    };
    if rest.contains('/') {
        format!("{scheme}://{authority}/{path}")
    } else {
        format!("{scheme}://{authority}")
    }
}

/// Redis's hash slot of a key (CRC16-XMODEM of the key, or of its `{hash tag}`, mod 16384).
fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let after = &key[open + 1..];
            after
                .iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &after[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &b in tagged {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`), waiting at most `timeout` for the connection
    /// and for each reply.
    pub fn open(url: &str, timeout: Duration) -> Result<RedisStore, Error> {
        RedisStore::open_with(
            url,
            &RedisOptions {
                timeout,
                ..RedisOptions::default()
            },
        )
    }

    /// Connects to `location`:
    /// `redis://[USER[:PASSWORD]@]HOST:PORT/DB`, `rediss://...` (TLS: the system's roots or
    /// `ca_file`, optionally a client certificate), `redis+cluster://HOST:PORT[,HOST:PORT...]`
    /// (a Redis Cluster; any nodes, the others are discovered), or
    /// `redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]` (the primary the Sentinels name
    /// for SERVICE, followed across failovers). A password may come in `options` instead of the
    /// location; it is never printed.
    pub fn open_with(location: &str, options: &RedisOptions) -> Result<RedisStore, Error> {
        let shown = redact(location);
        let bad = |reason: String| -> Error {
            StoreError::BadLocation {
                location: shown.clone(),
                reason,
            }
            .into()
        };
        let fail = |_: &str, e: &dyn std::fmt::Display| bad(scrub(&e.to_string(), location));
        let (scheme, rest) = location
            .split_once("://")
            .ok_or_else(|| bad(format!("not a URL ({SCHEMES})")))?;
        let timeout = options.timeout.max(Duration::from_millis(1));
        let server = match scheme {
            "redis" | "rediss" => {
                let mut info = redis::IntoConnectionInfo::into_connection_info(location)
                    .map_err(|e| fail("", &e))?;
                if let Some(p) = &options.password {
                    let settings = info.redis_settings().clone().set_password(p);
                    info = info.set_redis_settings(settings);
                }
                let client = if scheme == "rediss" {
                    let read = |p: &PathBuf| {
                        std::fs::read(p).map_err(|source| {
                            Error::from(StoreError::Io {
                                path: p.clone(),
                                source,
                            })
                        })
                    };
                    let root_cert = options.ca_file.as_ref().map(read).transpose()?;
                    let client_tls = match &options.client_cert {
                        Some((cert, key)) => Some(redis::ClientTlsConfig {
                            client_cert: read(cert)?,
                            client_key: read(key)?,
                        }),
                        None => None,
                    };
                    redis::Client::build_with_tls(
                        info,
                        redis::TlsCertificates {
                            client_tls,
                            root_cert,
                        },
                    )
                } else {
                    redis::Client::open(info)
                }
                .map_err(|e| fail("", &e))?;
                Server::Single(client)
            }
            "redis+cluster" => {
                let (hosts, _) = rest.split_once('/').unwrap_or((rest, ""));
                let (user, hosts) = match hosts.rsplit_once('@') {
                    Some((u, h)) => (Some(u), h),
                    None => (None, hosts),
                };
                let nodes: Vec<String> = hosts
                    .split(',')
                    .map(|h| match user {
                        Some(u) => format!("redis://{u}@{h}"),
                        None => format!("redis://{h}"),
                    })
                    .collect();
                let mut b = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2);
                if let Some(p) = &options.password {
                    b = b.password(p);
                }
                Server::Cluster(b.build().map_err(|e| fail("", &e))?)
            }
            "redis+sentinel" => {
                let mut parts = rest.split('/');
                let authority = parts.next().unwrap_or("");
                let service = parts.next().filter(|s| !s.is_empty()).ok_or_else(|| {
                    bad(
                        "redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB] names no service"
                            .to_owned(),
                    )
                })?;
                let db: i64 = match parts.next().filter(|s| !s.is_empty()) {
                    Some(d) => d
                        .parse()
                        .map_err(|_| bad(format!("bad database number {d:?}")))?,
                    None => 0,
                };
                let (user, hosts) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(u), h),
                    None => (None, authority),
                };
                let (username, password) = match user.map(|u| u.split_once(':')) {
                    Some(Some((n, p))) => (Some(n.to_owned()), Some(p.to_owned())),
                    Some(None) => (user.map(str::to_owned), None),
                    None => (None, None),
                };
                let password = options.password.clone().or(password);
                let sentinels: Vec<String> =
                    hosts.split(',').map(|h| format!("redis://{h}")).collect();
                let mut node = redis::RedisConnectionInfo::default().set_db(db);
                if let Some(u) = username.filter(|u| !u.is_empty()) {
                    node = node.set_username(u);
                }
                if let Some(p) = password {
                    node = node.set_password(p);
                }
                let info = redis::sentinel::SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(node);
                let client = redis::sentinel::SentinelClient::build(
                    sentinels,
                    service,
                    Some(info),
                    redis::sentinel::SentinelServerType::Master,
                )
                .map_err(|e| fail("", &e))?;
                Server::Sentinel(Mutex::new(client))
            }
            "rediss+cluster" | "rediss+sentinel" => {
                return Err(bad(
                    "TLS is supported for a single server (rediss://); a cluster or \
                     Sentinel is reached over TCP on a trusted network"
                        .to_owned(),
                ));
            }
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other:?} (supported: {SCHEMES})"
                )));
            }
        };
        let store = RedisStore {
            server,
            conn: Mutex::new(None),
            timeout,
            shown,
        };
        store.with_conn(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(store)
    }

    fn connect(&self) -> redis::RedisResult<Conn> {
        let single = |c: redis::Connection| {
            let _ = c.set_read_timeout(Some(self.timeout));
            let _ = c.set_write_timeout(Some(self.timeout));
            Conn::Single(c)
        };
        match &self.server {
            Server::Single(client) => client.get_connection_with_timeout(self.timeout).map(single),
            Server::Cluster(client) => client.get_connection().map(|c| Conn::Cluster(Box::new(c))),
            Server::Sentinel(client) => {
                // Asks the Sentinels which node is the primary now, on every (re)connect.
                let mut client = client.lock().unwrap_or_else(|e| e.into_inner());
                client.get_connection().map(single)
            }
        }
    }

    /// Runs `f` on the connection, connecting (again) if needed; one reconnect per call. Only
    /// idempotent work goes through here (see the spend script's token).
    fn with_conn<T>(
        &self,
        f: impl Fn(&mut dyn redis::ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = None;
        for _ in 0..2 {
            if guard.is_none() {
                match self.connect() {
                    Ok(c) => *guard = Some(c),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            let conn = guard.as_mut().expect("connected above");
            match f(conn.as_dyn()) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    *guard = None;
                    last = Some(e);
                }
            }
        }
        Err(StoreError::Unavailable {
            location: self.shown.clone(),
            detail: last.map_or_else(|| "unavailable".to_owned(), |e| e.to_string()),
        }
        .into())
    }

    /// Runs the spend script for `items` (all in one slot on a cluster).
    fn spend_script(
        &self,
        items: &[&Spend],
        now: i64,
        legacy: bool,
        mode: &str,
    ) -> Result<Vec<bool>, Error> {
        let mut token = [0u8; 12];
        getrandom::fill(&mut token).map_err(StoreError::Random)?;
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SPEND_SCRIPT).arg(items.len() * 2);
        for item in items {
            let old = item.legacy.as_ref().filter(|_| legacy).unwrap_or(&item.key);
            cmd.arg(key_name(&item.key)).arg(key_name(old));
        }
        cmd.arg(&token).arg(mode);
        for item in items {
            // Seconds from this checker's clock; at least 1, so the entry is written at all.
            // Beyond a century (or for good) the entry never expires: Redis refuses lifetimes
            // past its own limits, and no window is that long.
            const CENTURY: i64 = 100 * 366 * 86_400;
            let ttl = match item.keep_until.saturating_sub(now) {
                t if t > CENTURY => 0,
                t => t.max(1),
            };
            cmd.arg(ttl);
        }
        // The script is idempotent for its token, so a retry after a lost reply is safe.
        let replies: Vec<i64> = self.with_conn(|c| cmd.query(c))?;
        if replies.len() != items.len() {
            return Err(StoreError::Protocol {
                location: self.shown.clone(),
                detail: format!("{} replies for {} stamps", replies.len(), items.len()),
            }
            .into());
        }
        Ok(replies.into_iter().map(|r| r == 1).collect())
    }
}

impl RedisStore {
    fn spend_mode(&self, items: &[Spend], now: i64, all: bool) -> Result<Vec<bool>, Error> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if !matches!(self.server, Server::Cluster(_)) {
            let mode = if all { "1" } else { "0" };
            return self.spend_script(&items.iter().collect::<Vec<_>>(), now, true, mode);
        }
        // A cluster runs a script on one slot's node: one script per slot, in slot order, each
        // atomic. Legacy keys (of single-server stores written by earlier builds) are not looked
        // up: they would lie in other slots. All or nothing across slots: every slot is looked
        // at first, and written only if all its items are fresh (a replay racing in between
        // can still make a later slot refuse; that race is the only way to burn a stamp).
        let mut by_slot: std::collections::BTreeMap<u16, Vec<usize>> = Default::default();
        for (i, item) in items.iter().enumerate() {
            by_slot
                .entry(slot(key_name(&item.key).as_bytes()))
                .or_default()
                .push(i);
        }
        let groups: Vec<(&Vec<usize>, Vec<&Spend>)> = by_slot
            .values()
            .map(|idx| (idx, idx.iter().map(|&i| &items[i]).collect()))
            .collect();
        let mut fresh = vec![false; items.len()];
        if all {
            let mut every = true;
            for (idx, group) in &groups {
                for (&i, f) in idx.iter().zip(self.spend_script(group, now, false, "2")?) {
                    fresh[i] = f;
                    every &= f;
                }
            }
            // Repeated keys land in one slot and are seen there.
            if !every {
                return Ok(fresh);
            }
        }
        let mode = if all { "1" } else { "0" };
        for (idx, group) in &groups {
            for (&i, f) in idx.iter().zip(self.spend_script(group, now, false, mode)?) {
                fresh[i] = f;
            }
        }
        Ok(fresh)
    }
}

/// An error message of the client with the location's password (if any) taken out.
fn scrub(message: &str, location: &str) -> String {
    let password = location
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|auth| auth.rsplit_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_owned(),
    }
}

impl SpentStore for RedisStore {
    fn spend_many(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        self.spend_mode(items, now, false)
    }

    fn spend_if_all_fresh(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        self.spend_mode(items, now, true)
    }

    /// Redis expires entries itself; nothing to do.
    fn purge(&self, _now: i64) -> Result<u64, Error> {
        Ok(0)
    }

    fn len(&self) -> Result<u64, Error> {
        if matches!(self.server, Server::Cluster(_)) {
            return Err(StoreError::Unsupported {
                location: self.shown.clone(),
                what: "counting entries on a cluster",
            }
            .into());
        }
        let keys: Vec<String> =
            self.with_conn(|c| redis::cmd("KEYS").arg(format!("{PREFIX}*")).query(c))?;
        Ok(keys.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_shown_without_their_password() {
        assert_eq!(
            redact("redis://alice:s3cret@h:6379/0"),
            "redis://alice:***@h:6379/0"
        );
        assert_eq!(redact("rediss://:s3cret@h:6380"), "rediss://:***@h:6380");
        assert_eq!(redact("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(
            scrub("auth failed for s3cret", "redis://a:s3cret@h/0"),
            "auth failed for ***"
        );
    }

    #[test]
    fn hash_slots_are_redis_s() {
        // From the Redis Cluster specification: CRC16 of "123456789" is 0x31C3.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
    }
}

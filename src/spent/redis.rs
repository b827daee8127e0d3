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

use std::sync::Mutex;
use std::time::Duration;

use super::{Spend, SpentKey, SpentStore};
use crate::error::Error;

/// Key prefix in Redis.
const PREFIX: &str = "pennyblack:spent:";

/// KEYS: per item its key and its legacy key (the key again when it has none). ARGV[1]: the
/// batch's token; ARGV[1 + i]: item i's lifetime in seconds, 0 for good. Returns 1 (fresh) or 0
/// (spent) per item. An item's value is the token and its index, so of a key repeated within
/// the batch only the first occurrence is fresh, while the same batch sent again sees its own.
const SPEND_SCRIPT: &str = r#"
local out = {}
for i = 1, #KEYS / 2 do
  local key, legacy = KEYS[2 * i - 1], KEYS[2 * i]
  local ttl = tonumber(ARGV[i + 1])
  local mine = ARGV[1] .. ':' .. i
  local value = redis.call('GET', key)
  if value == mine then
    out[i] = 1
  elseif value then
    if ttl == 0 then
      redis.call('PERSIST', key)
    else
      local left = redis.call('TTL', key)
      if left >= 0 and left < ttl then redis.call('EXPIRE', key, ttl) end
    end
    out[i] = 0
  else
    local seen = legacy ~= key and redis.call('EXISTS', legacy) == 1
    if ttl == 0 then
      redis.call('SET', key, mine)
    else
      redis.call('SET', key, mine, 'EX', ttl)
    end
    if seen then out[i] = 0 else out[i] = 1 end
  end
end
return out
"#;

/// A spent store on a Redis server.
pub struct RedisStore {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    timeout: Duration,
    url: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
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

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`), waiting at most `timeout` for the connection
    /// and for each reply.
    pub fn open(url: &str, timeout: Duration) -> Result<RedisStore, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::Store(format!("{url}: {e}")))?;
        let store = RedisStore {
            client,
            conn: Mutex::new(None),
            timeout,
            url: url.to_owned(),
        };
        store.with_conn(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(store)
    }

    /// Runs `f` on the connection, connecting (again) if needed; one reconnect per call.
    fn with_conn<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = None;
        for _ in 0..2 {
            if guard.is_none() {
                match self.client.get_connection_with_timeout(self.timeout) {
                    Ok(c) => {
                        let _ = c.set_read_timeout(Some(self.timeout));
                        let _ = c.set_write_timeout(Some(self.timeout));
                        *guard = Some(c);
                    }
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            let conn = guard.as_mut().expect("connected above");
            match f(conn) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    *guard = None;
                    last = Some(e);
                }
            }
        }
        Err(Error::Store(format!(
            "{}: {}",
            self.url,
            last.map_or_else(|| "unavailable".to_owned(), |e| e.to_string())
        )))
    }
}

impl SpentStore for RedisStore {
    fn spend_many(&self, items: &[Spend], now: i64) -> Result<Vec<bool>, Error> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut token = [0u8; 12];
        getrandom::fill(&mut token).map_err(|e| Error::Store(format!("random token: {e}")))?;
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SPEND_SCRIPT).arg(items.len() * 2);
        for item in items {
            cmd.arg(key_name(&item.key))
                .arg(key_name(item.legacy.as_ref().unwrap_or(&item.key)));
        }
        cmd.arg(&token);
        for item in items {
            // Seconds from this checker's clock; at least 1, so the entry is written at all.
            let ttl = if item.keep_until == i64::MAX {
                0
            } else {
                item.keep_until.saturating_sub(now).max(1)
            };
            cmd.arg(ttl);
        }
        // The script is idempotent for its token, so a retry after a lost reply is safe.
        let replies: Vec<i64> = self.with_conn(|c| cmd.query(c))?;
        if replies.len() != items.len() {
            return Err(Error::Store(format!(
                "{}: {} replies for {} stamps",
                self.url,
                replies.len(),
                items.len()
            )));
        }
        Ok(replies.into_iter().map(|r| r == 1).collect())
    }

    /// Redis expires entries itself; nothing to do.
    fn purge(&self, _now: i64) -> Result<u64, Error> {
        Ok(0)
    }

    fn len(&self) -> Result<u64, Error> {
        let keys: Vec<String> =
            self.with_conn(|c| redis::cmd("KEYS").arg(format!("{PREFIX}*")).query(c))?;
        Ok(keys.len() as u64)
    }
}

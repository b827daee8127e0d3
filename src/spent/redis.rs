//! A spent store in Redis (cargo feature `redis`): `SET key 1 NX EXAT expiry` per stamp, so any
//! number of receiving machines share one spent set and exactly one of them accepts a stamp.
//! A batch is one pipeline (one round trip); each SET is atomic on its own.

use std::sync::Mutex;
use std::time::Duration;

use super::{SpentKey, SpentStore};
use crate::error::Error;

/// Key prefix in Redis.
const PREFIX: &str = "pennyblack:spent:";

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
    fn spend(&self, key: &SpentKey, expires_at: i64, now: i64) -> Result<bool, Error> {
        Ok(self.spend_many(&[(*key, expires_at)], now)?[0])
    }

    fn spend_many(&self, items: &[(SpentKey, i64)], now: i64) -> Result<Vec<bool>, Error> {
        let mut pipe = redis::pipe();
        for (key, expires_at) in items {
            let cmd = pipe.cmd("SET").arg(key_name(key)).arg(1).arg("NX");
            if *expires_at < i64::MAX {
                // Already expired entries need not be kept at all; keep them a second anyway so
                // a replay within the same batch is still refused.
                cmd.arg("EXAT").arg((*expires_at).max(now + 1));
            }
        }
        let replies: Vec<Option<String>> = self.with_conn(|c| pipe.query(c))?;
        Ok(replies.into_iter().map(|r| r.is_some()).collect())
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

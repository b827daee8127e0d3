//! The ticket books in PostgreSQL, for several `ticketd` instances behind a load balancer.
//! Every operation is one transaction; a ticket's row is locked (`SELECT ... FOR UPDATE`)
//! before its state changes, and balances change by conditional `UPDATE`s, so of two instances
//! racing on one ticket exactly one cancels (or refunds) it. PostgreSQL's own durability (WAL,
//! fsync at commit) keeps every acknowledged operation.

use std::sync::{Condvar, Mutex};

use postgres::{Client, NoTls, Transaction};

use super::store::{
    Account, BooksError, Cancel, Operation, OperationKind, Refund, Role, TicketStore,
};

/// The most connections one instance opens.
pub const MAX_CONNECTIONS: usize = 32;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pb_accounts (
    name text PRIMARY KEY,
    role smallint NOT NULL,
    balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    token_hash bytea NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS pb_tickets (
    serial bytea PRIMARY KEY,
    sender text NOT NULL,
    expires bigint NOT NULL,
    state smallint NOT NULL,
    use_key bytea,
    receiver text
);
CREATE INDEX IF NOT EXISTS pb_tickets_unused ON pb_tickets (expires) WHERE state = 1;
CREATE TABLE IF NOT EXISTS pb_log (
    id bigserial PRIMARY KEY,
    account text NOT NULL,
    at bigint NOT NULL,
    kind smallint NOT NULL,
    count bigint NOT NULL,
    serial bytea
);
CREATE INDEX IF NOT EXISTS pb_log_account ON pb_log (account, id);
CREATE TABLE IF NOT EXISTS pb_domains (
    domain text PRIMARY KEY,
    account text NOT NULL
);
";

const ISSUED: i16 = 1;
const CANCELLED: i16 = 2;
const REFUNDED: i16 = 3;

/// The books in a PostgreSQL database.
pub struct PgTicketStore {
    url: String,
    idle: Mutex<(Vec<Client>, usize)>,
    freed: Condvar,
}

fn db(e: postgres::Error) -> BooksError {
    BooksError::Postgres(e.to_string())
}

fn role_code(r: Role) -> i16 {
    i16::from(r.code())
}

fn role_of(c: i16) -> Option<Role> {
    Role::from_code(u8::try_from(c).ok()?)
}

fn kind_code(k: OperationKind) -> i16 {
    i16::from(k.code())
}

fn kind_of(c: i16) -> Option<OperationKind> {
    OperationKind::from_code(u8::try_from(c).ok()?)
}

impl PgTicketStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`, or `host=/run/postgresql ...`) and
    /// makes the tables when missing.
    pub fn open(url: &str) -> Result<Self, BooksError> {
        let mut c = Client::connect(url, NoTls).map_err(db)?;
        c.batch_execute(SCHEMA).map_err(db)?;
        Ok(PgTicketStore {
            url: url.to_owned(),
            idle: Mutex::new((vec![c], 1)),
            freed: Condvar::new(),
        })
    }

    /// Runs `f` on a pooled connection (at most [`MAX_CONNECTIONS`]); a connection that
    /// failed is dropped, not returned.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, BooksError>,
    ) -> Result<T, BooksError> {
        let mut c = {
            let mut g = self.idle.lock().expect("pool lock");
            loop {
                if let Some(c) = g.0.pop() {
                    break Some(c);
                }
                if g.1 < MAX_CONNECTIONS {
                    g.1 += 1;
                    break None;
                }
                g = self.freed.wait(g).expect("pool lock");
            }
        };
        let mut conn = match c.take() {
            Some(c) if !c.is_closed() => c,
            _ => match Client::connect(&self.url, NoTls) {
                Ok(c) => c,
                Err(e) => {
                    self.idle.lock().expect("pool lock").1 -= 1;
                    self.freed.notify_one();
                    return Err(db(e));
                }
            },
        };
        let out = f(&mut conn);
        let mut g = self.idle.lock().expect("pool lock");
        if conn.is_closed() {
            g.1 -= 1;
        } else {
            g.0.push(conn);
        }
        self.freed.notify_one();
        out
    }

    /// Runs `f` in one transaction, committed only when it returns `Ok`.
    fn txn<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, BooksError>,
    ) -> Result<T, BooksError> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(db)?;
            let out = f(&mut tx)?;
            tx.commit().map_err(db)?;
            Ok(out)
        })
    }
}

fn log(
    tx: &mut Transaction<'_>,
    account: &str,
    kind: OperationKind,
    count: u64,
    serial: Option<&[u8; 16]>,
    now: i64,
) -> Result<(), BooksError> {
    tx.execute(
        "INSERT INTO pb_log (account, at, kind, count, serial) VALUES ($1, $2, $3, $4, $5)",
        &[
            &account,
            &now,
            &kind_code(kind),
            &(count as i64),
            &serial.map(|s| s.to_vec()),
        ],
    )
    .map_err(db)?;
    Ok(())
}

fn need_role(tx: &mut Transaction<'_>, name: &str, role: Role) -> Result<(), BooksError> {
    let row = tx
        .query_opt("SELECT role FROM pb_accounts WHERE name = $1", &[&name])
        .map_err(db)?;
    match row.map(|r| r.get::<_, i16>(0)) {
        Some(c) if c == role_code(role) => Ok(()),
        _ => Err(BooksError::NoAccount {
            name: name.to_owned(),
            role,
        }),
    }
}

impl TicketStore for PgTicketStore {
    fn create_account(
        &self,
        name: &str,
        role: Role,
        token_hash: [u8; 32],
    ) -> Result<(), BooksError> {
        if !super::store::name_ok(name) {
            return Err(BooksError::BadName);
        }
        self.txn(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO pb_accounts (name, role, token_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&name, &role_code(role), &token_hash.to_vec()],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(BooksError::Exists(name.to_owned()));
            }
            Ok(())
        })
    }

    fn account_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Account>, BooksError> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT name, role, balance FROM pb_accounts WHERE token_hash = $1",
                    &[&token_hash.to_vec()],
                )
                .map_err(db)?;
            Ok(row.and_then(|r| {
                Some(Account {
                    name: r.get(0),
                    role: role_of(r.get(1))?,
                    balance: r.get::<_, i64>(2) as u64,
                })
            }))
        })
    }

    fn credit(
        &self,
        sender: &str,
        n: u64,
        kind: OperationKind,
        now: i64,
    ) -> Result<u64, BooksError> {
        let n = i64::try_from(n).map_err(|_| BooksError::BadName)?;
        self.txn(|tx| {
            let row = tx
                .query_opt(
                    "UPDATE pb_accounts SET balance = balance + $2 WHERE name = $1 AND role = 1 RETURNING balance",
                    &[&sender, &n],
                )
                .map_err(db)?
                .ok_or_else(|| BooksError::NoAccount {
                    name: sender.to_owned(),
                    role: Role::Sender,
                })?;
            log(tx, sender, kind, n as u64, None, now)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn issue(
        &self,
        sender: &str,
        serials: &[[u8; 16]],
        expires: i64,
        now: i64,
    ) -> Result<u64, BooksError> {
        let asked = serials.len() as i64;
        self.txn(|tx| {
            need_role(tx, sender, Role::Sender)?;
            let row = tx
                .query_opt(
                    "UPDATE pb_accounts SET balance = balance - $2 WHERE name = $1 AND balance >= $2 RETURNING balance",
                    &[&sender, &asked],
                )
                .map_err(db)?;
            let Some(row) = row else {
                let b: i64 = tx
                    .query_one("SELECT balance FROM pb_accounts WHERE name = $1", &[&sender])
                    .map_err(db)?
                    .get(0);
                return Err(BooksError::Insufficient {
                    balance: b as u64,
                    asked: asked as u64,
                });
            };
            let stmt = tx
                .prepare("INSERT INTO pb_tickets (serial, sender, expires, state) VALUES ($1, $2, $3, 1)")
                .map_err(db)?;
            for s in serials {
                tx.execute(&stmt, &[&s.to_vec(), &sender, &expires]).map_err(db)?;
            }
            log(tx, sender, OperationKind::Issued, asked as u64, None, now)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn cancel(
        &self,
        receiver: &str,
        serial: &[u8; 16],
        use_key: &[u8; 32],
        now: i64,
    ) -> Result<Cancel, BooksError> {
        self.txn(|tx| {
            need_role(tx, receiver, Role::Receiver)?;
            let row = tx
                .query_opt(
                    "SELECT state, expires, use_key, receiver FROM pb_tickets WHERE serial = $1 FOR UPDATE",
                    &[&serial.to_vec()],
                )
                .map_err(db)?;
            let Some(row) = row else {
                return Ok(Cancel::Unknown);
            };
            let state: i16 = row.get(0);
            let expires: i64 = row.get(1);
            if state == CANCELLED || state == REFUNDED {
                let key: Option<Vec<u8>> = row.get(2);
                let by: Option<String> = row.get(3);
                let same = by.as_deref() == Some(receiver)
                    && key.is_some_and(|k| bool::from(subtle::ConstantTimeEq::ct_eq(&k[..], &use_key[..])));
                return Ok(if same && state == CANCELLED {
                    Cancel::AlreadyCancelledSame
                } else {
                    Cancel::Used
                });
            }
            if state != ISSUED {
                return Err(BooksError::Postgres(format!("ticket state {state}")));
            }
            if now > expires {
                return Ok(Cancel::Expired);
            }
            tx.execute(
                "UPDATE pb_tickets SET state = 2, use_key = $2, receiver = $3 WHERE serial = $1",
                &[&serial.to_vec(), &use_key.to_vec(), &receiver],
            )
            .map_err(db)?;
            log(tx, receiver, OperationKind::Cancelled, 1, Some(serial), now)?;
            Ok(Cancel::Cancelled)
        })
    }

    fn refund(&self, receiver: &str, serial: &[u8; 16], now: i64) -> Result<Refund, BooksError> {
        self.txn(|tx| {
            need_role(tx, receiver, Role::Receiver)?;
            let row = tx
                .query_opt(
                    "SELECT state, receiver, sender FROM pb_tickets WHERE serial = $1 FOR UPDATE",
                    &[&serial.to_vec()],
                )
                .map_err(db)?;
            let Some(row) = row else {
                return Ok(Refund::Unknown);
            };
            let state: i16 = row.get(0);
            let by: Option<String> = row.get(1);
            let sender: String = row.get(2);
            if by.as_deref() != Some(receiver) || state == ISSUED {
                return Ok(Refund::NotYours);
            }
            if state == REFUNDED {
                return Ok(Refund::AlreadyRefunded);
            }
            tx.execute(
                "UPDATE pb_tickets SET state = 3 WHERE serial = $1",
                &[&serial.to_vec()],
            )
            .map_err(db)?;
            tx.execute(
                "UPDATE pb_accounts SET balance = balance + 1 WHERE name = $1",
                &[&sender],
            )
            .map_err(db)?;
            log(tx, &sender, OperationKind::Refunded, 1, Some(serial), now)?;
            log(tx, receiver, OperationKind::Refunded, 1, Some(serial), now)?;
            Ok(Refund::Refunded)
        })
    }

    fn account(&self, name: &str) -> Result<Option<Account>, BooksError> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT role, balance FROM pb_accounts WHERE name = $1",
                    &[&name],
                )
                .map_err(db)?;
            Ok(row.and_then(|r| {
                Some(Account {
                    name: name.to_owned(),
                    role: role_of(r.get(0))?,
                    balance: r.get::<_, i64>(1) as u64,
                })
            }))
        })
    }

    fn statement(&self, name: &str, limit: usize) -> Result<Vec<Operation>, BooksError> {
        self.with(|c| {
            let rows = c
                .query(
                    "SELECT id, at, kind, count, serial FROM pb_log WHERE account = $1 ORDER BY id DESC LIMIT $2",
                    &[&name, &(limit as i64)],
                )
                .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let serial: Option<Vec<u8>> = r.get(4);
                    Ok(Operation {
                        seq: r.get::<_, i64>(0) as u64,
                        at: r.get(1),
                        kind: kind_of(r.get(2)).ok_or(BooksError::Postgres("bad kind".into()))?,
                        count: r.get::<_, i64>(3) as u64,
                        serial: serial.and_then(|s| s.try_into().ok()),
                    })
                })
                .collect()
        })
    }

    fn add_domain(&self, receiver: &str, domain: &str) -> Result<(), BooksError> {
        let domain = super::store::domain_key(domain).ok_or(BooksError::BadName)?;
        self.txn(|tx| {
            need_role(tx, receiver, Role::Receiver)?;
            tx.execute(
                "INSERT INTO pb_domains (domain, account) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&domain, &receiver],
            )
            .map_err(db)?;
            let owner: String = tx
                .query_one(
                    "SELECT account FROM pb_domains WHERE domain = $1",
                    &[&domain],
                )
                .map_err(db)?
                .get(0);
            if owner == receiver {
                Ok(())
            } else {
                Err(BooksError::Exists(domain.clone()))
            }
        })
    }

    fn domain_owner(&self, domain: &str) -> Result<Option<String>, BooksError> {
        let Some(domain) = super::store::domain_key(domain) else {
            return Ok(None);
        };
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT account FROM pb_domains WHERE domain = $1",
                &[&domain],
            )
            .map_err(db)?
            .map(|r| r.get(0)))
        })
    }

    fn purge_expired(&self, now: i64) -> Result<u64, BooksError> {
        self.with(|c| {
            let n = c
                .execute(
                    "DELETE FROM pb_tickets WHERE state = 1 AND expires < $1",
                    &[&now],
                )
                .map_err(db)?;
            Ok(n)
        })
    }
}

const SPENT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pb_spent (key bytea PRIMARY KEY, keep_until bigint NOT NULL);
CREATE INDEX IF NOT EXISTS pb_spent_until ON pb_spent (keep_until);
";

fn store_err(url: &str, e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Store(crate::StoreError::Unavailable {
        location: redact(url),
        detail: e.to_string(),
    })
}

/// The URL without a password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgTicketStore {
    /// Makes the spent-stamp table the payments use, so that every instance on this database
    /// refuses a stamp any of them was paid with.
    pub fn with_spent_table(self) -> Result<Self, BooksError> {
        self.with(|c| c.batch_execute(SPENT_SCHEMA).map_err(db))?;
        Ok(self)
    }
}

/// The stamps paid with, in the books' database (`pb_spent`): shared by every instance.
impl crate::SpentStore for PgTicketStore {
    fn spend_many(
        &self,
        items: &[crate::spent::Spend],
        now: i64,
    ) -> Result<Vec<bool>, crate::Error> {
        self.insert_spent(items, now, false)
    }

    fn spend_if_all_fresh(
        &self,
        items: &[crate::spent::Spend],
        now: i64,
    ) -> Result<Vec<bool>, crate::Error> {
        self.insert_spent(items, now, true)
    }

    fn purge(&self, now: i64) -> Result<u64, crate::Error> {
        self.with(|c| {
            c.execute("DELETE FROM pb_spent WHERE keep_until < $1", &[&now])
                .map_err(db)
        })
        .map_err(|e| store_err(&self.url, e))
    }

    fn len(&self) -> Result<u64, crate::Error> {
        self.with(|c| {
            let n: i64 = c
                .query_one("SELECT count(*) FROM pb_spent", &[])
                .map_err(db)?
                .get(0);
            Ok(n as u64)
        })
        .map_err(|e| store_err(&self.url, e))
    }
}

impl PgTicketStore {
    /// Inserts the keys in one transaction; `all_or_nothing` rolls back when any was there.
    fn insert_spent(
        &self,
        items: &[crate::spent::Spend],
        _now: i64,
        all_or_nothing: bool,
    ) -> Result<Vec<bool>, crate::Error> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(db)?;
            let mut fresh = Vec::with_capacity(items.len());
            for it in items {
                let legacy_seen = match &it.legacy {
                    Some(l) => tx
                        .query_opt("SELECT 1 FROM pb_spent WHERE key = $1", &[&l.to_vec()])
                        .map_err(db)?
                        .is_some(),
                    None => false,
                };
                let n = if legacy_seen {
                    0
                } else {
                    tx.execute(
                        "INSERT INTO pb_spent (key, keep_until) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&it.key.to_vec(), &it.keep_until],
                    )
                    .map_err(db)?
                };
                fresh.push(n == 1);
            }
            if all_or_nothing && fresh.iter().any(|f| !f) {
                tx.rollback().map_err(db)?;
            } else {
                tx.commit().map_err(db)?;
            }
            Ok(fresh)
        })
        .map_err(|e| store_err(&self.url, e))
    }
}

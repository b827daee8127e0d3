//! The ticket server's books (issue 20 groundwork): accounts and their balances, issued
//! tickets and what became of each (cancelled by whom, for which recipient and message;
//! refunded), and a statement of recent operations per account. [`TicketStore`] is the
//! interface a server keeps its books through; [`FileTicketStore`] keeps them in one `redb`
//! file, each operation one ACID transaction, so no ticket is cancelled or refunded twice even
//! when many requests race, and an acknowledged operation survives a crash.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Who an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Buys tickets and attaches them to mail.
    Sender,
    /// Cancels the tickets of mail it receives and refunds the wanted ones.
    Receiver,
}

/// An account as the books hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name (the credential's owner).
    pub name: String,
    /// Sender or receiver.
    pub role: Role,
    /// Tickets a sender may still be issued without paying again.
    pub balance: u64,
}

/// The result of a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancel {
    /// Cancelled now.
    Cancelled,
    /// The same receiver already cancelled it for the same recipient and message: a retry,
    /// answered as the first time.
    AlreadyCancelledSame,
    /// Already used: cancelled for another recipient, message or receiver, or refunded.
    Used,
    /// No such ticket was issued (or it was purged after its expiry).
    Unknown,
    /// Past its expiry.
    Expired,
}

/// The result of a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refund {
    /// Refunded: the sender's balance grew by one.
    Refunded,
    /// Already refunded.
    AlreadyRefunded,
    /// Not cancelled by this receiver (a stranger's refund, or a ticket not cancelled yet).
    NotYours,
    /// No such ticket.
    Unknown,
}

/// One line of an account's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Its number in the account's statement, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// What happened.
    pub kind: OperationKind,
    /// Tickets (or credits) it concerned.
    pub count: u64,
    /// The ticket's serial, for one-ticket operations.
    pub serial: Option<[u8; 16]>,
}

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OperationKind {
    /// Credits granted by the operator.
    Grant,
    /// Credits paid for with work.
    Paid,
    /// Tickets issued (credits spent).
    Issued,
    /// A ticket cancelled (receiver's statement).
    Cancelled,
    /// A ticket refunded (both statements).
    Refunded,
}

impl Role {
    /// The role's number in the books (1 sender, 2 receiver).
    pub(crate) fn code(self) -> u8 {
        match self {
            Role::Sender => 1,
            Role::Receiver => 2,
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Role::Sender),
            2 => Some(Role::Receiver),
            _ => None,
        }
    }
}

impl OperationKind {
    /// The operation's number in the books.
    pub(crate) fn code(self) -> u8 {
        match self {
            OperationKind::Grant => 1,
            OperationKind::Paid => 2,
            OperationKind::Issued => 3,
            OperationKind::Cancelled => 4,
            OperationKind::Refunded => 5,
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => OperationKind::Grant,
            2 => OperationKind::Paid,
            3 => OperationKind::Issued,
            4 => OperationKind::Cancelled,
            5 => OperationKind::Refunded,
            _ => return None,
        })
    }
}

/// Why the books could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BooksError {
    /// The database failed.
    #[error("ticket books {path}: {source}")]
    Db {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: redb::Error,
    },
    /// A record is not what this version writes.
    #[error("ticket books {0}: damaged record")]
    Damaged(PathBuf),
    /// No such account, or not of the role the operation needs.
    #[error("no {role:?} account {name:?}")]
    NoAccount {
        /// The name given.
        name: String,
        /// The role needed.
        role: Role,
    },
    /// An account of that name exists already.
    #[error("account {0:?} exists already")]
    Exists(String),
    /// The balance does not cover the tickets asked for.
    #[error("balance {balance} does not cover {asked} ticket(s)")]
    Insufficient {
        /// The balance.
        balance: u64,
        /// Tickets asked for.
        asked: u64,
    },
    /// An account name that is empty, too long or not printable ASCII.
    #[error("bad account name")]
    BadName,
    /// The PostgreSQL server failed or refused.
    #[error("ticket books (PostgreSQL): {0}")]
    Postgres(String),
}

/// The books of a ticket server.
pub trait TicketStore: Send + Sync {
    /// Opens an account whose credential hashes to `token_hash`.
    fn create_account(
        &self,
        name: &str,
        role: Role,
        token_hash: [u8; 32],
    ) -> Result<(), BooksError>;
    /// The account whose credential hashes to `token_hash`.
    fn account_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Account>, BooksError>;
    /// Adds `n` credits to a sender's balance (`Grant` or `Paid`); returns the new balance.
    fn credit(
        &self,
        sender: &str,
        n: u64,
        kind: OperationKind,
        now: i64,
    ) -> Result<u64, BooksError>;
    /// Spends one credit per serial and records each ticket as issued to `sender`, void after
    /// `expires`; all or nothing. Returns the new balance.
    fn issue(
        &self,
        sender: &str,
        serials: &[[u8; 16]],
        expires: i64,
        now: i64,
    ) -> Result<u64, BooksError>;
    /// Cancels a ticket for `receiver`; `use_key` names the recipient and message it was used
    /// for (a digest of both), so that a retry of the same cancel is recognised.
    fn cancel(
        &self,
        receiver: &str,
        serial: &[u8; 16],
        use_key: &[u8; 32],
        now: i64,
    ) -> Result<Cancel, BooksError>;
    /// Refunds a ticket the `receiver` cancelled: its sender's balance grows by one.
    fn refund(&self, receiver: &str, serial: &[u8; 16], now: i64) -> Result<Refund, BooksError>;
    /// An account.
    fn account(&self, name: &str) -> Result<Option<Account>, BooksError>;
    /// The last `limit` operations of an account, newest first.
    fn statement(&self, name: &str, limit: usize) -> Result<Vec<Operation>, BooksError>;
    /// Forgets issued tickets that were never cancelled and expired before `now`; returns how
    /// many.
    fn purge_expired(&self, now: i64) -> Result<u64, BooksError>;
    /// Makes `receiver` the account that cancels tickets paying for recipients at `domain`
    /// (lower case, matched exactly). A domain has one receiver: giving it to another is
    /// [`BooksError::Exists`]; giving it again to the same one is no change.
    fn add_domain(&self, receiver: &str, domain: &str) -> Result<(), BooksError>;
    /// The receiver account of `domain`, if any.
    fn domain_owner(&self, domain: &str) -> Result<Option<String>, BooksError>;
}

/// A recipient domain as the books keep it: lower case, 1 to 253 letters, digits, '.', '-'
/// or '_'; `None` for anything else.
pub fn domain_key(domain: &str) -> Option<String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()
        && d.len() <= 253
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
    .then_some(d)
}

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const TOKENS: TableDefinition<&[u8; 32], &str> = TableDefinition::new("tokens");
const TICKETS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("tickets");
const BY_EXPIRY: TableDefinition<(i64, &[u8; 16]), ()> = TableDefinition::new("tickets_by_expiry");
const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");
const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");

const ISSUED: u8 = 1;
const CANCELLED: u8 = 2;
const REFUNDED: u8 = 3;

struct AccountRec {
    role: Role,
    balance: u64,
    seq: u64,
}

impl AccountRec {
    fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.role.code()];
        v.extend_from_slice(&self.balance.to_be_bytes());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Option<AccountRec> {
        if b.len() != 17 {
            return None;
        }
        Some(AccountRec {
            role: Role::from_code(b[0])?,
            balance: u64::from_be_bytes(b[1..9].try_into().ok()?),
            seq: u64::from_be_bytes(b[9..17].try_into().ok()?),
        })
    }
}

struct TicketRec {
    state: u8,
    expires: i64,
    use_key: [u8; 32],
    sender: String,
    receiver: String,
}

impl TicketRec {
    fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.state];
        v.extend_from_slice(&self.expires.to_be_bytes());
        v.extend_from_slice(&self.use_key);
        for s in [&self.sender, &self.receiver] {
            v.push(s.len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        v
    }
    fn decode(b: &[u8]) -> Option<TicketRec> {
        let state = *b.first()?;
        let expires = i64::from_be_bytes(b.get(1..9)?.try_into().ok()?);
        let use_key: [u8; 32] = b.get(9..41)?.try_into().ok()?;
        let mut rest = b.get(41..)?;
        let mut names = Vec::new();
        for _ in 0..2 {
            let n = *rest.first()? as usize;
            names.push(String::from_utf8(rest.get(1..1 + n)?.to_vec()).ok()?);
            rest = &rest[1 + n..];
        }
        if !rest.is_empty() || !(ISSUED..=REFUNDED).contains(&state) {
            return None;
        }
        let receiver = names.pop()?;
        let sender = names.pop()?;
        Some(TicketRec {
            state,
            expires,
            use_key,
            sender,
            receiver,
        })
    }
}

pub(crate) fn name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The books in one `redb` file.
pub struct FileTicketStore {
    db: Database,
    path: PathBuf,
}

impl FileTicketStore {
    /// Opens (or creates) the books at `path`.
    pub fn open(path: &Path) -> Result<Self, BooksError> {
        let err = |e: redb::Error| BooksError::Db {
            path: path.to_owned(),
            source: e,
        };
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let tx = db.begin_write().map_err(|e| err(e.into()))?;
        {
            tx.open_table(ACCOUNTS).map_err(|e| err(e.into()))?;
            tx.open_table(TOKENS).map_err(|e| err(e.into()))?;
            tx.open_table(TICKETS).map_err(|e| err(e.into()))?;
            tx.open_table(BY_EXPIRY).map_err(|e| err(e.into()))?;
            tx.open_table(LOG).map_err(|e| err(e.into()))?;
        }
        tx.commit().map_err(|e| err(e.into()))?;
        Ok(FileTicketStore {
            db,
            path: path.to_owned(),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> BooksError {
        BooksError::Db {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    fn damaged(&self) -> BooksError {
        BooksError::Damaged(self.path.clone())
    }

    /// Runs `f` in one write transaction, committed only when it returns `Ok`.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, BooksError>,
    ) -> Result<T, BooksError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    fn load_account(
        &self,
        t: &redb::Table<'_, &str, &[u8]>,
        name: &str,
        role: Role,
    ) -> Result<AccountRec, BooksError> {
        let rec = match t.get(name).map_err(|e| self.err(e))? {
            Some(v) => AccountRec::decode(v.value()).ok_or_else(|| self.damaged())?,
            None => None.ok_or_else(|| BooksError::NoAccount {
                name: name.to_owned(),
                role,
            })?,
        };
        if rec.role != role {
            return Err(BooksError::NoAccount {
                name: name.to_owned(),
                role,
            });
        }
        Ok(rec)
    }

    /// Appends an operation to `name`'s statement (bumping its sequence in `rec`).
    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        tx: &redb::WriteTransaction,
        name: &str,
        rec: &mut AccountRec,
        kind: OperationKind,
        count: u64,
        serial: Option<&[u8; 16]>,
        now: i64,
    ) -> Result<(), BooksError> {
        rec.seq += 1;
        let mut v = vec![kind.code()];
        v.extend_from_slice(&now.to_be_bytes());
        v.extend_from_slice(&count.to_be_bytes());
        if let Some(s) = serial {
            v.extend_from_slice(s);
        }
        let mut log = tx.open_table(LOG).map_err(|e| self.err(e))?;
        log.insert((name, rec.seq), v.as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl TicketStore for FileTicketStore {
    fn create_account(
        &self,
        name: &str,
        role: Role,
        token_hash: [u8; 32],
    ) -> Result<(), BooksError> {
        if !name_ok(name) {
            return Err(BooksError::BadName);
        }
        self.write(|tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            if accounts.get(name).map_err(|e| self.err(e))?.is_some() {
                return Err(BooksError::Exists(name.to_owned()));
            }
            let rec = AccountRec {
                role,
                balance: 0,
                seq: 0,
            };
            accounts
                .insert(name, rec.encode().as_slice())
                .map_err(|e| self.err(e))?;
            let mut tokens = tx.open_table(TOKENS).map_err(|e| self.err(e))?;
            tokens.insert(&token_hash, name).map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    fn account_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Account>, BooksError> {
        let name = {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let tokens = tx.open_table(TOKENS).map_err(|e| self.err(e))?;
            match tokens.get(token_hash).map_err(|e| self.err(e))? {
                Some(n) => n.value().to_owned(),
                None => return Ok(None),
            }
        };
        self.account(&name)
    }

    fn credit(
        &self,
        sender: &str,
        n: u64,
        kind: OperationKind,
        now: i64,
    ) -> Result<u64, BooksError> {
        self.write(|tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let mut rec = self.load_account(&accounts, sender, Role::Sender)?;
            rec.balance = rec.balance.saturating_add(n);
            self.log(tx, sender, &mut rec, kind, n, None, now)?;
            accounts
                .insert(sender, rec.encode().as_slice())
                .map_err(|e| self.err(e))?;
            Ok(rec.balance)
        })
    }

    fn issue(
        &self,
        sender: &str,
        serials: &[[u8; 16]],
        expires: i64,
        now: i64,
    ) -> Result<u64, BooksError> {
        self.write(|tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let mut rec = self.load_account(&accounts, sender, Role::Sender)?;
            let asked = serials.len() as u64;
            if rec.balance < asked {
                return Err(BooksError::Insufficient {
                    balance: rec.balance,
                    asked,
                });
            }
            rec.balance -= asked;
            {
                let mut tickets = tx.open_table(TICKETS).map_err(|e| self.err(e))?;
                let mut by_exp = tx.open_table(BY_EXPIRY).map_err(|e| self.err(e))?;
                for s in serials {
                    let t = TicketRec {
                        state: ISSUED,
                        expires,
                        use_key: [0; 32],
                        sender: sender.to_owned(),
                        receiver: String::new(),
                    };
                    let old = tickets
                        .insert(s, t.encode().as_slice())
                        .map_err(|e| self.err(e))?;
                    if old.is_some() {
                        // A serial issued twice: a broken random source. Nothing is committed.
                        return Err(self.damaged());
                    }
                    by_exp.insert((expires, s), ()).map_err(|e| self.err(e))?;
                }
            }
            self.log(
                tx,
                sender,
                &mut rec,
                OperationKind::Issued,
                asked,
                None,
                now,
            )?;
            accounts
                .insert(sender, rec.encode().as_slice())
                .map_err(|e| self.err(e))?;
            Ok(rec.balance)
        })
    }

    fn cancel(
        &self,
        receiver: &str,
        serial: &[u8; 16],
        use_key: &[u8; 32],
        now: i64,
    ) -> Result<Cancel, BooksError> {
        self.write(|tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let mut rec = self.load_account(&accounts, receiver, Role::Receiver)?;
            let mut tickets = tx.open_table(TICKETS).map_err(|e| self.err(e))?;
            let mut t = match tickets.get(serial).map_err(|e| self.err(e))? {
                Some(v) => TicketRec::decode(v.value()).ok_or_else(|| self.damaged())?,
                None => return Ok(Cancel::Unknown),
            };
            match t.state {
                CANCELLED | REFUNDED => {
                    let same = t.receiver == receiver
                        && bool::from(subtle::ConstantTimeEq::ct_eq(&t.use_key[..], &use_key[..]));
                    return Ok(if same && t.state == CANCELLED {
                        Cancel::AlreadyCancelledSame
                    } else {
                        Cancel::Used
                    });
                }
                _ => {}
            }
            if now > t.expires {
                return Ok(Cancel::Expired);
            }
            t.state = CANCELLED;
            t.use_key = *use_key;
            t.receiver = receiver.to_owned();
            tickets
                .insert(serial, t.encode().as_slice())
                .map_err(|e| self.err(e))?;
            // A cancelled ticket is kept past its expiry (a refund may follow).
            let mut by_exp = tx.open_table(BY_EXPIRY).map_err(|e| self.err(e))?;
            by_exp
                .remove((t.expires, serial))
                .map_err(|e| self.err(e))?;
            drop(by_exp);
            drop(tickets);
            self.log(
                tx,
                receiver,
                &mut rec,
                OperationKind::Cancelled,
                1,
                Some(serial),
                now,
            )?;
            accounts
                .insert(receiver, rec.encode().as_slice())
                .map_err(|e| self.err(e))?;
            Ok(Cancel::Cancelled)
        })
    }

    fn refund(&self, receiver: &str, serial: &[u8; 16], now: i64) -> Result<Refund, BooksError> {
        self.write(|tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let mut rrec = self.load_account(&accounts, receiver, Role::Receiver)?;
            let mut tickets = tx.open_table(TICKETS).map_err(|e| self.err(e))?;
            let mut t = match tickets.get(serial).map_err(|e| self.err(e))? {
                Some(v) => TicketRec::decode(v.value()).ok_or_else(|| self.damaged())?,
                None => return Ok(Refund::Unknown),
            };
            if t.receiver != receiver || t.state == ISSUED {
                return Ok(Refund::NotYours);
            }
            if t.state == REFUNDED {
                return Ok(Refund::AlreadyRefunded);
            }
            t.state = REFUNDED;
            tickets
                .insert(serial, t.encode().as_slice())
                .map_err(|e| self.err(e))?;
            drop(tickets);
            let mut srec = self.load_account(&accounts, &t.sender, Role::Sender)?;
            srec.balance = srec.balance.saturating_add(1);
            self.log(
                tx,
                &t.sender,
                &mut srec,
                OperationKind::Refunded,
                1,
                Some(serial),
                now,
            )?;
            self.log(
                tx,
                receiver,
                &mut rrec,
                OperationKind::Refunded,
                1,
                Some(serial),
                now,
            )?;
            accounts
                .insert(t.sender.as_str(), srec.encode().as_slice())
                .map_err(|e| self.err(e))?;
            accounts
                .insert(receiver, rrec.encode().as_slice())
                .map_err(|e| self.err(e))?;
            Ok(Refund::Refunded)
        })
    }

    fn account(&self, name: &str) -> Result<Option<Account>, BooksError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let accounts = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
        let Some(v) = accounts.get(name).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let rec = AccountRec::decode(v.value()).ok_or_else(|| self.damaged())?;
        Ok(Some(Account {
            name: name.to_owned(),
            role: rec.role,
            balance: rec.balance,
        }))
    }

    fn statement(&self, name: &str, limit: usize) -> Result<Vec<Operation>, BooksError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let log = tx.open_table(LOG).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in log
            .range((name, 0)..=(name, u64::MAX))
            .map_err(|e| self.err(e))?
            .rev()
            .take(limit)
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let b = v.value();
            let kind = b
                .first()
                .and_then(|c| OperationKind::from_code(*c))
                .ok_or_else(|| self.damaged())?;
            if b.len() != 17 && b.len() != 33 {
                return Err(self.damaged());
            }
            out.push(Operation {
                seq: k.value().1,
                at: i64::from_be_bytes(b[1..9].try_into().expect("8 bytes")),
                count: u64::from_be_bytes(b[9..17].try_into().expect("8 bytes")),
                serial: b.get(17..33).map(|s| s.try_into().expect("16 bytes")),
                kind,
            });
        }
        Ok(out)
    }

    fn add_domain(&self, receiver: &str, domain: &str) -> Result<(), BooksError> {
        let domain = domain_key(domain).ok_or(BooksError::BadName)?;
        self.write(|tx| {
            let accounts = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            self.load_account(&accounts, receiver, Role::Receiver)?;
            let mut domains = tx.open_table(DOMAINS).map_err(|e| self.err(e))?;
            if let Some(owner) = domains.get(domain.as_str()).map_err(|e| self.err(e))? {
                if owner.value() == receiver {
                    return Ok(());
                }
                return Err(BooksError::Exists(domain.clone()));
            }
            domains
                .insert(domain.as_str(), receiver)
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    fn domain_owner(&self, domain: &str) -> Result<Option<String>, BooksError> {
        let Some(domain) = domain_key(domain) else {
            return Ok(None);
        };
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let domains = match tx.open_table(DOMAINS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(domains
            .get(domain.as_str())
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_owned()))
    }

    fn purge_expired(&self, now: i64) -> Result<u64, BooksError> {
        self.write(|tx| {
            let mut by_exp = tx.open_table(BY_EXPIRY).map_err(|e| self.err(e))?;
            let mut tickets = tx.open_table(TICKETS).map_err(|e| self.err(e))?;
            let gone: Vec<(i64, [u8; 16])> = by_exp
                .range((i64::MIN, &[0u8; 16])..(now, &[0u8; 16]))
                .map_err(|e| self.err(e))?
                .map(|item| item.map(|(k, _)| (k.value().0, *k.value().1)))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for (exp, serial) in &gone {
                by_exp.remove((*exp, serial)).map_err(|e| self.err(e))?;
                tickets.remove(serial).map_err(|e| self.err(e))?;
            }
            Ok(gone.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn books() -> (tempfile::TempDir, FileTicketStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = FileTicketStore::open(&dir.path().join("books.redb")).unwrap();
        s.create_account("alice", Role::Sender, [1; 32]).unwrap();
        s.create_account("mx1", Role::Receiver, [2; 32]).unwrap();
        s.create_account("mx2", Role::Receiver, [3; 32]).unwrap();
        (dir, s)
    }

    #[test]
    fn buy_cancel_retry_refund_once() {
        let (_d, s) = books();
        assert_eq!(s.credit("alice", 2, OperationKind::Grant, 10).unwrap(), 2);
        assert_eq!(s.issue("alice", &[[7; 16], [8; 16]], 1000, 11).unwrap(), 0);
        assert!(matches!(
            s.issue("alice", &[[9; 16]], 1000, 12),
            Err(BooksError::Insufficient {
                balance: 0,
                asked: 1
            })
        ));
        let use1 = [5; 32];
        assert_eq!(
            s.cancel("mx1", &[7; 16], &use1, 20).unwrap(),
            Cancel::Cancelled
        );
        // A lost reply retried: the same answer; another use: refused.
        assert_eq!(
            s.cancel("mx1", &[7; 16], &use1, 21).unwrap(),
            Cancel::AlreadyCancelledSame
        );
        assert_eq!(
            s.cancel("mx1", &[7; 16], &[6; 32], 21).unwrap(),
            Cancel::Used
        );
        assert_eq!(s.cancel("mx2", &[7; 16], &use1, 21).unwrap(), Cancel::Used);
        // Refund by a stranger, then by the canceller, then again.
        assert_eq!(s.refund("mx2", &[7; 16], 30).unwrap(), Refund::NotYours);
        assert_eq!(s.refund("mx1", &[8; 16], 30).unwrap(), Refund::NotYours);
        assert_eq!(s.refund("mx1", &[7; 16], 30).unwrap(), Refund::Refunded);
        assert_eq!(s.account("alice").unwrap().unwrap().balance, 1);
        assert_eq!(
            s.refund("mx1", &[7; 16], 31).unwrap(),
            Refund::AlreadyRefunded
        );
        assert_eq!(s.account("alice").unwrap().unwrap().balance, 1);
        // A refunded ticket cannot be cancelled again.
        assert_eq!(s.cancel("mx1", &[7; 16], &use1, 32).unwrap(), Cancel::Used);
        assert_eq!(
            s.cancel("mx1", &[1; 16], &use1, 32).unwrap(),
            Cancel::Unknown
        );
        let st = s.statement("alice", 10).unwrap();
        let kinds: Vec<_> = st.iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            [
                OperationKind::Refunded,
                OperationKind::Issued,
                OperationKind::Grant
            ]
        );
        assert_eq!(st[0].serial, Some([7; 16]));
    }

    #[test]
    fn expiry_and_purge() {
        let (_d, s) = books();
        s.credit("alice", 3, OperationKind::Paid, 0).unwrap();
        s.issue("alice", &[[1; 16], [2; 16]], 100, 0).unwrap();
        s.issue("alice", &[[3; 16]], 500, 0).unwrap();
        assert_eq!(
            s.cancel("mx1", &[1; 16], &[0; 32], 101).unwrap(),
            Cancel::Expired
        );
        assert_eq!(
            s.cancel("mx1", &[3; 16], &[0; 32], 101).unwrap(),
            Cancel::Cancelled
        );
        assert_eq!(s.purge_expired(200).unwrap(), 2);
        assert_eq!(
            s.cancel("mx1", &[2; 16], &[0; 32], 201).unwrap(),
            Cancel::Unknown
        );
        // A cancelled ticket stays for its refund.
        assert_eq!(s.purge_expired(1000).unwrap(), 0);
        assert_eq!(s.refund("mx1", &[3; 16], 1001).unwrap(), Refund::Refunded);
    }

    #[test]
    fn a_domain_has_one_receiver() {
        let (_d, b) = books();
        b.create_account("rx1", Role::Receiver, [1; 32]).unwrap();
        b.create_account("rx2", Role::Receiver, [2; 32]).unwrap();
        b.create_account("sx", Role::Sender, [3; 32]).unwrap();
        assert_eq!(b.domain_owner("example.net").unwrap(), None);
        b.add_domain("rx1", "Example.NET.").unwrap();
        b.add_domain("rx1", "example.net").unwrap();
        assert_eq!(
            b.domain_owner("EXAMPLE.net").unwrap().as_deref(),
            Some("rx1")
        );
        assert!(matches!(
            b.add_domain("rx2", "example.net"),
            Err(BooksError::Exists(_))
        ));
        assert!(matches!(
            b.add_domain("sx", "example.org"),
            Err(BooksError::NoAccount { .. })
        ));
        assert!(matches!(
            b.add_domain("rx2", "a b"),
            Err(BooksError::BadName)
        ));
        assert_eq!(b.domain_owner("sub.example.net").unwrap(), None);
        assert_eq!(b.domain_owner("").unwrap(), None);
    }

    #[test]
    fn roles_names_and_tokens() {
        let (_d, s) = books();
        assert!(matches!(
            s.create_account("alice", Role::Sender, [9; 32]),
            Err(BooksError::Exists(_))
        ));
        assert!(matches!(
            s.create_account("a b", Role::Sender, [9; 32]),
            Err(BooksError::BadName)
        ));
        // A receiver cannot buy, a sender cannot cancel.
        assert!(s.credit("mx1", 1, OperationKind::Grant, 0).is_err());
        assert!(s.cancel("alice", &[0; 16], &[0; 32], 0).is_err());
        assert_eq!(s.account_by_token(&[2; 32]).unwrap().unwrap().name, "mx1");
        assert!(s.account_by_token(&[4; 32]).unwrap().is_none());
    }

    #[test]
    fn racing_cancels_give_exactly_one_success() {
        let (_d, s) = books();
        s.credit("alice", 1, OperationKind::Grant, 0).unwrap();
        s.issue("alice", &[[7; 16]], 1000, 0).unwrap();
        let s = std::sync::Arc::new(s);
        let results: Vec<Cancel> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8u8)
                .map(|i| {
                    let s = std::sync::Arc::clone(&s);
                    sc.spawn(move || {
                        let who = if i % 2 == 0 { "mx1" } else { "mx2" };
                        s.cancel(who, &[7; 16], &[i; 32], 1).unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| **r == Cancel::Cancelled).count(),
            1
        );
        assert_eq!(results.iter().filter(|r| **r == Cancel::Used).count(), 7);
    }

    #[test]
    fn acknowledged_operations_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("books.redb");
        {
            let s = FileTicketStore::open(&path).unwrap();
            s.create_account("alice", Role::Sender, [1; 32]).unwrap();
            s.create_account("mx1", Role::Receiver, [2; 32]).unwrap();
            s.credit("alice", 1, OperationKind::Grant, 0).unwrap();
            s.issue("alice", &[[7; 16]], 1000, 0).unwrap();
            assert_eq!(
                s.cancel("mx1", &[7; 16], &[1; 32], 1).unwrap(),
                Cancel::Cancelled
            );
        }
        let s = FileTicketStore::open(&path).unwrap();
        assert_eq!(s.cancel("mx2", &[7; 16], &[1; 32], 2).ok(), None); // no such receiver
        assert_eq!(
            s.cancel("mx1", &[7; 16], &[1; 32], 2).unwrap(),
            Cancel::AlreadyCancelledSame
        );
    }
}

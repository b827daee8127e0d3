//! A sender's wallet of bought tickets: one file, one ticket per line (its secret in base64url,
//! a space, the ticket), mode 600 because the secrets are what make a ticket spendable.
//!
//! Every change is made under an exclusive lock (a `.lock` file beside the wallet) by writing
//! the whole new wallet to a temporary file, syncing it and renaming it into place, so a crash
//! leaves the old wallet or the new one, never half of one, and two processes (a buyer topping
//! up and a milter taking tickets) never hand out one ticket twice.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::Ticket;

/// A ticket and its secret, as bought.
pub type Bought = (Ticket, [u8; 32]);

/// Tickets expiring within this many seconds (5 days, Postfix's longest queue lifetime by
/// default) are not handed out: the message must still reach its receiver, perhaps after its
/// MTA's retries, before the ticket expires. They stay in the wallet until they expire.
pub const EXPIRY_MARGIN: i64 = 5 * 86_400;

/// A wallet file.
#[derive(Debug, Clone)]
pub struct Wallet {
    path: PathBuf,
}

fn other(path: &Path, what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{}: {what}", path.display()))
}

impl Wallet {
    /// The wallet at `path` (made on the first purchase). An existing wallet others may read is
    /// refused.
    pub fn open(path: &Path) -> std::io::Result<Wallet> {
        match std::fs::metadata(path) {
            Ok(m) if m.mode() & 0o077 != 0 => Err(other(
                path,
                format!(
                    "others may read this wallet (mode {:o}): chmod 600 it",
                    m.mode() & 0o777
                ),
            )),
            Ok(m) if !m.is_file() => Err(other(path, "not a file")),
            Ok(_) => Ok(Wallet {
                path: path.to_owned(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Wallet {
                path: path.to_owned(),
            }),
            Err(e) => Err(other(path, e)),
        }
    }

    /// The wallet's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::io::Result<File> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(PathBuf::from(name))?;
        f.lock()?;
        Ok(f)
    }

    fn read(&self) -> std::io::Result<Vec<Bought>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(other(&self.path, e)),
        };
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = || other(&self.path, format!("line {}: not a wallet entry", n + 1));
            let (secret, ticket) = line.split_once(' ').ok_or_else(bad)?;
            let secret: [u8; 32] = B64
                .decode(secret)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)?;
            let ticket = Ticket::parse(ticket).map_err(|_| bad())?;
            out.push((ticket, secret));
        }
        Ok(out)
    }

    fn write(&self, tickets: &[Bought]) -> std::io::Result<()> {
        let mut text = String::with_capacity(tickets.len() * 200);
        for (t, s) in tickets {
            text.push_str(&B64.encode(s));
            text.push(' ');
            text.push_str(&t.to_string());
            text.push('\n');
        }
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Adds bought tickets.
    pub fn add(&self, bought: &[Bought]) -> std::io::Result<()> {
        let _lock = self.lock()?;
        let mut all = self.read()?;
        all.extend_from_slice(bought);
        self.write(&all)
    }

    /// How many tickets can still be handed out at `now`, and the soonest of their expiries.
    pub fn count(&self, now: i64) -> std::io::Result<(usize, Option<i64>)> {
        let _lock = self.lock()?;
        let usable: Vec<i64> = self
            .read()?
            .iter()
            .map(|(t, _)| t.expires)
            .filter(|&e| e > now + EXPIRY_MARGIN)
            .collect();
        Ok((usable.len(), usable.iter().min().copied()))
    }

    /// Takes up to `n` tickets out of the wallet, the soonest to expire first among those that
    /// expire after [`EXPIRY_MARGIN`] from `now`, and drops the expired ones. What is taken is
    /// gone from the wallet (put back with [`Wallet::put_back`] if the message is not sent
    /// after all).
    pub fn take(&self, n: usize, now: i64) -> std::io::Result<Vec<Bought>> {
        let _lock = self.lock()?;
        let mut all = self.read()?;
        let before = all.len();
        all.retain(|(t, _)| t.expires > now);
        all.sort_by_key(|(t, _)| t.expires);
        let first = all.partition_point(|(t, _)| t.expires <= now + EXPIRY_MARGIN);
        let end = (first + n).min(all.len());
        let taken: Vec<Bought> = all.drain(first..end).collect();
        if !taken.is_empty() || all.len() != before {
            self.write(&all)?;
        }
        Ok(taken)
    }

    /// Puts back tickets taken but not used.
    pub fn put_back(&self, tickets: &[Bought]) -> std::io::Result<()> {
        self.add(tickets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::Issuer;

    #[test]
    fn tickets_go_in_and_come_out_once_soonest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet");
        let iss = Issuer::new("tickets.example.org", "k1", [1; 32], [2; 32]).unwrap();
        let w = Wallet::open(&path).unwrap();
        assert_eq!(w.count(0).unwrap(), (0, None));
        let m = EXPIRY_MARGIN;
        let bought: Vec<Bought> = [(1, 50 * m), (2, 20 * m), (3, m + 900), (4, 90 * m)]
            .into_iter()
            .map(|(s, exp)| iss.issue([s; 16], exp))
            .collect();
        w.add(&bought).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // At 1000 the ticket expiring at m + 900 is within the margin: never handed out.
        assert_eq!(w.count(1000).unwrap(), (3, Some(20 * m)));
        let two = w.take(2, 1000).unwrap();
        assert_eq!(
            two.iter().map(|(t, _)| t.expires).collect::<Vec<_>>(),
            [20 * m, 50 * m]
        );
        assert_eq!(two[0].1, iss.ticket_secret(&[2; 16]));
        assert_eq!(w.count(1000).unwrap(), (1, Some(90 * m)));
        w.put_back(&two[..1]).unwrap();
        assert_eq!(w.take(5, 1000).unwrap().len(), 2);
        assert!(w.take(1, 1000).unwrap().is_empty());
        // The one within the margin stayed until it expired.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert!(w.take(1, m + 901).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 0);
        // A wallet others can read is refused.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(Wallet::open(&path).is_err());
        // A damaged wallet is an error, not an empty one.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(w.count(0).is_err());
    }
}

//! The sender's store of messages it sent with postage (cargo feature `mail`): a folder of
//! kept messages, so that a receiver's postage challenge can be answered by re-sending the very
//! message it names with stamps that meet its requirement (`pennyblack answer`).
//!
//! Each message is one file, written whole to a temporary name and renamed into place (mode
//! 0600), named `TIME-KEY.sent` where KEY is a digest of the message's body digest and
//! Message-ID (what a challenge names, [`crate::challenge::Challenge`]); the file holds a few
//! metadata lines (envelope sender, recipients, time, body digest, Message-ID, the recipients
//! already answered), an empty line, then the message as it was sent, before its stamps.
//!
//! Bounded by age ([`SentLimits::keep_for`]), by count ([`SentLimits::max_messages`], the
//! oldest go first) and by size ([`SentLimits::max_message_size`]: a larger message is not
//! kept); pruned on every write. Writers and answerers take the folder's lock (`.lock`) for
//! the time of a change, so an answer is recorded at most once per recipient.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

use crate::mail::Message;

/// The bounds of a sent-message store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentLimits {
    /// How long a message is kept, in seconds (`--keep-for`, default 3 days: a challenge's
    /// default lifetime).
    pub keep_for: i64,
    /// The most messages kept; the oldest go first (default 10 000).
    pub max_messages: usize,
    /// The largest message kept, in bytes; larger ones are not kept (default 10 MiB).
    pub max_message_size: usize,
    /// The most bytes all kept files hold together; the oldest go first (default 1 GiB).
    pub max_total_bytes: u64,
}

impl Default for SentLimits {
    fn default() -> Self {
        SentLimits {
            keep_for: 3 * 86_400,
            max_messages: 10_000,
            max_message_size: 10 << 20,
            max_total_bytes: 1 << 30,
        }
    }
}

/// The most recipients kept with one message (more are not kept: such a message is a list's).
pub const MAX_RCPTS: usize = 1000;

/// Why the store failed or refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SentError {
    /// Reading or writing the folder failed.
    #[error("sent-message store: {0}")]
    Io(#[from] std::io::Error),
    /// The message is larger than [`SentLimits::max_message_size`].
    #[error("the message is {size} bytes, more than the {max} kept")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An address cannot be stored (white space or a control character, or empty), or too
    /// many recipients.
    #[error("cannot be kept: {0}")]
    Unrepresentable(&'static str),
    /// A stored file is not in the store's format.
    #[error("{0}: not a kept message (damaged?)")]
    Damaged(PathBuf),
}

/// A kept message and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The envelope sender (MAIL FROM), empty for the null sender.
    pub sender: String,
    /// The envelope recipients.
    pub rcpts: Vec<String>,
    /// When it was kept, Unix seconds.
    pub time: i64,
    /// [`crate::bind::body_digest`] of its body.
    pub digest: [u8; 32],
    /// Its Message-ID without angle brackets ([`message_id_of`]).
    pub message_id: Option<String>,
    /// The recipients whose challenge has been answered.
    pub answered: Vec<String>,
    /// The message as it was sent (before its stamps and signatures).
    pub raw: Vec<u8>,
}

/// The Message-ID of `msg` without its angle brackets, as a challenge carries it (`id=`):
/// `None` when there is none, several, or one a challenge cannot carry. Sender and receiver
/// both read it this way, so they find the same message.
pub fn message_id_of(msg: &Message) -> Option<String> {
    let mut ids = msg.fields_named("Message-ID");
    let first = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    let v = first.value();
    let id = v.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = !id.is_empty()
        && id.len() <= crate::challenge::MAX_ID_LEN
        && id
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b';' && b != b',');
    ok.then(|| id.to_owned())
}

fn storable(addr: &str) -> bool {
    addr.len() <= 254 && addr.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The key of a message: hex of the first 16 bytes of SHA-256(digest, 0, id).
fn key_of(digest: &[u8; 32], message_id: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(digest);
    h.update([0u8]);
    h.update(message_id.unwrap_or("").as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file of the store: its path, time and key (from its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file.
    pub path: PathBuf,
    time: i64,
    key: String,
    size: u64,
}

/// The folder's lock, held until dropped.
pub struct SentLock(#[allow(dead_code)] File);

/// A folder of kept messages.
#[derive(Debug, Clone)]
pub struct SentStore {
    dir: PathBuf,
    limits: SentLimits,
}

impl SentStore {
    /// Opens (creating it, mode 0700, when missing) the store in `dir`.
    pub fn open(dir: &Path, limits: SentLimits) -> Result<SentStore, SentError> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        if !dir.is_dir() {
            return Err(SentError::Io(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a folder", dir.display()),
            )));
        }
        // Anyone who can write the folder can plant messages that `answer` would re-send with
        // our stamps and signature (review 19).
        let mode = std::fs::symlink_metadata(dir)?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(SentError::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{}: others can write this folder (mode {:o}): chmod 700 it",
                    dir.display(),
                    mode & 0o777
                ),
            )));
        }
        Ok(SentStore {
            dir: dir.to_owned(),
            limits,
        })
    }

    /// The store's bounds.
    pub fn limits(&self) -> SentLimits {
        self.limits
    }

    /// Takes the folder's lock (blocking until it is free).
    pub fn lock(&self) -> Result<SentLock, SentError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".lock"))?;
        f.lock()?;
        Ok(SentLock(f))
    }

    /// Takes the answerers' lock (blocking until it is free): one `pennyblack answer` at a
    /// time decides, sends and records, so a recipient is answered at most once. Writers of
    /// the store do not wait for it.
    pub fn lock_answers(&self) -> Result<SentLock, SentError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".answer.lock"))?;
        f.lock()?;
        Ok(SentLock(f))
    }

    /// Keeps `msg`, sent by `sender` to `rcpts` at `now`: pruned first, then written whole to
    /// a temporary file and renamed into place; an earlier copy of the same message (same body
    /// digest and Message-ID) is replaced.
    pub fn keep(
        &self,
        sender: &str,
        rcpts: &[String],
        msg: &Message,
        now: i64,
    ) -> Result<PathBuf, SentError> {
        let raw = msg.as_bytes();
        if raw.len() > self.limits.max_message_size {
            return Err(SentError::TooLarge {
                size: raw.len(),
                max: self.limits.max_message_size,
            });
        }
        if !sender.is_empty() && !storable(sender) {
            return Err(SentError::Unrepresentable("the envelope sender"));
        }
        if rcpts.is_empty() || rcpts.len() > MAX_RCPTS {
            return Err(SentError::Unrepresentable("the number of recipients"));
        }
        if !rcpts.iter().all(|r| !r.is_empty() && storable(r)) {
            return Err(SentError::Unrepresentable("a recipient address"));
        }
        let mut kept = SentMessage {
            sender: sender.to_owned(),
            rcpts: rcpts.to_vec(),
            time: now,
            digest: crate::bind::body_digest(msg.body()),
            message_id: message_id_of(msg),
            answered: Vec::new(),
            raw: raw.to_vec(),
        };
        let _lock = self.lock()?;
        let key = key_of(&kept.digest, kept.message_id.as_deref());
        let bytes = encode(&kept);
        let mut entries = self.prune_locked(now, 1, bytes.len() as u64, Some(&key))?;
        let path = self.dir.join(format!("{now:011}-{key}.sent"));
        // A copy kept again (the same message re-sent, e.g. an answer through a milter that
        // keeps what it sends) inherits the recipients and answers of the earlier copies, so
        // a challenge answered once cannot be answered again (review 19).
        // The copy at `path` itself too: kept again within the same second, it is overwritten.
        for e in entries.iter().filter(|e| e.key == key) {
            if let Ok(old) = self.read(&e.path) {
                for r in old.rcpts {
                    if !kept.rcpts.iter().any(|x| crate::bind::same_address(x, &r))
                        && kept.rcpts.len() < MAX_RCPTS
                    {
                        kept.rcpts.push(r);
                    }
                }
                for a in old.answered {
                    if !kept
                        .answered
                        .iter()
                        .any(|x| crate::bind::same_address(x, &a))
                    {
                        kept.answered.push(a);
                    }
                }
            }
        }
        self.write_atomic(&path, &encode(&kept))?;
        for e in entries.drain(..).filter(|e| e.key == key && e.path != path) {
            let _ = std::fs::remove_file(&e.path);
        }
        Ok(path)
    }

    /// Finds the message with this body digest and Message-ID (the newest copy); `None` when
    /// it is not kept (never sent, or pruned).
    pub fn find(
        &self,
        digest: &[u8; 32],
        message_id: Option<&str>,
    ) -> Result<Option<(Entry, SentMessage)>, SentError> {
        let key = key_of(digest, message_id);
        let Some(e) = self
            .entries()?
            .into_iter()
            .filter(|e| e.key == key)
            .max_by_key(|e| e.time)
        else {
            return Ok(None);
        };
        let m = self.read(&e.path)?;
        // The key is a digest: the metadata must say the same.
        if m.digest != *digest || m.message_id.as_deref() != message_id {
            return Ok(None);
        }
        Ok(Some((e, m)))
    }

    /// Records that `rcpts` of the kept message `entry` were answered (rewritten atomically;
    /// nothing when the message has been pruned meanwhile). Call it holding [`SentStore::lock`].
    pub fn mark_answered(&self, entry: &Entry, rcpts: &[String]) -> Result<(), SentError> {
        // Under the store's lock, on the newest copy of the message (a copy kept again since
        // replaced the entry found); a message no longer kept is an error, never a silent
        // success (review 19).
        let _lock = self.lock()?;
        let newest = self
            .entries()?
            .into_iter()
            .filter(|e| e.key == entry.key)
            .max_by_key(|e| e.time)
            .ok_or_else(|| {
                SentError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the message was pruned before its answer could be recorded",
                ))
            })?;
        let mut m = self.read(&newest.path)?;
        for r in rcpts {
            if !m.answered.iter().any(|a| crate::bind::same_address(a, r)) {
                m.answered.push(r.clone());
            }
        }
        self.write_atomic(&newest.path, &encode(&m))
    }

    /// Removes what is past the bounds now; returns how many were removed.
    pub fn prune(&self, now: i64) -> Result<usize, SentError> {
        let _lock = self.lock()?;
        let before = self.entries()?.len();
        let after = self.prune_locked(now, 0, 0, None)?.len();
        Ok(before - after)
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, SentError> {
        let mut out = Vec::new();
        for d in std::fs::read_dir(&self.dir)? {
            let d = d?;
            let name = d.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".sent") else {
                continue;
            };
            let Some((time, key)) = stem.split_once('-') else {
                continue;
            };
            let Ok(time) = time.parse::<i64>() else {
                continue;
            };
            if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let size = d.metadata().map_or(0, |m| m.len());
            out.push(Entry {
                path: d.path(),
                time,
                key: key.to_owned(),
                size,
            });
        }
        out.sort_by(|a, b| (a.time, &a.path).cmp(&(b.time, &b.path)));
        Ok(out)
    }

    /// Removes entries older than `keep_for`, then the oldest until `room` more fit under
    /// `max_messages` and `room_bytes` more under `max_total_bytes`, and temporary files left
    /// by a crash over an hour ago. Returns what is left, oldest first.
    fn prune_locked(
        &self,
        now: i64,
        room: usize,
        room_bytes: u64,
        keeping: Option<&str>,
    ) -> Result<Vec<Entry>, SentError> {
        let mut entries = self.entries()?;
        let oldest_kept = now.saturating_sub(self.limits.keep_for);
        let mut left = Vec::with_capacity(entries.len());
        for e in entries.drain(..) {
            if e.time < oldest_kept {
                let _ = std::fs::remove_file(&e.path);
            } else {
                left.push(e);
            }
        }
        // Over the count or the byte budget, the oldest go first; older copies of the message
        // being kept stay (it replaces them, keeping their answers: review).
        let same = |e: &Entry| keeping.is_some_and(|k| e.key == k);
        let max = self.limits.max_messages.saturating_sub(room);
        let budget = self.limits.max_total_bytes.saturating_sub(room_bytes);
        let mut count = left.len();
        let mut total: u64 = left.iter().filter(|e| !same(e)).map(|e| e.size).sum();
        left.retain(|e| {
            if same(e) || (count <= max && total <= budget) {
                return true;
            }
            let _ = std::fs::remove_file(&e.path);
            count -= 1;
            total -= e.size;
            false
        });
        for d in std::fs::read_dir(&self.dir)?.flatten() {
            let stale = d
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".tmp-"))
                && d.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
            if stale {
                let _ = std::fs::remove_file(d.path());
            }
        }
        Ok(left)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), SentError> {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        let result = write_then_rename(&tmp, path, bytes);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }

    /// Reads a kept message.
    pub fn read(&self, path: &Path) -> Result<SentMessage, SentError> {
        let mut buf = Vec::new();
        File::open(path)?
            .take((self.limits.max_message_size + (1 << 20)) as u64)
            .read_to_end(&mut buf)?;
        decode(&buf).ok_or_else(|| SentError::Damaged(path.to_owned()))
    }
}

/// Writes `bytes` to the new file `tmp` (mode 0600), syncs it, and renames it to `path`.
fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

const MAGIC: &str = "pennyblack-sent 1";

fn encode(m: &SentMessage) -> Vec<u8> {
    let mut s = format!("{MAGIC}\nfrom {}\n", m.sender);
    for r in &m.rcpts {
        s.push_str(&format!("rcpt {r}\n"));
    }
    s.push_str(&format!(
        "time {}\ndigest {}\n",
        m.time,
        B64.encode(m.digest)
    ));
    if let Some(id) = &m.message_id {
        s.push_str(&format!("id {id}\n"));
    }
    for a in &m.answered {
        s.push_str(&format!("answered {a}\n"));
    }
    s.push('\n');
    let mut out = s.into_bytes();
    out.extend_from_slice(&m.raw);
    out
}

fn decode(buf: &[u8]) -> Option<SentMessage> {
    let end = buf.windows(2).position(|w| w == b"\n\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split('\n');
    if lines.next()? != MAGIC {
        return None;
    }
    let mut m = SentMessage {
        sender: String::new(),
        rcpts: Vec::new(),
        time: 0,
        digest: [0; 32],
        message_id: None,
        answered: Vec::new(),
        raw: buf[end + 2..].to_vec(),
    };
    let (mut have_from, mut have_time, mut have_digest) = (false, false, false);
    for line in lines {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "from" => {
                m.sender = v.to_owned();
                have_from = true;
            }
            "rcpt" => m.rcpts.push(v.to_owned()),
            "time" => {
                m.time = v.parse().ok()?;
                have_time = true;
            }
            "digest" => {
                m.digest = B64.decode(v).ok()?.try_into().ok()?;
                have_digest = true;
            }
            "id" => m.message_id = Some(v.to_owned()),
            "answered" => m.answered.push(v.to_owned()),
            _ => return None,
        }
    }
    (have_from && have_time && have_digest && !m.rcpts.is_empty()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, body: &str) -> Message {
        Message::parse(
            format!(
                "From: a@example.org\r\nTo: b@example.net\r\nMessage-ID: <{id}>\r\n\r\n{body}\r\n"
            )
            .into_bytes(),
        )
        .unwrap()
    }

    fn rcpts(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kept_messages_are_found_by_digest_and_id_and_answered_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SentStore::open(&dir.path().join("sent"), SentLimits::default()).unwrap();
        let m = msg("1@example.org", "hello");
        let path = store
            .keep("a@example.org", &rcpts(&["b@example.net"]), &m, 1000)
            .unwrap();
        // Mode 0600, folder 0700.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(dir.path().join("sent"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let digest = crate::bind::body_digest(m.body());
        let (e, found) = store.find(&digest, Some("1@example.org")).unwrap().unwrap();
        assert_eq!(found.sender, "a@example.org");
        assert_eq!(found.rcpts, rcpts(&["b@example.net"]));
        assert_eq!(found.raw, m.as_bytes());
        assert!(found.answered.is_empty());
        // Another id, another body: not found.
        assert!(
            store
                .find(&digest, Some("2@example.org"))
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .find(&[0; 32], Some("1@example.org"))
                .unwrap()
                .is_none()
        );
        assert!(store.find(&digest, None).unwrap().is_none());
        store.mark_answered(&e, &rcpts(&["B@Example.net"])).unwrap();
        store.mark_answered(&e, &rcpts(&["b@example.net"])).unwrap();
        let (_, again) = store.find(&digest, Some("1@example.org")).unwrap().unwrap();
        assert_eq!(again.answered, rcpts(&["B@Example.net"]));
        // The same message kept again (an answer re-sent through a milter that keeps what it
        // sends) replaces the earlier copy but keeps its answers and recipients: a replayed
        // challenge finds bob answered (review 19).
        store
            .keep("a@example.org", &rcpts(&["c@example.net"]), &m, 1001)
            .unwrap();
        assert_eq!(store.entries().unwrap().len(), 1);
        let (_, again) = store.find(&digest, Some("1@example.org")).unwrap().unwrap();
        assert_eq!(again.answered, rcpts(&["B@Example.net"]));
        assert_eq!(again.rcpts, rcpts(&["c@example.net", "b@example.net"]));
        // Marking through the stale entry found before records on the newest copy.
        store.mark_answered(&e, &rcpts(&["c@example.net"])).unwrap();
        let (_, again) = store.find(&digest, Some("1@example.org")).unwrap().unwrap();
        assert_eq!(again.answered, rcpts(&["B@Example.net", "c@example.net"]));
        // Kept again within the same second (the same file name): the answers stay (review).
        store
            .keep("a@example.org", &rcpts(&["d@example.net"]), &m, 1001)
            .unwrap();
        let (_, again) = store.find(&digest, Some("1@example.org")).unwrap().unwrap();
        assert_eq!(again.answered, rcpts(&["B@Example.net", "c@example.net"]));
        assert_eq!(
            again.rcpts,
            rcpts(&["d@example.net", "c@example.net", "b@example.net"])
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sent"))
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].ends_with(".sent"));
    }

    #[test]
    fn a_folder_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("shared");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(SentStore::open(&d, SentLimits::default()).is_err());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(SentStore::open(&d, SentLimits::default()).is_ok());
    }

    #[test]
    fn bounded_by_age_count_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SentLimits {
            keep_for: 100,
            max_messages: 3,
            max_message_size: 200,
            max_total_bytes: 1 << 20,
        };
        let store = SentStore::open(dir.path(), limits).unwrap();
        let r = rcpts(&["b@example.net"]);
        for i in 0..5 {
            store
                .keep("a@x", &r, &msg(&format!("{i}@x"), "body"), 1000 + i)
                .unwrap();
        }
        // At most 3: the two oldest went.
        let e = store.entries().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e.iter().map(|e| e.time).collect::<Vec<_>>(),
            [1002, 1003, 1004]
        );
        // Past keep_for: pruned on the next write.
        store.keep("a@x", &r, &msg("new@x", "body"), 1103).unwrap();
        let times: Vec<i64> = store.entries().unwrap().iter().map(|e| e.time).collect();
        assert_eq!(times, [1003, 1004, 1103]);
        assert_eq!(store.prune(1150).unwrap(), 2);
        assert_eq!(store.entries().unwrap().len(), 1);
        // Too large: refused, nothing written.
        let big = msg("big@x", &"x".repeat(300));
        assert!(matches!(
            store.keep("a@x", &r, &big, 1105),
            Err(SentError::TooLarge { .. })
        ));
        assert_eq!(store.entries().unwrap().len(), 1);
        // Addresses that would break the format are refused.
        for (s, rc) in [
            ("a b@x", r.clone()),
            ("a@x", rcpts(&["b\n@x"])),
            ("a@x", vec![]),
        ] {
            assert!(matches!(
                store.keep(s, &rc, &msg("q@x", "b"), 1106),
                Err(SentError::Unrepresentable(_))
            ));
        }
    }

    /// Review: the folder holds at most its byte budget, the oldest messages going first.
    #[test]
    fn the_store_holds_at_most_its_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SentLimits {
            max_total_bytes: 2000,
            ..SentLimits::default()
        };
        let store = SentStore::open(dir.path(), limits).unwrap();
        let r = rcpts(&["b@example.net"]);
        for i in 0..10 {
            store
                .keep(
                    "a@x",
                    &r,
                    &msg(&format!("{i}@x"), &"y".repeat(400)),
                    1000 + i,
                )
                .unwrap();
            let e = store.entries().unwrap();
            let total: u64 = e.iter().map(|e| e.size).sum();
            assert!(total <= 2000, "{total} bytes after {i}");
            assert_eq!(e.last().unwrap().time, 1000 + i, "the newest is kept");
        }
        let e = store.entries().unwrap();
        assert!(e.len() >= 3 && e.len() < 10, "{}", e.len());
        assert!(
            e.windows(2).all(|w| w[1].time == w[0].time + 1),
            "oldest went first"
        );
    }

    #[test]
    fn damaged_files_and_crash_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = SentStore::open(dir.path(), SentLimits::default()).unwrap();
        let m = msg("d@x", "b");
        let p = store.keep("a@x", &rcpts(&["b@x"]), &m, 5).unwrap();
        std::fs::write(&p, b"garbage\n\nrest").unwrap();
        let digest = crate::bind::body_digest(m.body());
        assert!(matches!(
            store.find(&digest, Some("d@x")),
            Err(SentError::Damaged(_))
        ));
        // A temporary file of a writer that died is neither an entry nor kept for long.
        let tmp = dir.path().join(".tmp-1-00");
        std::fs::write(&tmp, b"half").unwrap();
        assert_eq!(store.entries().unwrap().len(), 1);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(old)
            .unwrap();
        store.prune(6).unwrap();
        assert!(!tmp.exists());
    }

    #[test]
    fn message_ids_as_a_challenge_carries_them() {
        assert_eq!(message_id_of(&msg("a@b", "x")).as_deref(), Some("a@b"));
        let two = Message::parse(b"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\nx\r\n".to_vec())
            .unwrap();
        assert_eq!(message_id_of(&two), None);
        let bad = Message::parse(b"Message-ID: <a;b@c>\r\n\r\nx\r\n".to_vec()).unwrap();
        assert_eq!(message_id_of(&bad), None);
        let none = Message::parse(b"Subject: x\r\n\r\nx\r\n".to_vec()).unwrap();
        assert_eq!(message_id_of(&none), None);
    }
}

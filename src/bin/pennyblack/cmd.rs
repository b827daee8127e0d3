//! One file per subcommand; here, the helpers several of them share: standard input,
//! interruption, backends, where the spent store lives and opening it, the verifier, DKIM keys.

#[cfg(feature = "milter")]
pub mod answer;
pub mod bench;
pub mod calibrate;
pub mod check;
pub mod keygen;
#[cfg(feature = "milter")]
pub mod milter;
pub mod mint;
#[cfg(feature = "dns")]
pub mod policy;
pub mod spent;
#[cfg(feature = "dns")]
pub mod spf;
pub mod stamp;
pub mod ticket;
#[cfg(feature = "ticketd")]
pub mod ticketd;
pub mod verify;

use anyhow::{Result, bail};
use pennyblack::{Algorithm, Backend};

/// Ctrl-C (SIGINT) cancels `minter`'s work: the mint returns `Cancelled`, the caller clears its
/// progress line and exits with an error, instead of the terminal being left with it.
pub fn cancel_on_interrupt(minter: &pennyblack::Minter) {
    let flag = minter.cancel_flag();
    // Only one handler per process; a second command in one process keeps the first.
    let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed));
}

/// The DKIM signature requests of `keys` for `domain` at `now`.
pub fn sign_requests<'a>(
    domain: &'a str,
    keys: &'a SelectorKeys,
    canon: (pennyblack::dkim::Canon, pennyblack::dkim::Canon),
    now: i64,
) -> Vec<pennyblack::dkim::SignRequest<'a>> {
    pennyblack::dkim::SignRequest::each(domain, keys, canon, now)
}

/// A minter on `threads` threads that gives up after `deadline`, if any, and that Ctrl-C
/// cancels ([`cancel_on_interrupt`]).
pub fn interruptible_minter(
    threads: usize,
    deadline: Option<std::time::Duration>,
) -> pennyblack::Minter {
    let mut minter = pennyblack::Minter::new().threads(threads);
    if let Some(d) = deadline {
        minter = minter.deadline(d);
    }
    cancel_on_interrupt(&minter);
    minter
}

/// Refuses a forced backend this CPU lacks for `alg`, naming the ones it has.
pub fn require_backend(b: Backend, alg: Algorithm) -> Result<()> {
    Ok(b.require(alg)?)
}

/// Reads all of standard input, refusing more than `max` bytes.
pub fn read_stdin(max: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(max as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > max {
        bail!("the message is larger than --max-size {max} bytes");
    }
    Ok(buf)
}

/// Where a spent store lives, read strictly: a URL scheme we do not support is an error, never
/// a file path (so `rediss://host/0` is never created as folders of a local file).
#[derive(Debug, PartialEq, Eq)]
pub enum Location {
    /// A database file: a path, or `file:PATH`.
    File(std::path::PathBuf),
    /// A Redis location (`redis://`, `rediss://`, `redis+cluster://`, `redis+sentinel://`).
    Redis(String),
}

/// The schemes `--spent` takes.
pub const LOCATION_SCHEMES: &str =
    "a file path, file:PATH, redis://, rediss:// (TLS), redis+cluster://, redis+sentinel://";

/// Reads a `--spent` location (see [`Location`]).
pub fn parse_location(raw: &std::path::Path) -> Result<Location> {
    let Some(s) = raw.to_str() else {
        return Ok(Location::File(raw.to_owned()));
    };
    if let Some(path) = s.strip_prefix("file:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            bail!("--spent {s:?}: file: names no path");
        }
        return Ok(Location::File(path.into()));
    }
    // SCHEME: (RFC 3986: a letter, then letters, digits, + - .); one letter is a drive name.
    let scheme = s.split_once(':').map(|(sch, _)| sch).filter(|sch| {
        sch.len() > 1
            && sch.starts_with(|c: char| c.is_ascii_alphabetic())
            && sch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    match scheme {
        None => Ok(Location::File(raw.to_owned())),
        Some(
            "redis" | "rediss" | "redis+cluster" | "redis+sentinel" | "rediss+cluster"
            | "rediss+sentinel",
        ) => Ok(Location::Redis(s.to_owned())),
        Some(other) => bail!(
            "--spent {:?}: unsupported scheme {other:?} (supported: {LOCATION_SCHEMES}; a file \
             whose name has a colon: ./NAME or file:NAME)",
            redact(s)
        ),
    }
}

/// A location as it may be printed: any password replaced by `***`.
pub fn redact(s: &str) -> String {
    #[cfg(feature = "redis")]
    {
        pennyblack::spent::redact(s)
    }
    #[cfg(not(feature = "redis"))]
    {
        s.to_owned()
    }
}

/// The spent store to use: `--spent PATH` (or a Redis URL), else the default file, or none with
/// `--no-spent`. A store that cannot be opened is an error, or with `--spent-unavailable accept`
/// a warning and no store (each verdict then says the replay check was not made).
pub fn spent_store(p: &crate::args::PolicyArgs) -> Result<Option<Box<dyn pennyblack::SpentStore>>> {
    if p.no_spent {
        return Ok(None);
    }
    match open_store(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if p.spent_unavailable == crate::args::Unavailable::Accept => {
            eprintln!(
                "pennyblack: warning: {e:#}; --spent-unavailable accept: checking without a replay check"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn open_store(p: &crate::args::PolicyArgs) -> Result<Box<dyn pennyblack::SpentStore>> {
    let raw = match p.spent.clone() {
        Some(p) => p,
        None => match std::env::var_os("PENNYBLACK_SPENT").filter(|v| !v.is_empty()) {
            Some(v) => v.into(),
            None => default_spent_path()?,
        },
    };
    match parse_location(&raw)? {
        Location::File(path) => Ok(Box::new(pennyblack::FileStore::open(&path)?)),
        #[cfg(feature = "redis")]
        Location::Redis(url) => {
            use anyhow::Context as _;
            let password = match (
                &p.redis_password_file,
                std::env::var("PENNYBLACK_REDIS_PASSWORD"),
            ) {
                (Some(f), _) => Some(
                    std::fs::read_to_string(f)
                        .with_context(|| format!("--redis-password-file {}", f.display()))?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                ),
                (None, Ok(v)) if !v.is_empty() => Some(v),
                _ => None,
            };
            let options = pennyblack::spent::RedisOptions {
                timeout: p.redis_timeout,
                ca_file: p.redis_ca.clone(),
                client_cert: p.redis_cert.clone().zip(p.redis_key.clone()),
                password,
            };
            if p.redis_cert.is_some() != p.redis_key.is_some() {
                bail!("--redis-cert and --redis-key go together");
            }
            Ok(Box::new(pennyblack::spent::RedisStore::open_with(
                &url, &options,
            )?))
        }
        #[cfg(not(feature = "redis"))]
        Location::Redis(url) => bail!("{}: built without the `redis` feature", redact(&url)),
    }
}

/// `$XDG_DATA_HOME/pennyblack/spent.redb`, else `$HOME/.local/share/pennyblack/spent.redb`.
pub fn default_spent_path() -> Result<std::path::PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(".local/share"))
        });
    match base {
        Some(b) => Ok(b.join("pennyblack").join("spent.redb")),
        None => bail!(
            "no HOME or XDG_DATA_HOME to keep spent stamps in: give --spent PATH or --no-spent"
        ),
    }
}

/// Says on standard error when receivers with the default policy would refuse stamps of `alg`
/// in `parts` parts unchecked (memory over the default --max-memory, or an estimated checking
/// cost over the default --max-work): the sender's work would be lost there.
pub fn warn_receiver_cost(alg: pennyblack::Algorithm, parts: u32) {
    let default = pennyblack::Policy::default();
    let cost = pennyblack::verify::estimated_cost(alg, parts);
    let memory = alg.argon2().map_or(0, |p| p.memory_kib);
    if memory > default.max_memory_kib || cost > default.max_work {
        eprintln!(
            "warning: receivers with the default policy refuse these stamps unchecked: {alg} in \
             {parts} part(s) needs {} KiB per attempt (default --max-memory {} KiB) and an \
             estimated {:?} to check (default --max-work {:?}); use less memory or fewer parts",
            memory, default.max_memory_kib, cost, default.max_work
        );
    }
}

/// The cost bounds of a policy from the command line (the one conversion for `check`,
/// `verify` and the milter): per-family minimums, Argon2id memory bounds, parts, work budget.
/// The rest of the policy is the default, for the caller to fill.
pub fn cost_policy(a: &crate::args::PolicyArgs) -> pennyblack::Policy {
    let mut p = pennyblack::Policy {
        min_memory_kib: a.min_memory,
        max_memory_kib: a.max_memory,
        max_parts: a.max_parts,
        max_work: a.max_work,
        max_message_work: a.max_message_work,
        ..pennyblack::Policy::default()
    };
    for &(alg, v) in &a.min_value {
        p = p.with_min_value(alg, v);
    }
    p
}

/// A verifier for `policy` with the options' clock, spent store and failure mode.
pub fn verifier(
    policy: pennyblack::Policy,
    p: &crate::args::PolicyArgs,
) -> Result<pennyblack::Verifier> {
    let mut v = pennyblack::Verifier::new(policy)
        .fail_open(p.spent_unavailable == crate::args::Unavailable::Accept);
    if let Some(now) = p.now {
        v = v.with_clock(pennyblack::FixedClock(now));
    }
    if let Some(store) = spent_store(p)? {
        v = v.with_store(store);
    }
    Ok(v)
}

/// The DKIM key source: `--keys FILE`, `--dns-server`, or the system resolver.
pub fn key_lookup(k: &crate::args::KeySourceArgs) -> Result<Box<dyn pennyblack::dkim::KeyLookup>> {
    use pennyblack::dkim;
    Ok(match (&k.keys, k.dns_server) {
        (Some(p), _) => Box::new(dkim::KeyFile::open(p)?),
        #[cfg(feature = "dns")]
        (None, Some(server)) => Box::new(dkim::DnsLookup::with_server(server, k.dns_timeout)?),
        #[cfg(feature = "dns")]
        (None, None) => Box::new(dkim::DnsLookup::system()?),
        #[cfg(not(feature = "dns"))]
        (None, _) => bail!("built without the `dns` feature: give --keys FILE"),
    })
}

/// The resolver of `--dns-server` (or the system's), for SPF and DMARC.
#[cfg(feature = "dns")]
pub fn dns_lookup(
    server: Option<std::net::SocketAddr>,
    timeout: std::time::Duration,
) -> Result<pennyblack::dkim::DnsLookup> {
    use pennyblack::dkim::DnsLookup;
    Ok(match server {
        Some(s) => DnsLookup::with_server(s, timeout)?,
        None => DnsLookup::system()?,
    })
}

/// Signing keys with their selectors.
pub type SelectorKeys = Vec<(String, pennyblack::dkim::SigningKey)>;

/// The signing keys of `--sign SELECTOR:KEYFILE` (read before any work) and the canonicalization.
pub fn signing_keys(
    a: &crate::args::SignArgs,
) -> Result<(
    SelectorKeys,
    (pennyblack::dkim::Canon, pennyblack::dkim::Canon),
)> {
    use anyhow::Context;
    use pennyblack::dkim::{Canon, SigningKey};
    let keys = a
        .sign
        .iter()
        .map(|s| {
            let (sel, file) = s
                .split_once(':')
                .with_context(|| format!("--sign {s:?} is not SELECTOR:KEYFILE"))?;
            Ok((
                sel.to_owned(),
                SigningKey::from_file(std::path::Path::new(file))?,
            ))
        })
        .collect::<Result<_>>()?;
    let (h, b) = a.canon.split_once('/').unwrap_or((&a.canon, "simple"));
    let canon = match (Canon::parse(h), Canon::parse(b)) {
        (Some(h), Some(b)) => (h, b),
        _ => bail!(
            "--canon {:?} is not HEADER/BODY with each simple or relaxed",
            a.canon
        ),
    };
    Ok((keys, canon))
}

/// The sent-message store of `--keep-sent DIR` (`--keep-for`; the count and size bounds are
/// the library's defaults), opened (made, mode 0700) before any work.
pub fn sent_store(
    dir: Option<&std::path::Path>,
    keep_for: std::time::Duration,
) -> Result<Option<pennyblack::sent::SentStore>> {
    use anyhow::Context;
    let Some(dir) = dir else { return Ok(None) };
    let limits = pennyblack::sent::SentLimits {
        keep_for: i64::try_from(keep_for.as_secs()).unwrap_or(i64::MAX),
        ..pennyblack::sent::SentLimits::default()
    };
    Ok(Some(
        pennyblack::sent::SentStore::open(dir, limits)
            .with_context(|| format!("--keep-sent {}", dir.display()))?,
    ))
}

/// `--max-bits` when not given: 26 bits, or `--bits` when that is higher.
pub const DEFAULT_MAX_BITS: u32 = 26;

/// The cap on what a postage policy or challenge makes this sender mint (`--max-bits`): as
/// given (never below `--bits`), else [`DEFAULT_MAX_BITS`] or `--bits` when higher.
pub fn max_bits(given: Option<u32>, bits: u32) -> anyhow::Result<u32> {
    match given {
        Some(m) if m < bits => anyhow::bail!(
            "--max-bits {m} is below --bits {bits}: the cap is the most minted for a policy"
        ),
        Some(m) => Ok(m),
        None => Ok(bits.max(DEFAULT_MAX_BITS)),
    }
}

/// Unix seconds as an RFC 3339 UTC time (`2026-12-05T23:42:58Z`).
pub fn utc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

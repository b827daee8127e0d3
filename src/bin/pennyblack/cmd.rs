//! One file per subcommand.

pub mod bench;
pub mod calibrate;
pub mod check;
pub mod keygen;
#[cfg(feature = "milter")]
pub mod milter;
pub mod mint;
pub mod spent;
pub mod stamp;
pub mod verify;

use anyhow::{Result, bail};
use pennyblack::{Algorithm, Backend};

/// Refuses a forced backend this CPU lacks for `alg`, naming the ones it has.
pub fn require_backend(b: Backend, alg: Algorithm) -> Result<()> {
    if !b.supports(alg) {
        let have: Vec<&str> = Backend::available(alg).iter().map(|b| b.name()).collect();
        bail!(
            "backend {b} cannot mint {alg} on this CPU (available for {alg}: {})",
            have.join(", ")
        );
    }
    Ok(())
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

/// The spent store to use: `--spent PATH` (or `redis://...`), else the default file, or none
/// with `--no-spent`.
pub fn spent_store(p: &crate::args::PolicyArgs) -> Result<Option<Box<dyn pennyblack::SpentStore>>> {
    if p.no_spent {
        return Ok(None);
    }
    let path = match p.spent.clone() {
        Some(p) => p,
        None => verify::default_spent_path()?,
    };
    if let Some(url) = path.to_str().filter(|s| s.starts_with("redis://")) {
        #[cfg(feature = "redis")]
        {
            let timeout = std::time::Duration::from_secs(p.redis_timeout.max(1));
            return Ok(Some(Box::new(pennyblack::spent::RedisStore::open(
                url, timeout,
            )?)));
        }
        #[cfg(not(feature = "redis"))]
        bail!("{url}: built without the `redis` feature");
    }
    Ok(Some(Box::new(pennyblack::FileStore::open(&path)?)))
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
        (None, Some(server)) => Box::new(
            dkim::DnsLookup::with_server(server, std::time::Duration::from_secs(k.dns_timeout))
                .map_err(anyhow::Error::msg)?,
        ),
        #[cfg(feature = "dns")]
        (None, None) => Box::new(dkim::DnsLookup::system().map_err(anyhow::Error::msg)?),
        #[cfg(not(feature = "dns"))]
        (None, _) => bail!("built without the `dns` feature: give --keys FILE"),
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

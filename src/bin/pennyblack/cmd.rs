//! One file per subcommand.

pub mod bench;
pub mod calibrate;
pub mod check;
pub mod keygen;
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

/// The spent store to use: `--spent PATH`, else the default file, or none with `--no-spent`.
pub fn spent_store(
    spent: Option<std::path::PathBuf>,
    no_spent: bool,
) -> Result<Option<pennyblack::FileStore>> {
    if no_spent {
        return Ok(None);
    }
    let path = match spent {
        Some(p) => p,
        None => verify::default_spent_path()?,
    };
    Ok(Some(pennyblack::FileStore::open(&path)?))
}

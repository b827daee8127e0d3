//! One file per subcommand.

pub mod bench;
pub mod calibrate;
pub mod mint;
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

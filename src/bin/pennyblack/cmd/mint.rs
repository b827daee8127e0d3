//! `pennyblack mint`.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pennyblack::{MintRequest, Minter, StampDate};

use crate::Exit;
use crate::args::MintArgs;

pub fn run(a: MintArgs) -> Result<Exit> {
    let (alg, parts) = a.cost.alg_and_parts();
    let date = a
        .date
        .as_deref()
        .map(|d| {
            let parsed = StampDate::parse(d)
                .ok()
                .filter(|p| matches!(p.width(), 6 | 10 | 12));
            parsed.with_context(|| {
                format!(
                    "--date {d:?} is not a UTC date of the form YYMMDD, YYMMDDhhmm or YYMMDDhhmmss"
                )
            })
        })
        .transpose()?;
    let requests: Vec<MintRequest> = a
        .resources
        .iter()
        .map(|r| MintRequest {
            hidden: false,
            resource: r.clone(),
            alg,
            bits: a.cost.bits,
            parts,
            ext: a.ext.clone(),
            date,
            date_width: a.date_width,
        })
        .collect();
    // Refuse every bad request before spending any work.
    for req in &requests {
        req.validate()
            .with_context(|| format!("cannot mint a stamp for {:?}", req.resource))?;
        let max = pennyblack::postage::MAX_FIELD_STAMP;
        if a.header && req.stamp_len() > max {
            bail!(
                "the stamp for {:?} would be {} bytes: an X-Hashcash field line holds at most {max} \
                 (use fewer parts, or a shorter extension or resource)",
                req.resource,
                req.stamp_len()
            );
        }
    }
    let mut minter = Minter::new();
    if let Some(t) = a.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        minter = minter.threads(t);
    }
    if let Some(b) = a.backend.backend() {
        crate::cmd::require_backend(b, alg)?;
        minter = minter.backend(b);
    }
    if let Some(d) = a.deadline {
        minter = minter.deadline(d);
    }
    crate::cmd::cancel_on_interrupt(&minter);
    let show_progress = !a.quiet && std::io::stderr().is_terminal();
    let current = Arc::new(Mutex::new(String::new()));
    if show_progress {
        let current = Arc::clone(&current);
        minter = minter.on_progress(Duration::from_secs(1), move |p| {
            let resource = current.lock().map(|r| r.clone()).unwrap_or_default();
            let secs = p.elapsed.as_secs_f64().max(1e-9);
            eprint!(
                "\r\x1b[2Kminting {resource}: {:.1} M hashes ({:.0}% of expected), {:.1} M/s, {}/{} parts, {:.0}s",
                p.attempts as f64 / 1e6,
                100.0 * p.attempts as f64 / p.expected,
                p.attempts as f64 / secs / 1e6,
                p.found,
                p.parts,
                secs
            );
        });
    }
    let mut out = std::io::stdout().lock();
    for req in &requests {
        if let Ok(mut r) = current.lock() {
            r.clone_from(&req.resource);
        }
        let stamp = minter.mint(req);
        if show_progress {
            eprint!("\r\x1b[2K");
        }
        let stamp = stamp.with_context(|| format!("minting a stamp for {:?}", req.resource))?;
        if a.header {
            writeln!(out, "X-Hashcash: {stamp}")?;
        } else {
            writeln!(out, "{stamp}")?;
        }
        out.flush()?;
    }
    Ok(Exit::Ok)
}

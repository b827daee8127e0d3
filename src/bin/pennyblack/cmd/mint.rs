//! `pennyblack mint`.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pennyblack::mint::SMALL_WORK;
use pennyblack::{MintRequest, Minter, StampDate};

use crate::Exit;
use crate::args::MintArgs;

pub fn run(a: MintArgs) -> Result<Exit> {
    let (alg, parts) = a.cost.alg_and_parts()?;
    crate::cmd::warn_receiver_cost(alg, parts);
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
    let request = |resource: String| MintRequest {
        hidden: false,
        resource,
        alg,
        bits: a.cost.bits,
        parts,
        ext: a.ext.clone(),
        date,
        date_width: a.date_width,
    };
    // Refuses a bad request before any work is spent on it.
    let check = |req: &MintRequest, place: &str| -> Result<()> {
        req.validate()
            .with_context(|| format!("{place}cannot mint a stamp for {:?}", req.resource))?;
        let max = pennyblack::postage::MAX_FIELD_STAMP;
        if a.header && req.stamp_len() > max {
            bail!(
                "{place}the stamp for {:?} would be {} bytes: an X-Hashcash field line holds at \
                 most {max} (use fewer parts, or a shorter extension or resource)",
                req.resource,
                req.stamp_len()
            );
        }
        Ok(())
    };
    let from_stdin = a.resources.is_empty() || a.resources == ["-"];
    let mut listed = Vec::new();
    if !from_stdin {
        if a.resources.iter().any(|r| r == "-") {
            bail!("`-` (standard input) cannot be mixed with resources on the command line");
        }
        // Every request on the command line is checked before any is minted.
        for r in &a.resources {
            let req = request(r.clone());
            check(&req, "")?;
            listed.push(req);
        }
    } else if std::io::stdin().is_terminal() && !a.quiet {
        eprintln!("reading resources from standard input, one per line (Ctrl-D to end)");
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
    // A memory-hard attempt's memory, held once per thread: said before the work starts, and
    // refused here when one attempt alone is over the minter's limit.
    let probe = request("x".to_owned());
    let threads = minter.threads_for(&probe)?;
    let memory = probe.memory_per_thread() as f64 / (1u64 << 20) as f64;
    if show_progress && alg.is_memory_hard() {
        eprintln!(
            "{alg}: {memory:.2} MiB per attempt, {threads} thread(s): {:.2} MiB in all",
            memory * threads as f64
        );
    }
    if show_progress {
        let current = Arc::clone(&current);
        minter = minter.on_progress(Duration::from_secs(1), move |p| {
            let resource = current.lock().map(|r| r.clone()).unwrap_or_default();
            let secs = p.elapsed.as_secs_f64().max(1e-9);
            if alg.is_memory_hard() {
                eprint!(
                    "\r\x1b[2Kminting {resource}: {} attempts ({:.0}% of expected), {:.0}/s, {}/{} parts, {:.0}s, {:.1} MiB",
                    p.attempts,
                    100.0 * p.attempts as f64 / p.expected,
                    p.attempts as f64 / secs,
                    p.found,
                    p.parts,
                    secs,
                    memory * threads as f64
                );
                return;
            }
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
    let mut printer = Printer {
        out: std::io::stdout().lock(),
        header: a.header,
        minted: 0,
        started: std::time::Instant::now(),
        last_note: std::time::Instant::now(),
        progress: show_progress,
    };
    if !from_stdin {
        mint_all(&minter, &listed, &current, &mut printer)?;
        return Ok(Exit::Ok);
    }
    // Standard input: batches of up to BATCH lines, each checked before it is minted; the
    // stamps of earlier batches are already written when a later line turns out bad.
    const BATCH: usize = 4096;
    let mut batch = Vec::with_capacity(BATCH);
    let mut input = std::io::stdin().lock();
    let mut raw = Vec::new();
    let mut number = 0usize;
    loop {
        raw.clear();
        let read = input
            .read_until(b'\n', &mut raw)
            .context("reading standard input")?;
        let end = read == 0;
        if !end {
            number += 1;
            let line = std::str::from_utf8(&raw)
                .map_err(|_| anyhow::anyhow!("standard input, line {number}: not UTF-8 text"))?;
            // ASCII white space only, as on the command line: any other character is part of
            // the resource (and refused by its check when it may not be in one).
            let resource = line.trim_ascii();
            if !resource.is_empty() {
                let req = request(resource.to_owned());
                check(&req, &format!("standard input, line {number}: "))?;
                batch.push(req);
            }
        }
        if batch.len() >= BATCH || (end && !batch.is_empty()) {
            mint_all(&minter, &batch, &current, &mut printer)?;
            batch.clear();
        }
        if end {
            break;
        }
    }
    if number == 0 || (printer.minted == 0 && batch.is_empty()) {
        bail!("no resources: give them as arguments, or one per line on standard input");
    }
    if printer.progress && printer.minted > 1 {
        eprintln!("\r\x1b[2Kminted {} stamps", printer.minted);
    }
    Ok(Exit::Ok)
}

/// Writes stamps as they are minted, and a count on a terminal.
struct Printer<W: Write> {
    out: W,
    header: bool,
    minted: u64,
    started: std::time::Instant,
    last_note: std::time::Instant,
    progress: bool,
}

impl<W: Write> Printer<W> {
    fn write(&mut self, stamp: &pennyblack::Stamp) -> Result<()> {
        if self.header {
            writeln!(self.out, "X-Hashcash: {stamp}")?;
        } else {
            writeln!(self.out, "{stamp}")?;
        }
        self.minted += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        if self.progress && self.minted > 1 && self.last_note.elapsed() >= Duration::from_secs(1) {
            self.last_note = std::time::Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\r\x1b[2Kminted {} stamps, {:.0} a second",
                self.minted,
                self.minted as f64 / secs
            );
        }
        Ok(())
    }
}

/// Mints `requests` in order: runs of small stamps many at once ([`Minter::mint_many`]), each
/// larger one with every thread and its own progress line.
fn mint_all<W: Write>(
    minter: &Minter,
    requests: &[MintRequest],
    current: &Mutex<String>,
    printer: &mut Printer<W>,
) -> Result<()> {
    let small = |r: &MintRequest| r.expected_work() <= SMALL_WORK;
    let mut i = 0;
    while i < requests.len() {
        let run = requests[i..].iter().take_while(|r| small(r)).count();
        if run > 1 {
            for (req, stamp) in requests[i..i + run]
                .iter()
                .zip(minter.mint_many(&requests[i..i + run]))
            {
                let stamp =
                    stamp.with_context(|| format!("minting a stamp for {:?}", req.resource))?;
                printer.write(&stamp)?;
            }
            printer.flush()?;
            i += run;
            continue;
        }
        let req = &requests[i];
        if let Ok(mut r) = current.lock() {
            r.clone_from(&req.resource);
        }
        let stamp = minter.mint(req);
        if printer.progress {
            eprint!("\r\x1b[2K");
        }
        let stamp = stamp.with_context(|| format!("minting a stamp for {:?}", req.resource))?;
        printer.write(&stamp)?;
        printer.flush()?;
        i += 1;
    }
    Ok(())
}

//! `pennyblack verify`.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use pennyblack::{Policy, ResourcePattern, Verdict};

use crate::Exit;
use crate::args::VerifyArgs;

pub fn run(a: VerifyArgs) -> Result<Exit> {
    let policy = Policy {
        min_bits: a.bits,
        resources: a
            .resources
            .iter()
            .map(|r| ResourcePattern::new(r.as_str()).case_sensitive(a.case_sensitive))
            .collect(),
        validity: a.policy.validity,
        grace: a.policy.grace,
        require_binding: false,
        ..crate::cmd::cost_policy(&a.policy)
    };
    let verifier = crate::cmd::verifier(policy, &a.policy)?;
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    // Lines come from a reader thread. A batch takes every line already waiting, up to --batch,
    // and is then checked and committed at once (group commit): a file piped in makes large
    // batches and few fsyncs; a peer that sends one stamp and waits gets its answer at once.
    let from_stdin = a.stamps.is_empty() || a.stamps.iter().all(|s| s == "-");
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<String>>(a.batch.min(1 << 16));
    let args = a.stamps.clone();
    std::thread::spawn(move || {
        if from_stdin {
            // A folded `X-Hashcash:` field (hashcash folds long stamps): its continuation lines,
            // which start with white space, are joined to it before it is checked. Only a header
            // line is held back for them; a bare stamp goes on at once.
            let mut held: Option<String> = None;
            for l in std::io::stdin().lock().split(b'\n') {
                // Invalid UTF-8 becomes U+FFFD, which the parser refuses as a malformed stamp.
                let l = l
                    .map(|b| {
                        String::from_utf8(b)
                            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
                    })
                    .context("reading standard input");
                let line = match l {
                    Ok(line) => line,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                if line.starts_with([' ', '\t'])
                    && let Some(h) = held.as_mut()
                {
                    h.push_str(line.trim_ascii());
                    continue;
                }
                if let Some(h) = held.take()
                    && tx.send(Ok(h)).is_err()
                {
                    return;
                }
                let is_header = line
                    .split_once(':')
                    .is_some_and(|(n, _)| n.trim_ascii().eq_ignore_ascii_case("x-hashcash"));
                if is_header {
                    held = Some(line.trim_end_matches('\r').to_owned());
                } else if tx.send(Ok(line)).is_err() {
                    return;
                }
            }
            if let Some(h) = held {
                let _ = tx.send(Ok(h));
            }
        } else {
            for s in args {
                if tx.send(Ok(s)).is_err() {
                    return;
                }
            }
        }
    });

    // Buffered: one write per batch, not per line (stdout alone is line-buffered).
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut exit = Exit::Ok;
    let mut seen = 0usize;
    let mut batch: Vec<String> = Vec::with_capacity(a.batch.min(1 << 16));
    let mut eof = false;
    while !eof {
        // Block for the first line, then take what is already there.
        let mut next = rx.recv().ok();
        loop {
            match next {
                None => {
                    eof = true;
                    break;
                }
                Some(line) => {
                    let line = line?;
                    if !strip_header(&line).is_empty() {
                        batch.push(line);
                    }
                }
            }
            if batch.len() >= a.batch {
                break;
            }
            next = match rx.try_recv() {
                Ok(l) => Some(l),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
            };
        }
        if batch.is_empty() {
            continue;
        }
        // A batch is recorded in the spent store in one commit, and reported only after it.
        let texts: Vec<&str> = batch.iter().map(|l| strip_header(l)).collect();
        for verdict in verifier.check_batch(&texts)? {
            let code = match (&verdict.result(), verdict.fully_checked()) {
                (Err(_), _) => Exit::Invalid,
                (Ok(()), false) => Exit::NotFullyChecked,
                (Ok(()), true) => Exit::Ok,
            };
            // Invalid outranks not-fully-checked, which outranks ok.
            exit = match (exit, code) {
                (Exit::Invalid, _) | (_, Exit::Invalid) => Exit::Invalid,
                (e, c) => e.max(c),
            };
            if a.json {
                writeln!(out, "{}", json(&verdict))?;
            } else {
                write_text_line(&mut out, &verdict)?;
            }
        }
        out.flush()?;
        seen += batch.len();
        batch.clear();
    }
    if seen == 0 {
        bail!("no stamps to verify (give them as arguments or on standard input, one per line)");
    }
    Ok(exit)
}

/// Accepts `X-Hashcash: STAMP` (any case, any white space) as well as a bare stamp.
fn strip_header(line: &str) -> &str {
    let line = line.trim_ascii();
    match line.split_once(':') {
        Some((name, rest)) if name.trim_ascii().eq_ignore_ascii_case("x-hashcash") => {
            rest.trim_ascii()
        }
        _ => line,
    }
}

fn unchecked_names(v: &Verdict) -> Vec<&'static str> {
    v.unchecked.iter().map(|u| u.name()).collect()
}

/// `value` with two decimals, as `{:.2}` prints it for the values stamps have (0 to a few
/// hundred bits), without the float formatter's exact (slow) path.
fn bits2(value: f64) -> String {
    let scaled = value * 100.0;
    let hundredths = scaled.round();
    // Near a tie the exact decimal expansion decides: leave those to the formatter.
    if !(0.0..1e15).contains(&hundredths) || ((scaled - scaled.trunc()) - 0.5).abs() < 1e-6 {
        return format!("{value:.2}");
    }
    let h = hundredths as u64;
    format!("{}.{:02}", h / 100, h % 100)
}

/// Text that may hold control characters (a hostile input line, quoted in a verdict), shown
/// with those escaped (`\u{1b}`), as `--json` escapes them: nothing reaches the terminal raw.
struct Esc<'a>(&'a str);

impl std::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.0.chars().any(char::is_control) {
            return f.write_str(self.0);
        }
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The verdict as one line of text, written straight into `out`; control characters escaped.
fn write_text_line(out: &mut impl Write, v: &Verdict) -> std::io::Result<()> {
    let stamp = Esc(v.stamp());
    match &v.result() {
        Ok(()) if v.fully_checked() => {
            writeln!(out, "valid ({} bits): {stamp}", bits2(v.value))
        }
        Ok(()) if v.store_error().is_some() => writeln!(
            out,
            "valid ({} bits; not checked: {}; spent store unavailable, accepted without a replay check): {stamp}",
            bits2(v.value),
            unchecked_names(v).join(", "),
        ),
        Ok(()) => writeln!(
            out,
            "valid ({} bits; not checked: {}): {stamp}",
            bits2(v.value),
            unchecked_names(v).join(", "),
        ),
        Err(e) => writeln!(out, "invalid ({}): {stamp}", Esc(&e.to_string())),
    }
}

fn json(v: &Verdict) -> serde_json::Value {
    let reason = v.result().err().map(|e| e.keyword());
    serde_json::json!({
        "stamp": v.stamp(),
        "valid": v.is_valid(),
        "reason": reason,
        "message": v.result().err().map(|e| e.to_string()),
        "value_bits": v.value,
        "version": v.parsed().map(|s| s.version().number()),
        "alg": v.parsed().map(|s| s.algorithm().name()),
        "parts": v.parsed().map(|s| s.parts()),
        "resource": v.parsed().map(|s| s.resource()),
        "fully_checked": v.fully_checked(),
        "unchecked": unchecked_names(v),
        "store_error": v.store_error().map(|e| e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bits2_prints_as_the_float_formatter() {
        for k in 0..200_000u32 {
            let v = f64::from(k) * 0.001_37 + (f64::from(k % 7)).sqrt() / 1000.0;
            assert_eq!(super::bits2(v), format!("{v:.2}"), "{v}");
        }
        for k in 0..=512u32 {
            let v = f64::from(k);
            assert_eq!(super::bits2(v), format!("{v:.2}"));
            let l = (f64::from(k) + 1.0).log2() + 16.0;
            assert_eq!(super::bits2(l), format!("{l:.2}"));
        }
    }
}

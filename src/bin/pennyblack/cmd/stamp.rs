//! `pennyblack stamp`: stamps for every recipient, then DKIM signatures; all or nothing.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use pennyblack::MintRequest;
use pennyblack::dkim::{Canon, SignRequest, SigningKey};
use pennyblack::mail::Message;

use crate::Exit;
use crate::args::StampArgs;

pub fn run(a: StampArgs) -> Result<Exit> {
    let (alg, parts) = a.cost.alg_and_parts();
    let canon = parse_canon(&a.canon)?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    // Keys first: a bad key file fails before any work.
    let keys: Vec<(String, SigningKey)> = a
        .sign
        .iter()
        .map(|s| {
            let (sel, file) = s
                .split_once(':')
                .with_context(|| format!("--sign {s:?} is not SELECTOR:KEYFILE"))?;
            Ok((sel.to_owned(), SigningKey::from_file(&PathBuf::from(file))?))
        })
        .collect::<Result<_>>()?;
    let raw = crate::cmd::read_stdin(a.max_size)?;
    let msg = Message::parse(raw).context("reading the message")?;
    let mut recipients: Vec<String> = if a.only_rcpt {
        Vec::new()
    } else {
        msg.recipients()
    };
    for r in &a.rcpts {
        if !recipients.iter().any(|x| x.eq_ignore_ascii_case(r)) {
            recipients.push(r.clone());
        }
    }
    let request = MintRequest::new("-")
        .alg(alg)
        .bits(a.cost.bits)
        .parts(parts);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let domain = a.domain.as_deref().unwrap_or("");
    let signers: Vec<SignRequest<'_>> = keys
        .iter()
        .map(|(sel, key)| SignRequest {
            domain,
            selector: sel,
            key,
            canon,
            time: now,
        })
        .collect();
    let out = pennyblack::message::stamp_message(&msg, &recipients, &request, threads, &signers)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(Exit::Ok)
}

fn parse_canon(s: &str) -> Result<(Canon, Canon)> {
    let (h, b) = s.split_once('/').unwrap_or((s, "simple"));
    match (Canon::parse(h), Canon::parse(b)) {
        (Some(h), Some(b)) => Ok((h, b)),
        _ => bail!("--canon {s:?} is not HEADER/BODY with each simple or relaxed"),
    }
}

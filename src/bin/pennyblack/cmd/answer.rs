//! `pennyblack answer`: a receiver's postage challenge in, the message it names re-sent with
//! stamps that meet it. All or nothing: an answer is recorded only once the SMTP server took
//! the re-sent message.

use anyhow::{Context, Result, bail};
use pennyblack::MintRequest;
use pennyblack::bind::same_address;
use pennyblack::challenge::{ANSWER_FIELD, CHALLENGE_FIELD, Challenge};
use pennyblack::dkim::{self, DkimStatus};
use pennyblack::mail::{Message, format_field};
use pennyblack::policy::{Family, Plan};
use pennyblack::sent::{SentLimits, SentStore};

use crate::Exit;
use crate::args::AnswerArgs;

/// Exit 1: not a challenge of ours to answer.
fn ignored(why: impl std::fmt::Display) -> Result<Exit> {
    eprintln!("pennyblack answer: ignored: {why}");
    Ok(Exit::Invalid)
}

/// Exit 2: a challenge we will not meet.
fn refused(why: impl std::fmt::Display) -> Result<Exit> {
    eprintln!("pennyblack answer: REFUSED: {why}");
    Ok(Exit::NotFullyChecked)
}

/// Whether `signer` (a DKIM `d=`) is `domain` or a parent of it (two labels at least).
fn aligned(signer: &str, domain: &str) -> bool {
    // Both in their ASCII (`xn--`) form: d= is one, a recipient's domain may not be.
    let ascii = |n: &str| pennyblack::policy::lookup::normalize_domain(n).ok();
    let (Some(s), Some(d)) = (ascii(signer), ascii(domain)) else {
        return false;
    };
    s.contains('.')
        && (d == s
            || d.strip_suffix(s.as_str())
                .is_some_and(|rest| rest.ends_with('.')))
}

/// `raw` with every line ending CRLF (a message kept from a pipe may have bare LF).
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

pub fn run(a: AnswerArgs) -> Result<Exit> {
    let now = a.now.unwrap_or_else(pennyblack::unix_now);
    let (alg, parts) = a.cost.alg_and_parts()?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    pennyblack::relay::parse_host_port(&a.smtp).context("--smtp")?;
    let (keys, canon) = crate::cmd::signing_keys(&a.sign)?;
    let lookup = crate::cmd::key_lookup(&a.key_source)?;
    if !a.sent.is_dir() {
        bail!("--sent {}: no such folder", a.sent.display());
    }
    let store = SentStore::open(&a.sent, SentLimits::default())?;
    let raw = crate::cmd::read_stdin(a.max_size)?;
    let msg = match Message::parse(raw) {
        Ok(m) => m,
        Err(e) => return ignored(format!("not a message: {e}")),
    };
    let fields: Vec<_> = msg.fields_named(CHALLENGE_FIELD).collect();
    if fields.len() != 1 {
        return ignored(format!(
            "not a challenge: {} {CHALLENGE_FIELD} field(s), one wanted",
            fields.len()
        ));
    }
    let challenge = match Challenge::parse(&fields[0].value()) {
        Ok(c) => c,
        Err(e) => return ignored(e),
    };
    // Signed by the domain of every challenged recipient, over the challenge field.
    let opts = dkim::VerifyOptions {
        now,
        ..dkim::VerifyOptions::default()
    };
    let results = dkim::verify(&msg, lookup.as_ref(), &opts);
    // A challenge is an automatic reply (RFC 3834) from the challenged domain: signed by its
    // From domain over From, Auto-Submitted and the challenge field, so that a user of a
    // provider whose signer covers every field cannot pass off a message of her own as one
    // (review 19).
    if !msg
        .fields_named("Auto-Submitted")
        .any(|f| f.value().to_ascii_lowercase().starts_with("auto-replied"))
    {
        return ignored("not an automatic reply (no Auto-Submitted: auto-replied)");
    }
    let from_domain = pennyblack::milter::challenge::single_from(&msg).and_then(|a| {
        a.rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
    });
    let vouches = |d: &dkim::DkimResult| {
        d.status == DkimStatus::Pass
            && d.covers("postage-challenge") >= 1
            && d.covers("from") >= 1
            && d.covers("auto-submitted") >= 1
            && from_domain.as_deref()
                == Some(d.domain.trim_end_matches('.').to_ascii_lowercase().as_str())
            && challenge.rcpts.iter().all(|r| {
                r.rsplit_once('@')
                    .is_some_and(|(_, domain)| aligned(&d.domain, domain))
            })
    };
    if !results.iter().any(vouches) {
        let seen: Vec<String> = results
            .iter()
            .map(|d| format!("d={} {}", d.domain, d.status.keyword()))
            .collect();
        return ignored(format!(
            "not signed by the domain of every challenged recipient ({}; signatures: {})",
            challenge.rcpts.join(", "),
            if seen.is_empty() {
                "none".to_owned()
            } else {
                seen.join(", ")
            }
        ));
    }
    if now > challenge.expires {
        return ignored(format!("expired at {}", challenge.expires));
    }
    // One answerer at a time from here to the record: each recipient is answered once.
    let _answering = store.lock_answers()?;
    let Some((entry, kept)) = store.find(&challenge.digest, challenge.message_id.as_deref())?
    else {
        return ignored(format!(
            "no such message in {} (id {}): not one we sent, or no longer kept",
            a.sent.display(),
            challenge.message_id.as_deref().unwrap_or("none")
        ));
    };
    // The challenge names the envelope sender it went to: the kept message's, or it is not ours.
    if !same_address(&kept.sender, &challenge.from) {
        return ignored(format!(
            "it challenges <{}>, and that message was sent as <{}>",
            challenge.from, kept.sender
        ));
    }
    if let Some(r) = challenge
        .rcpts
        .iter()
        .find(|r| !kept.rcpts.iter().any(|k| same_address(k, r)))
    {
        return ignored(format!("{r} was not a recipient of that message"));
    }
    let todo: Vec<String> = challenge
        .rcpts
        .iter()
        .filter(|r| !kept.answered.iter().any(|k| same_address(k, r)))
        .cloned()
        .collect();
    if todo.is_empty() {
        return ignored("already answered for every recipient it names");
    }
    let configured = MintRequest::new("-")
        .alg(alg)
        .bits(a.cost.bits)
        .parts(parts);
    let can_mint = |f: Family| f != Family::Equix || cfg!(feature = "equix");
    let request = match challenge.requirement.plan(
        &configured,
        crate::cmd::max_bits(a.max_bits, a.cost.bits)?,
        can_mint,
    ) {
        Plan::Mint(r) => r,
        Plan::OverCap { asked, cap, family } => {
            return refused(format!(
                "the challenge asks {asked} bits of {} and --max-bits is {cap} ([{}])",
                family.name(),
                challenge.requirement
            ));
        }
        Plan::MemoryOverCap { asked_kib, cap_kib } => {
            return refused(format!(
                "the challenge asks Argon2id with {asked_kib} KiB, more than the {cap_kib} KiB minted"
            ));
        }
        Plan::NoCommonAlgorithm => {
            return refused(format!(
                "the challenge accepts no algorithm this sender mints ([{}])",
                challenge.requirement
            ));
        }
    };
    // The kept message, the challenge copied into Postage-Answer, stamps, signatures.
    let original = Message::parse(crlf(&kept.raw)).context("the kept message")?;
    let answer = format_field(ANSWER_FIELD, &challenge.to_string(), original.eol());
    let with_answer = Message::parse(original.with_fields_on_top(&[answer]))?;
    let domain = a.sign.domain.as_deref().unwrap_or("");
    let signers = crate::cmd::sign_requests(domain, &keys, canon, now);
    let minter = crate::cmd::interruptible_minter(threads, a.deadline);
    let stamps =
        pennyblack::postage::stamp_fields(&with_answer, &todo, &request, &minter, &signers)?;
    let out = with_answer.with_fields_on_top(&stamps);
    pennyblack::relay::send(&a.smtp, &a.helo, &kept.sender, &todo, &out, a.smtp_timeout)
        .with_context(|| format!("re-sending through {}", a.smtp))?;
    store.mark_answered(&entry, &todo)?;
    eprintln!(
        "pennyblack answer: answered: re-sent <{}> to {} with {} stamp(s) of {} bits ({})",
        challenge.message_id.as_deref().unwrap_or("no id"),
        todo.join(", "),
        todo.len(),
        request.bits,
        request.alg,
    );
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_and_line_endings() {
        assert!(aligned("example.net", "example.net"));
        assert!(aligned("example.net", "mx.example.net"));
        assert!(!aligned("example.net", "badexample.net"));
        assert!(!aligned("net", "example.net"));
        assert!(!aligned("mx.example.net", "example.net"));
        assert!(aligned("xn--bcher-kva.example", "mx.Bücher.example"));
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}

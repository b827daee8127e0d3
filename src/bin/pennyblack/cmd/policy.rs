//! `pennyblack policy`: what each domain's postage policy asks, and what this sender would mint
//! for a recipient there.

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use pennyblack::MintRequest;
use pennyblack::policy::lookup::{
    PolicyCache, Published, follow, normalize_domain, recipient_domain,
};

use crate::Exit;
use crate::args::PostagePolicyArgs;

pub fn run(a: PostagePolicyArgs) -> Result<Exit> {
    let (alg, parts) = a.cost.alg_and_parts()?;
    let configured = MintRequest::new("-")
        .alg(alg)
        .bits(a.cost.bits)
        .parts(parts);
    configured.validate()?;
    let max_bits = crate::cmd::max_bits(a.max_bits, a.cost.bits)?;
    // Every name is checked before anything is asked.
    let domains = a
        .domains
        .iter()
        .map(|d| {
            let name = recipient_domain(d).unwrap_or(d);
            normalize_domain(name).map_err(|e| anyhow::anyhow!("{d:?}: {e}"))
        })
        .collect::<Result<Vec<String>>>()?;
    let dns = crate::cmd::dns_lookup(a.dns.dns_server, a.dns.dns_timeout)?;
    let cache = PolicyCache::new(Arc::new(dns));
    let mut out = std::io::stdout().lock();
    let mut exit = Exit::Ok;
    for domain in &domains {
        let answer = cache.lookup(domain, None)?;
        let (mint, deviation) = follow(domain, &answer, &configured, max_bits);
        let followed = answer.requirement().is_some() && deviation.is_none();
        exit = exit.max(match answer {
            Published::Policy { .. } => Exit::Ok,
            Published::None => Exit::Invalid,
            Published::Invalid { .. } | Published::Several { .. } => Exit::NotFullyChecked,
            _ => Exit::Error,
        });
        let cost = |m: &MintRequest| format!("{} {} bits in {} part(s)", m.alg, m.bits, m.parts);
        if a.json {
            let mut v = serde_json::json!({
                "domain": domain,
                "result": result_word(&answer),
                "record": null,
                "requirement": null,
                "ttl": null,
                "kept": null,
                "error": null,
                "count": null,
                "mint": {"alg": mint.alg.to_string(), "bits": mint.bits, "parts": mint.parts},
                "followed": followed,
                "deviation": deviation.as_ref().map(|d| d.to_string()),
            });
            match &answer {
                Published::Policy {
                    record,
                    requirement,
                    ttl,
                } => {
                    v["record"] = record.as_str().into();
                    v["requirement"] = requirement.to_string().into();
                    v["ttl"] = (*ttl).into();
                    v["kept"] = answer.keep_for().into();
                }
                Published::Invalid { record, error } => {
                    v["record"] = record.as_str().into();
                    v["error"] = error.to_string().into();
                }
                Published::Several { count } => v["count"] = (*count).into(),
                Published::TempError { reason } => v["error"] = reason.to_string().into(),
                _ => {}
            }
            writeln!(out, "{v}")?;
            continue;
        }
        match &answer {
            Published::Policy {
                record,
                requirement,
                ttl,
            } => {
                let kept = answer.keep_for();
                writeln!(
                    out,
                    "{domain}: policy (TTL {ttl} s, kept {kept} s by senders)"
                )?;
                writeln!(out, "  record:      {record}")?;
                writeln!(out, "  requirement: {requirement}")?;
            }
            Published::None => writeln!(out, "{domain}: no policy")?,
            Published::Invalid { record, error } => {
                writeln!(out, "{domain}: invalid policy, treated as none: {error}")?;
                writeln!(out, "  record:      {record:?}")?;
            }
            Published::Several { count } => writeln!(
                out,
                "{domain}: {count} v=PB1 records, treated as none (publish one)"
            )?,
            Published::TempError { reason } => {
                writeln!(out, "{domain}: DNS failure (temperror): {reason}")?
            }
            _ => writeln!(out, "{domain}: {}", result_word(&answer))?,
        }
        let why = match (&deviation, followed) {
            (Some(d), _) => format!(" ({d})"),
            (None, true) => format!(" (configured {}, cap {})", cost(&configured), max_bits),
            (None, false) => " (the configured cost)".to_owned(),
        };
        writeln!(out, "  would mint:  {}{why}", cost(&mint))?;
    }
    out.flush()?;
    Ok(exit)
}

fn result_word(p: &Published) -> &'static str {
    match p {
        Published::Policy { .. } => "policy",
        Published::None => "none",
        Published::Invalid { .. } => "invalid",
        Published::Several { .. } => "several",
        _ => "temperror",
    }
}

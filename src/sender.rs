//! Sender validation beyond DKIM (cargo feature `dns`): SPF (RFC 7208) for the envelope sender
//! and the connecting address, and DMARC (RFC 7489; the record discovery of its successor,
//! RFC 9989) for the author's domain, through `mail-auth` and the resolver the DKIM key lookups
//! use ([`DnsLookup`]).
//!
//! SPF is our own [`crate::spf`] (the crates we tried fail the RFC 7208 test suite); DMARC is
//! `mail-auth`'s, to which we add:
//! - the author domains read by us, given to `mail-auth` one at a time, and every one of them
//!   judged: a message with several (two From fields, or one naming two domains) gets the worst
//!   of their verdicts, so a second author, or a final dot `mail-auth` would keep, cannot take a
//!   message out of its domain's policy (review 18: both were a permerror, which no policy
//!   acts on);
//! - results in our own types, for Authentication-Results and the JSON output.
//!
//! Limits on what a hostile record can cost (each documented in docs/FORMAT.md, "Sender
//! validation"): those of [`crate::spf`] for SPF, the resolver's timeout per query, and for
//! DMARC a tree walk of at most 8 queries.

use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{AuthenticatedMessage, Parameters, RecordSet, ResolverCache, Txt};

use crate::dkim::{DkimResult, DkimStatus, DnsLookup};
use crate::mail::Message;

pub use crate::spf::SpfResult;

fn spf_to_mail_auth(r: SpfResult) -> mail_auth::SpfResult {
    use mail_auth::SpfResult as M;
    match r {
        SpfResult::Pass => M::Pass,
        SpfResult::Fail => M::Fail,
        SpfResult::SoftFail => M::SoftFail,
        SpfResult::Neutral => M::Neutral,
        SpfResult::TempError => M::TempError,
        SpfResult::PermError => M::PermError,
        SpfResult::None => M::None,
    }
}

/// Which identity an SPF result is for (RFC 7208 2.3, 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfIdentity {
    /// The MAIL FROM address (`smtp.mailfrom`).
    MailFrom,
    /// The HELO/EHLO name (`smtp.helo`), checked when MAIL FROM is empty.
    Helo,
}

/// The SMTP session facts an SPF check needs.
#[derive(Debug, Clone)]
pub struct SpfRequest {
    /// The connecting client's address.
    pub client_ip: IpAddr,
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// The MAIL FROM address without angle brackets; empty for the null reverse-path (then the
    /// HELO identity is checked, as `postmaster@HELO`).
    pub mail_from: String,
    /// This host's name (the `%{r}` macro); empty gives `unknown`.
    pub receiver: String,
}

/// What an SPF check found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpfVerdict {
    /// The result.
    pub result: SpfResult,
    /// The identity checked.
    pub identity: SpfIdentity,
    /// That identity: the MAIL FROM address, or the HELO name.
    pub sender: String,
    /// The domain whose record was evaluated (also the SPF domain DMARC aligns).
    pub domain: String,
    /// The domain's explanation (`exp=`) of a `fail`, when it gives one.
    pub explanation: Option<String>,
    /// Why, for an error the RFC's result alone does not say (a limit, a DNS failure).
    pub reason: Option<String>,
}

/// `check_host()` of RFC 7208 for the MAIL FROM identity, or the HELO identity when MAIL FROM
/// is empty, through `dns`. Never fails: DNS trouble is a `temperror`, a hostile record a
/// `permerror`.
pub fn check_spf(dns: &DnsLookup, req: &SpfRequest) -> SpfVerdict {
    let helo = req.helo.trim_end_matches('.');
    let receiver = if req.receiver.is_empty() {
        "unknown"
    } else {
        req.receiver.as_str()
    };
    let (identity, sender) = if req.mail_from.is_empty() {
        (SpfIdentity::Helo, helo.to_owned())
    } else {
        (SpfIdentity::MailFrom, req.mail_from.clone())
    };
    let domain = match identity {
        SpfIdentity::Helo => helo.to_owned(),
        SpfIdentity::MailFrom => req
            .mail_from
            .rsplit_once('@')
            .map_or(helo, |(_, d)| d)
            .to_owned(),
    };
    // The sender as check_host() sees it: postmaster@HELO for the HELO identity, and a MAIL
    // FROM without '@' is a local part at the HELO domain (RFC 7208 4.3).
    let checked_sender = match identity {
        SpfIdentity::Helo => format!("postmaster@{helo}"),
        SpfIdentity::MailFrom if req.mail_from.contains('@') => req.mail_from.clone(),
        SpfIdentity::MailFrom => format!("{}@{helo}", req.mail_from),
    };
    let resolver = dns.authenticator().resolver();
    let query = crate::spf::Query {
        ip: req.client_ip,
        domain: &domain,
        sender: &checked_sender,
        helo,
        receiver,
    };
    let out = dns.block_on(crate::spf::check_host(resolver, &query));
    match out {
        Some(o) => SpfVerdict {
            result: o.result,
            identity,
            sender,
            domain,
            explanation: o.explanation,
            reason: o.reason,
        },
        None => SpfVerdict {
            result: SpfResult::TempError,
            identity,
            sender,
            domain,
            explanation: None,
            reason: Some("the resolver is shutting down".into()),
        },
    }
}

/// A DMARC result (RFC 7489 11.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcResult {
    /// An aligned SPF or DKIM pass.
    Pass,
    /// The author domain has a policy and nothing aligned passed.
    Fail,
    /// No policy applies (no record).
    None,
    /// A DNS failure for now: never a reason to refuse.
    TempError,
    /// The record, or the From field, cannot be used.
    PermError,
}

impl DmarcResult {
    /// The keyword of Authentication-Results (RFC 8601) and of the JSON output.
    pub fn keyword(self) -> &'static str {
        match self {
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::None => "none",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

/// The policy a domain asks for mail that fails DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    /// Deliver (monitoring only).
    None,
    /// Treat as suspicious (hold, spam folder).
    Quarantine,
    /// Refuse.
    Reject,
}

impl DmarcPolicy {
    /// The policy's keyword (`p=`).
    pub fn keyword(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }
}

/// What a DMARC check found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DmarcVerdict {
    /// The result.
    pub result: DmarcResult,
    /// The author domain judged (of several, the one whose verdict is reported); empty when the
    /// From field names none.
    pub from_domain: String,
    /// The policy that applies to the author domain (its `p=`, a subdomain's `sp=` or `np=`);
    /// `none` when no record applies.
    pub policy: DmarcPolicy,
    /// Whether the record asks for testing only (`t=y`): then the policy is applied one step
    /// less strictly.
    pub testing: bool,
    /// Whether an SPF pass is aligned with the author domain.
    pub spf_aligned: bool,
    /// Whether a DKIM pass is aligned with the author domain.
    pub dkim_aligned: bool,
    /// The signing domains (`d=`) of the passing DKIM signatures aligned with the author domain.
    pub aligned_signers: Vec<String>,
    /// Why, for a permerror or temperror.
    pub reason: Option<String>,
    /// No From field names a domain (none at all, or only mailboxes without one): the result
    /// is a permerror, and `--dmarc-enforce` refuses the message, since no domain's policy can
    /// be applied and the author's may be a reject. (Several author domains are each judged,
    /// and the worst verdict is reported.)
    pub ambiguous_author: bool,
}

impl DmarcVerdict {
    fn unusable(result: DmarcResult, from_domain: String, reason: String) -> DmarcVerdict {
        DmarcVerdict {
            result,
            from_domain,
            policy: DmarcPolicy::None,
            testing: false,
            spf_aligned: false,
            dkim_aligned: false,
            aligned_signers: Vec::new(),
            reason: Some(reason),
            ambiguous_author: false,
        }
    }

    /// The policy to act on: the record's, one step milder under `t=y` (RFC 9989), and nothing
    /// unless the result is a fail.
    /// A message whose From fields name no domain at all is refused.
    pub fn action(&self) -> DmarcPolicy {
        if self.ambiguous_author {
            return DmarcPolicy::Reject;
        }
        match (self.result, self.policy, self.testing) {
            (DmarcResult::Fail, DmarcPolicy::Reject, true) => DmarcPolicy::Quarantine,
            (DmarcResult::Fail, DmarcPolicy::Quarantine, true) => DmarcPolicy::None,
            (DmarcResult::Fail, p, _) => p,
            _ => DmarcPolicy::None,
        }
    }
}

/// The first `_dmarc` name of the tree walk from `domain` (at most 8 names, none a bare
/// top-level label) that holds DMARC records, when it holds more than one.
fn several_records(dns: &DnsLookup, domain: &str) -> Option<String> {
    use crate::dkim::KeyLookup;
    let labels: Vec<&str> = domain.split('.').collect();
    for start in 0..labels.len().saturating_sub(1).min(8) {
        let name = format!("_dmarc.{}", labels[start..].join("."));
        let Ok(records) = dns.txt(&name) else {
            continue;
        };
        let n = records
            .iter()
            .filter(|r| {
                let t = r.trim_start();
                t.as_bytes()
                    .get(..8)
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"v=DMARC1"))
                    && t.get(8..).is_some_and(|rest| {
                        let rest = rest.trim_start();
                        rest.is_empty() || rest.starts_with(';')
                    })
            })
            .count();
        match n {
            0 => continue,
            1 => return None,
            _ => return Some(name),
        }
    }
    None
}

/// The author domains of `msg`: every mailbox domain of every From field, lowercased, without
/// a final dot, each once, in order. An error when there is no From field or no domain at all.
/// Mailboxes without a domain are passed over: they cannot hide the domains beside them.
fn author_domains(msg: &Message) -> Result<Vec<String>, String> {
    let froms: Vec<String> = msg.fields_named("from").map(|f| f.value()).collect();
    if froms.is_empty() {
        return Err("no From field".into());
    }
    let mut domains: Vec<String> = Vec::new();
    for from in &froms {
        let header = format!("From: {from}\r\n\r\n");
        let parsed = mail_parser::MessageParser::new().parse_headers(header.as_bytes());
        let addrs = parsed
            .as_ref()
            .and_then(|m| m.from())
            .map(|a| {
                a.iter()
                    .filter_map(|a| a.address())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for a in &addrs {
            let Some((_, d)) = a.rsplit_once('@') else {
                continue;
            };
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !d.is_empty() && !domains.contains(&d) {
                domains.push(d);
            }
        }
    }
    if domains.is_empty() {
        return Err("no address with a domain in the From field".into());
    }
    Ok(domains)
}

/// How much a verdict weighs when several author domains are judged: the strictest action
/// first, then fail, temperror, permerror, none, pass.
fn weight(v: &DmarcVerdict) -> (u8, u8) {
    let action = match v.action() {
        DmarcPolicy::Reject => 2,
        DmarcPolicy::Quarantine => 1,
        DmarcPolicy::None => 0,
    };
    let result = match v.result {
        DmarcResult::Fail => 4,
        DmarcResult::TempError => 3,
        DmarcResult::PermError => 2,
        DmarcResult::None => 1,
        DmarcResult::Pass => 0,
    };
    (action, result)
}

/// DMARC for `msg`: its author domain's policy, and whether `spf` (for the MAIL FROM or HELO
/// domain) or a passing signature of `dkim` is aligned with it, through `dns`.
///
/// The author domain is ours ([`author_domains`]), given to `mail-auth` as it is: its own
/// reading of the From field (which keeps a final dot, `a@bank.example.`, and then finds no
/// record: a permerror) never decides. A message with several author domains (two From
/// fields, or one naming two domains: RFC 7489 6.6.1) is judged by the worst of their verdicts,
/// so a second author cannot take a message out of the first one's policy; a signature is
/// aligned with From only when it is aligned with every author domain.
pub fn check_dmarc(
    dns: &DnsLookup,
    msg: &Message,
    dkim: &[DkimResult],
    spf: &SpfVerdict,
) -> DmarcVerdict {
    let domains = match author_domains(msg) {
        Ok(d) => d,
        Err(why) => {
            return DmarcVerdict {
                ambiguous_author: true,
                ..DmarcVerdict::unusable(DmarcResult::PermError, String::new(), why)
            };
        }
    };
    let mut verdicts: Vec<DmarcVerdict> = domains
        .iter()
        .map(|d| check_dmarc_for(dns, d, dkim, spf))
        .collect();
    if verdicts.len() == 1 {
        return verdicts.remove(0);
    }
    let aligned: Vec<String> = verdicts[0]
        .aligned_signers
        .iter()
        .filter(|s| verdicts.iter().all(|v| v.aligned_signers.contains(s)))
        .cloned()
        .collect();
    let n = verdicts.len();
    let mut worst = verdicts
        .into_iter()
        .rev()
        .max_by_key(weight)
        .expect("at least two verdicts");
    worst.aligned_signers = aligned;
    worst.dkim_aligned &= !worst.aligned_signers.is_empty();
    let note = format!(
        "{n} author domains ({}): the worst verdict, {}'s",
        domains.join(", "),
        worst.from_domain
    );
    worst.reason = Some(match worst.reason.take() {
        Some(r) => format!("{r}; {note}"),
        None => note,
    });
    worst
}

/// DMARC for the author domain `from_domain`.
fn check_dmarc_for(
    dns: &DnsLookup,
    from_domain: &str,
    dkim: &[DkimResult],
    spf: &SpfVerdict,
) -> DmarcVerdict {
    let from_domain = from_domain.to_owned();
    // The first name of the tree walk that has DMARC records must have exactly one: with
    // several, policy discovery ends and DMARC is not applied (RFC 7489 6.6.3 step 4).
    // mail-auth would take one of them.
    if let Some(name) = several_records(dns, &from_domain) {
        return DmarcVerdict {
            reason: Some(format!(
                "several DMARC records at {name}: none applies (RFC 7489 6.6.3)"
            )),
            ..DmarcVerdict::unusable(DmarcResult::None, from_domain, String::new())
        };
    }
    // mail-auth's DMARC reads nothing of the message but its From addresses: ours, one domain.
    let parsed = AuthenticatedMessage {
        from: vec![format!("postmaster@{from_domain}")],
        ..Default::default()
    };
    // The SPF domain as the check saw it (check_host() ignores a final dot).
    let spf_domain = spf.domain.trim_end_matches('.').to_owned();
    // Our DKIM verdicts as mail-auth's: only `d=` and the result matter to DMARC.
    let signatures: Vec<mail_auth::dkim::Signature> = dkim
        .iter()
        .map(|d| mail_auth::dkim::Signature {
            d: d.domain.clone(),
            ..Default::default()
        })
        .collect();
    let outputs: Vec<mail_auth::DkimOutput<'_>> = dkim
        .iter()
        .zip(&signatures)
        .map(|(d, sig)| {
            let out = match &d.status {
                DkimStatus::Pass => mail_auth::DkimOutput::pass(),
                DkimStatus::TempError(e) => mail_auth::DkimOutput::temp_err(mail_auth::Error::Dns(
                    mail_auth::DnsError::Resolver(e.clone()),
                )),
                _ => mail_auth::DkimOutput::fail(mail_auth::Error::NotAligned),
            };
            out.with_signature(sig)
        })
        .collect();
    let spf_out =
        mail_auth::SpfOutput::new(spf_domain.clone()).with_result(spf_to_mail_auth(spf.result));
    let auth = dns.authenticator();
    let txt_cache = MapCache::<Txt>::default();
    let a_cache = MapCache::<RecordSet<Ipv4Addr>>::default();
    let Some(out) = dns.block_on(
        auth.verify_dmarc(
            Parameters::new(DmarcParameters::new(
                &parsed,
                &outputs,
                &spf_domain,
                &spf_out,
            ))
            .with_txt_cache(&txt_cache)
            .with_ipv4_cache(&a_cache),
        ),
    ) else {
        return DmarcVerdict::unusable(
            DmarcResult::TempError,
            from_domain,
            "the resolver is shutting down".into(),
        );
    };
    let policy = match out.policy() {
        mail_auth::dmarc::Policy::Reject => DmarcPolicy::Reject,
        mail_auth::dmarc::Policy::Quarantine => DmarcPolicy::Quarantine,
        _ => DmarcPolicy::None,
    };
    let spf_aligned = *out.spf_result() == mail_auth::DmarcResult::Pass;
    let dkim_aligned = *out.dkim_result() == mail_auth::DmarcResult::Pass;
    let reason = |r: &mail_auth::DmarcResult| match r {
        mail_auth::DmarcResult::TempError(e) | mail_auth::DmarcResult::PermError(e) => {
            Some(e.to_string())
        }
        _ => None,
    };
    let result = match out.result() {
        mail_auth::DmarcResult::Pass => DmarcResult::Pass,
        mail_auth::DmarcResult::Fail(_) => DmarcResult::Fail,
        mail_auth::DmarcResult::TempError(_) => DmarcResult::TempError,
        mail_auth::DmarcResult::PermError(_) => DmarcResult::PermError,
        mail_auth::DmarcResult::None => DmarcResult::None,
    };
    // Which passing signers are aligned: the same check for each alone (its DNS answers
    // cached), so that a stamp can say whether its own signature is.
    let mut aligned_signers: Vec<String> = Vec::new();
    if dkim_aligned {
        let none = mail_auth::SpfOutput::new(String::new());
        for (o, d) in outputs.iter().zip(dkim) {
            if d.status != DkimStatus::Pass || aligned_signers.contains(&d.domain) {
                continue;
            }
            let one = std::slice::from_ref(o);
            let alone = dns.block_on(
                auth.verify_dmarc(
                    Parameters::new(DmarcParameters::new(&parsed, one, "", &none))
                        .with_txt_cache(&txt_cache)
                        .with_ipv4_cache(&a_cache),
                ),
            );
            if alone.is_some_and(|a| *a.dkim_result() == mail_auth::DmarcResult::Pass) {
                aligned_signers.push(d.domain.clone());
            }
        }
    }
    DmarcVerdict {
        result,
        policy: if out.dmarc_record().is_some() {
            policy
        } else {
            DmarcPolicy::None
        },
        testing: out.dmarc_record().is_some_and(|r| r.t),
        spf_aligned,
        dkim_aligned,
        aligned_signers,
        reason: reason(&out.result())
            .or_else(|| reason(out.spf_result()))
            .or_else(|| reason(out.dkim_result())),
        ambiguous_author: false,
        from_domain,
    }
}

/// A cache for one DMARC check: its TXT and A answers kept, so that checking each signer alone
/// asks the DNS nothing more.
struct MapCache<V>(std::sync::Mutex<std::collections::HashMap<Box<str>, V>>);

impl<V> Default for MapCache<V> {
    fn default() -> Self {
        MapCache(Default::default())
    }
}

impl<V: Clone> ResolverCache<Box<str>, V> for MapCache<V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }
    fn insert(&self, key: Box<str>, value: V, _: std::time::Instant) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(header: &str) -> Message {
        Message::parse(format!("{header}To: b@example.net\r\n\r\nbody\r\n").into_bytes()).unwrap()
    }

    /// The author domains an attacker cannot blur: every domain of every From field, the final
    /// dot and case gone, so that none escapes its DMARC policy behind another author.
    #[test]
    fn every_author_domain_is_judged() {
        let ok = |h: &str| author_domains(&msg(h));
        let one = |h: &str| ok(h).unwrap_or_else(|e| panic!("{h:?}: {e}"));
        assert_eq!(one("From: a@Example.ORG\r\n"), ["example.org"]);
        assert_eq!(
            one("From: \"Bank\" <a@bank.example>, b@bank.example\r\n"),
            ["bank.example"]
        );
        // Review 18: mail-auth kept the final dot and found no record (permerror: no policy).
        assert_eq!(one("From: a@example.org.\r\n"), ["example.org"]);
        assert_eq!(one("From: a@bank.example..\r\n"), ["bank.example"]);
        // Review 18: a second author (or a second From field) made a permerror, which no
        // policy acts on: now each domain is judged.
        assert_eq!(
            one("From: a@bank.example, b@evil.example\r\n"),
            ["bank.example", "evil.example"]
        );
        assert_eq!(
            one("From: b@evil.example\r\nFrom: a@bank.example\r\n"),
            ["evil.example", "bank.example"]
        );
        assert_eq!(
            one("From: a@bank.example\r\nFrom: a@bank.example\r\n"),
            ["bank.example"]
        );
        // A mailbox without a domain hides nothing beside it.
        assert_eq!(one("From: nobody, a@bank.example\r\n"), ["bank.example"]);
        assert_eq!(
            one("From: undisclosed:;, a@bank.example\r\n"),
            ["bank.example"]
        );
        for bad in [
            "Subject: no from\r\n",
            "From: undisclosed-recipients:;\r\n",
            "From: nobody\r\n",
        ] {
            assert!(ok(bad).is_err(), "{bad:?} gave {:?}", ok(bad));
        }
    }

    /// Several author domains: the strictest action decides, then the worst result.
    #[test]
    fn the_worst_verdict_weighs_most() {
        let v = |result, policy| DmarcVerdict {
            result,
            from_domain: String::new(),
            policy,
            testing: false,
            spf_aligned: false,
            dkim_aligned: false,
            aligned_signers: Vec::new(),
            reason: None,
            ambiguous_author: false,
        };
        use DmarcPolicy::{Quarantine, Reject};
        let fail_reject = v(DmarcResult::Fail, Reject);
        for other in [
            v(DmarcResult::Pass, Reject),
            v(DmarcResult::PermError, DmarcPolicy::None),
            v(DmarcResult::TempError, DmarcPolicy::None),
            v(DmarcResult::Fail, Quarantine),
            v(DmarcResult::None, DmarcPolicy::None),
        ] {
            assert!(weight(&fail_reject) > weight(&other), "{other:?}");
        }
        assert!(
            weight(&v(DmarcResult::Fail, DmarcPolicy::None))
                > weight(&v(DmarcResult::Pass, DmarcPolicy::None))
        );
    }

    #[test]
    fn the_action_is_the_policy_of_a_fail_only_and_milder_under_testing() {
        let v = |result, policy, testing| DmarcVerdict {
            result,
            from_domain: "example.org".into(),
            policy,
            testing,
            spf_aligned: false,
            dkim_aligned: false,
            aligned_signers: Vec::new(),
            reason: None,
            ambiguous_author: false,
        };
        use DmarcPolicy::{Quarantine, Reject};
        // No single author domain: refused under --dmarc-enforce whatever else.
        let ambiguous = DmarcVerdict {
            ambiguous_author: true,
            ..v(DmarcResult::PermError, DmarcPolicy::None, false)
        };
        assert_eq!(ambiguous.action(), Reject);
        assert_eq!(v(DmarcResult::Fail, Reject, false).action(), Reject);
        assert_eq!(v(DmarcResult::Fail, Reject, true).action(), Quarantine);
        assert_eq!(v(DmarcResult::Fail, Quarantine, false).action(), Quarantine);
        assert_eq!(
            v(DmarcResult::Fail, Quarantine, true).action(),
            DmarcPolicy::None
        );
        for r in [
            DmarcResult::Pass,
            DmarcResult::None,
            DmarcResult::TempError,
            DmarcResult::PermError,
        ] {
            assert_eq!(v(r, Reject, false).action(), DmarcPolicy::None, "{r:?}");
        }
    }
}

//! Whole messages: stamp one for every recipient and sign it; check the stamps and signatures of
//! one and say what was found. The `stamp` and `check` commands (and, later, the milter) are thin
//! layers over these two functions.

use crate::dkim::{self, DkimResult, DkimStatus, KeyLookup, SignRequest};
use crate::error::{Error, MintError};
use crate::mail::{Message, format_field};
use crate::mint::{MintRequest, Minter};
use crate::verify::{Verdict, Verifier};

/// Why a message could not be stamped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// The message has no recipient to stamp for.
    #[error("no recipients: the message has no To or Cc address and none was given")]
    NoRecipients,
    /// A stamp could not be minted.
    #[error("minting a stamp for {resource}: {error}")]
    Mint {
        /// The recipient.
        resource: String,
        /// Why.
        error: MintError,
    },
    /// The stamped message could not be read back (cannot happen for a message that parsed).
    #[error("the stamped message does not parse: {0}")]
    Mail(#[from] crate::mail::MailError),
    /// Signing failed.
    #[error("DKIM: {0}")]
    Dkim(#[from] dkim::DkimError),
}

/// Mints one stamp per recipient (`request` gives everything but the resource; each stamp uses
/// all of `threads`) and puts them on top of `msg` as `X-Hashcash:` fields; then signs the
/// result once per signer and puts the signatures above. Returns the new message bytes.
pub fn stamp_message(
    msg: &Message,
    recipients: &[String],
    request: &MintRequest,
    threads: usize,
    signers: &[SignRequest<'_>],
) -> Result<Vec<u8>, StampError> {
    let minter = Minter::new().threads(threads);
    let fields = stamp_fields(msg, recipients, request, &minter, signers)?;
    Ok(msg.with_fields_on_top(&fields))
}

/// The fields `stamp_message` adds, in top-to-bottom order (signatures first, then one
/// `X-Hashcash` field per recipient), each ending in the message's line ending. The stamps are
/// minted one after another with `minter`, each on all of its threads, so its deadline and
/// cancel flag bound the whole message. Every request is validated before any work starts.
pub fn stamp_fields(
    msg: &Message,
    recipients: &[String],
    request: &MintRequest,
    minter: &Minter,
    signers: &[SignRequest<'_>],
) -> Result<Vec<String>, StampError> {
    if recipients.is_empty() {
        return Err(StampError::NoRecipients);
    }
    let reqs: Vec<MintRequest> = recipients
        .iter()
        .map(|r| MintRequest {
            resource: r.clone(),
            ..request.clone()
        })
        .collect();
    for r in &reqs {
        r.validate().map_err(|error| StampError::Mint {
            resource: r.resource.clone(),
            error,
        })?;
    }
    let mut stamps = Vec::with_capacity(reqs.len());
    for r in &reqs {
        let stamp = minter.mint(r).map_err(|error| StampError::Mint {
            resource: r.resource.clone(),
            error,
        })?;
        stamps.push(format_field("X-Hashcash", &stamp.to_string(), msg.eol()));
    }
    if signers.is_empty() {
        return Ok(stamps);
    }
    let stamped = Message::parse(msg.with_fields_on_top(&stamps))?;
    let mut fields = sign_fields(&stamped, signers)?;
    fields.extend(stamps);
    Ok(fields)
}

/// One `DKIM-Signature` field per signer, in order, for `msg` as it is.
pub fn sign_fields(msg: &Message, signers: &[SignRequest<'_>]) -> Result<Vec<String>, StampError> {
    Ok(signers
        .iter()
        .map(|s| dkim::sign(msg, s))
        .collect::<Result<Vec<_>, _>>()?)
}

/// What `check_message` found.
#[derive(Debug)]
pub struct MessageVerdict {
    /// One result per DKIM signature, top to bottom.
    pub dkim: Vec<DkimResult>,
    /// One verdict per stamp addressed to us, top to bottom.
    pub stamps: Vec<StampVerdict>,
    /// Stamps skipped because they are addressed to someone else, or beyond the limit.
    pub skipped: usize,
}

/// One stamp's verdict, and whether a passing signature covers its field.
#[derive(Debug)]
pub struct StampVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// The domain of a passing signature that covers this stamp's field, if any.
    pub bound_to: Option<String>,
}

/// The overall result of a message check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A valid stamp for us, and no failing signature.
    Pass,
    /// A signature failed, or every stamp for us is invalid.
    Fail,
    /// No stamp for us and nothing failed.
    None,
}

impl MessageVerdict {
    /// The `x-hashcash` result: pass if any stamp for us is valid, fail if there were stamps for
    /// us and none is, none if there were none.
    pub fn hashcash(&self) -> Outcome {
        if self.stamps.iter().any(|s| s.verdict.is_valid()) {
            Outcome::Pass
        } else if self.stamps.is_empty() {
            Outcome::None
        } else {
            Outcome::Fail
        }
    }

    /// The message's overall outcome: fail if a signature failed or the stamps failed.
    pub fn outcome(&self) -> Outcome {
        let dkim_failed = self
            .dkim
            .iter()
            .any(|d| matches!(d.status, DkimStatus::Fail(_)));
        match (dkim_failed, self.hashcash()) {
            (true, _) | (_, Outcome::Fail) => Outcome::Fail,
            (false, h) => h,
        }
    }
}

/// Limits on the work a message may cause.
#[derive(Debug, Clone, Copy)]
pub struct CheckLimits {
    /// At most this many `X-Hashcash` fields are examined.
    pub max_stamps: usize,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits { max_stamps: 64 }
    }
}

/// Verifies the DKIM signatures of `msg`, then the stamps addressed to the verifier's accepted
/// resources (all stamps if it accepts any), recording valid ones as spent. A stamp counts as
/// bound to a domain when a passing signature of that domain covers its field (signatures
/// cover `X-Hashcash` fields bottom-up, as many as `h=` names).
pub fn check_message(
    msg: &Message,
    verifier: &Verifier,
    keys: &dyn KeyLookup,
    dkim_opts: &dkim::VerifyOptions,
    limits: &CheckLimits,
) -> Result<MessageVerdict, Error> {
    let dkim = dkim::verify(msg, keys, dkim_opts);
    let fields: Vec<_> = msg.fields_named("X-Hashcash").collect();
    let total = fields.len();
    let mut stamps = Vec::new();
    let mut skipped = 0;
    for (i, f) in fields.iter().enumerate() {
        let text: String = f.value().chars().filter(|c| !c.is_whitespace()).collect();
        let for_us = match text.parse::<crate::Stamp>() {
            Ok(s) => {
                let pats = &verifier.policy().resources;
                pats.is_empty() || pats.iter().any(|p| p.matches(s.resource()))
            }
            Err(_) => true,
        };
        if !for_us || stamps.len() >= limits.max_stamps {
            skipped += 1;
            continue;
        }
        let from_bottom = total - i; // 1 for the lowest field
        let bound_to = dkim
            .iter()
            .find(|d| d.status == DkimStatus::Pass && d.covers("x-hashcash") >= from_bottom)
            .map(|d| d.domain.clone());
        stamps.push(StampVerdict {
            verdict: verifier.check(&text)?,
            bound_to,
        });
    }
    Ok(MessageVerdict {
        dkim,
        stamps,
        skipped,
    })
}

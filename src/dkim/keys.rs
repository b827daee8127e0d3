//! DKIM keys: private keys from PEM files (PKCS#8 for both algorithms, PKCS#1 RSA accepted),
//! public keys from `v=DKIM1; k=...; p=...` records, and where records come from.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

use super::{DkimError, Tags};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The smallest RSA key accepted for verifying (RFC 8301) and for signing we require 2048.
pub const MIN_RSA_VERIFY_BITS: usize = 1024;
/// The smallest RSA key we sign with.
pub const MIN_RSA_SIGN_BITS: usize = 2048;

/// The two key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, `rsa-sha256`.
    Rsa,
    /// Ed25519, `ed25519-sha256`.
    Ed25519,
}

/// A private signing key.
pub enum SigningKey {
    /// RSA with PKCS#1 v1.5 signatures over SHA-256.
    Rsa(Box<rsa::PrivateKey>),
    /// Ed25519 over the SHA-256 hash of the signed data (RFC 8463).
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.algorithm())
    }
}

impl SigningKey {
    /// Reads a PEM key: `PRIVATE KEY` (PKCS#8, RSA or Ed25519) or `RSA PRIVATE KEY` (PKCS#1).
    /// RSA keys under 2048 bits are refused.
    pub fn from_pem(pem: &str) -> Result<SigningKey, DkimError> {
        let key = if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            SigningKey::Ed25519(Box::new(k))
        } else if let Ok(k) = rsa::PrivateKey::from_pkcs8_pem(pem) {
            SigningKey::Rsa(Box::new(k))
        } else if let Ok(k) = rsa::PrivateKey::from_pkcs1_pem(pem) {
            SigningKey::Rsa(Box::new(k))
        } else {
            return Err(DkimError::Key(
                "not a PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA)".into(),
            ));
        };
        if let SigningKey::Rsa(k) = &key
            && k.size() * 8 < MIN_RSA_SIGN_BITS
        {
            return Err(DkimError::Key(format!(
                "RSA key of {} bits; at least {MIN_RSA_SIGN_BITS} are required",
                k.size() * 8
            )));
        }
        Ok(key)
    }

    /// Reads a PEM key file.
    pub fn from_file(path: &Path) -> Result<SigningKey, DkimError> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| DkimError::Key(format!("{}: {e}", path.display())))?;
        SigningKey::from_pem(&pem).map_err(|e| DkimError::Key(format!("{}: {e}", path.display())))
    }

    /// A new key: Ed25519, or RSA of `rsa_bits` (at least 2048).
    pub fn generate(kind: KeyKind, rsa_bits: usize) -> Result<SigningKey, DkimError> {
        match kind {
            KeyKind::Ed25519 => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| DkimError::Key(e.to_string()))?;
                Ok(SigningKey::Ed25519(Box::new(
                    ed25519_dalek::SigningKey::from_bytes(&seed),
                )))
            }
            KeyKind::Rsa => {
                if rsa_bits < MIN_RSA_SIGN_BITS {
                    return Err(DkimError::Key(format!(
                        "RSA keys need at least {MIN_RSA_SIGN_BITS} bits"
                    )));
                }
                let k = rsa::PrivateKey::new(&mut getrandom::SysRng, rsa_bits)
                    .map_err(|e| DkimError::Key(e.to_string()))?;
                Ok(SigningKey::Rsa(Box::new(k)))
            }
        }
    }

    /// The `a=` value this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            SigningKey::Rsa(_) => "rsa-sha256",
            SigningKey::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// Signs `data` (the canonicalized header data).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DkimError> {
        match self {
            SigningKey::Rsa(k) => {
                let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone());
                let sig = signer
                    .try_sign(data)
                    .map_err(|e| DkimError::Sign(e.to_string()))?;
                Ok(sig.to_vec())
            }
            SigningKey::Ed25519(k) => Ok(k.sign(&Sha256::digest(data)).to_bytes().to_vec()),
        }
    }

    /// The DNS TXT record that publishes the public key: `v=DKIM1; k=...; p=...`.
    pub fn public_record(&self) -> Result<String, DkimError> {
        let (k, p) = match self {
            SigningKey::Rsa(k) => {
                let der = k
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| DkimError::Key(e.to_string()))?;
                ("rsa", B64.encode(der.as_bytes()))
            }
            SigningKey::Ed25519(k) => ("ed25519", B64.encode(k.verifying_key().as_bytes())),
        };
        Ok(format!("v=DKIM1; k={k}; p={p}"))
    }

    /// The key as a PKCS#8 PEM file, as `openssl genpkey` writes it.
    pub fn to_pkcs8_pem(&self) -> Result<String, DkimError> {
        let pem = match self {
            SigningKey::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF),
            // Version 1 PKCS#8 without the public key, exactly as `openssl genpkey` writes it
            // (OpenSSL 3.0 refuses the version 2 form).
            SigningKey::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| DkimError::Key(e.to_string()))?;
        Ok(pem.to_string())
    }
}

/// A public key from a DKIM key record.
#[derive(Debug)]
pub enum PublicKey {
    /// RSA.
    Rsa(Box<rsa::PublicKey>),
    /// Ed25519.
    Ed25519(Box<ed25519_dalek::VerifyingKey>),
}

impl PublicKey {
    /// Reads a `v=DKIM1; k=...; p=...` record, for a signature of kind `want`.
    pub fn from_record(record: &str, want: KeyKind) -> Result<PublicKey, DkimError> {
        let tags = Tags::parse(record)?;
        if let Some(v) = tags.get("v")
            && v != "DKIM1"
        {
            return Err(DkimError::Key(format!(
                "record version {v:.20} is not DKIM1"
            )));
        }
        let kind = match tags.get("k").unwrap_or("rsa") {
            "rsa" => KeyKind::Rsa,
            "ed25519" => KeyKind::Ed25519,
            other => return Err(DkimError::Key(format!("unknown key type {other:.20}"))),
        };
        if kind != want {
            return Err(DkimError::Key(
                "the key type does not match the signature algorithm".into(),
            ));
        }
        let p = tags.base64("p")?;
        if p.is_empty() {
            return Err(DkimError::Key("the key was revoked (empty p=)".into()));
        }
        match kind {
            KeyKind::Rsa => {
                // Measure the modulus before building the key (the rsa crate itself refuses
                // small keys with a less helpful message).
                if let Some(bits) = rsa_modulus_bits(&p)
                    && bits < MIN_RSA_VERIFY_BITS
                {
                    return Err(DkimError::Key(format!(
                        "RSA key of {bits} bits is under {MIN_RSA_VERIFY_BITS} (RFC 8301)"
                    )));
                }
                let k = rsa::PublicKey::from_public_key_der(&p)
                    .or_else(|_| {
                        use rsa::pkcs1::DecodeRsaPublicKey;
                        rsa::PublicKey::from_pkcs1_der(&p)
                    })
                    .map_err(|e| DkimError::Key(format!("bad RSA key: {e}")))?;
                if k.size() * 8 < MIN_RSA_VERIFY_BITS {
                    return Err(DkimError::Key(format!(
                        "RSA key of {} bits is under {MIN_RSA_VERIFY_BITS} (RFC 8301)",
                        k.size() * 8
                    )));
                }
                Ok(PublicKey::Rsa(Box::new(k)))
            }
            KeyKind::Ed25519 => {
                let bytes: [u8; 32] = p
                    .as_slice()
                    .try_into()
                    .map_err(|_| DkimError::Key("an Ed25519 key is 32 bytes".into()))?;
                let k = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|e| DkimError::Key(format!("bad Ed25519 key: {e}")))?;
                Ok(PublicKey::Ed25519(Box::new(k)))
            }
        }
    }

    /// Whether `sig` is this key's signature of `data`.
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(k) => {
                let v = rsa::pkcs1v15::VerifyingKey::<Sha256>::new((**k).clone());
                rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| v.verify(data, &s).is_ok())
            }
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(&Sha256::digest(data), &s).is_ok()),
        }
    }
}

/// The modulus size of an RSA public key in SubjectPublicKeyInfo or PKCS#1 DER form.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    use rsa::pkcs1::der::Decode;
    let inner = rsa::pkcs8::spki::SubjectPublicKeyInfoRef::from_der(der)
        .ok()
        .and_then(|spki| spki.subject_public_key.as_bytes().map(<[u8]>::to_vec))
        .unwrap_or_else(|| der.to_vec());
    let key: rsa::pkcs1::RsaPublicKey<rsa::pkcs1::UintRef<'_>> =
        rsa::pkcs1::RsaPublicKey::from_der(&inner).ok()?;
    let m = key.modulus.as_bytes();
    let first = m.iter().position(|&b| b != 0)?;
    Some((m.len() - first) * 8 - m[first].leading_zeros() as usize)
}

/// Why a key record could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// There is no such record.
    #[error("no such record")]
    NotFound,
    /// The lookup failed for now (DNS timeout, server failure).
    #[error("temporary failure: {0}")]
    Temporary(String),
}

/// Where DKIM key records come from: DNS TXT records, or a file.
pub trait KeyLookup: Send + Sync {
    /// The TXT record strings at `name` (`selector._domainkey.domain`).
    fn txt(&self, name: &str) -> Result<Vec<String>, LookupError>;
}

/// Key records from a file of `SELECTOR._domainkey.DOMAIN TXT-RECORD` lines (`#` comments and
/// blank lines skipped), for offline use and tests. Names compare case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct KeyFile {
    records: HashMap<String, String>,
}

impl KeyFile {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<KeyFile, DkimError> {
        let mut records = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, record)) = line.split_once(char::is_whitespace) else {
                return Err(DkimError::Key(format!(
                    "line {}: expected NAME RECORD",
                    i + 1
                )));
            };
            let record = record.trim().trim_matches('"');
            records.insert(
                name.trim_end_matches('.').to_ascii_lowercase(),
                record.to_owned(),
            );
        }
        Ok(KeyFile { records })
    }

    /// Reads a key file.
    pub fn open(path: &Path) -> Result<KeyFile, DkimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DkimError::Key(format!("{}: {e}", path.display())))?;
        KeyFile::parse(&text)
    }

    /// Adds one record.
    pub fn insert(&mut self, name: &str, record: &str) {
        self.records
            .insert(name.to_ascii_lowercase(), record.to_owned());
    }
}

impl KeyLookup for KeyFile {
    fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        self.records
            .get(&name.trim_end_matches('.').to_ascii_lowercase())
            .map(|r| vec![r.clone()])
            .ok_or(LookupError::NotFound)
    }
}

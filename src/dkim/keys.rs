//! DKIM keys: private keys from PEM files (PKCS#8 for both algorithms, PKCS#1 RSA accepted),
//! public keys from `v=DKIM1; k=...; p=...` records, and where records come from.
//!
//! RSA goes through `aws-lc-rs` (AWS-LC, whose private-key operation is constant-time with
//! blinding: no Marvin-style timing leak, RUSTSEC-2023-0071, as in the `rsa` crate); Ed25519
//! through `ed25519-dalek`.

use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use base64::Engine;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use pem_rfc7468::LineEnding;
use sha2::{Digest, Sha256};

use super::error::clip;
use super::{DkimError, EncodeError, KeyError, KeyFileError, Tags};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The smallest RSA key accepted for verifying (RFC 8301).
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
    /// RSA with PKCS#1 v1.5 signatures over SHA-256 (AWS-LC).
    Rsa(Box<lc::RsaKeyPair>),
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
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SigningKey::Ed25519(Box::new(k)));
        }
        let (label, der) =
            pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|_| KeyError::NotPem)?;
        let key = match label {
            "PRIVATE KEY" => lc::RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => lc::RsaKeyPair::from_der(&der),
            _ => return Err(KeyError::NotPem.into()),
        };
        // AWS-LC refuses RSA keys under 2048 bits itself; say why in our words.
        let key = key.map_err(|e| {
            let bits = rsa_private_modulus_bits(&der).unwrap_or(0);
            if bits > 0 && bits < MIN_RSA_SIGN_BITS {
                KeyError::TooSmall {
                    bits,
                    min: MIN_RSA_SIGN_BITS,
                }
            } else {
                KeyError::BadRsaKey(e)
            }
        })?;
        if key.public_modulus_len() * 8 < MIN_RSA_SIGN_BITS {
            return Err(KeyError::TooSmall {
                bits: key.public_modulus_len() * 8,
                min: MIN_RSA_SIGN_BITS,
            }
            .into());
        }
        Ok(SigningKey::Rsa(Box::new(key)))
    }

    /// Reads a PEM key file. Errors name the file: [`DkimError::Io`], or
    /// [`DkimError::File`] around what [`from_pem`](SigningKey::from_pem) says.
    pub fn from_file(path: &Path) -> Result<SigningKey, DkimError> {
        read_named(path, SigningKey::from_pem)
    }

    /// A new key: Ed25519, or RSA of `rsa_bits` (at least 2048).
    pub fn generate(kind: KeyKind, rsa_bits: usize) -> Result<SigningKey, DkimError> {
        match kind {
            KeyKind::Ed25519 => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(KeyError::Random)?;
                Ok(SigningKey::Ed25519(Box::new(
                    ed25519_dalek::SigningKey::from_bytes(&seed),
                )))
            }
            KeyKind::Rsa => {
                if rsa_bits < MIN_RSA_SIGN_BITS {
                    return Err(KeyError::GenerateTooSmall {
                        bits: rsa_bits,
                        min: MIN_RSA_SIGN_BITS,
                    }
                    .into());
                }
                let size = match rsa_bits {
                    2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                    8192 => aws_lc_rs::rsa::KeySize::Rsa8192,
                    bits => return Err(KeyError::UnsupportedSize { bits }.into()),
                };
                let k = lc::RsaKeyPair::generate(size).map_err(KeyError::Generate)?;
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
                let mut sig = vec![0u8; k.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                k.sign(&lc::RSA_PKCS1_SHA256, &rng, data, &mut sig)
                    .map_err(DkimError::Sign)?;
                Ok(sig)
            }
            SigningKey::Ed25519(k) => Ok(k.sign(&Sha256::digest(data)).to_bytes().to_vec()),
        }
    }

    /// The DNS TXT record that publishes the public key: `v=DKIM1; k=...; p=...`.
    pub fn public_record(&self) -> Result<String, DkimError> {
        let (k, p) = match self {
            SigningKey::Rsa(k) => {
                let der = AsDer::<PublicKeyX509Der>::as_der(k.public_key())
                    .map_err(|e| KeyError::Encode(EncodeError::Der(e)))?;
                ("rsa", B64.encode(der.as_ref()))
            }
            SigningKey::Ed25519(k) => ("ed25519", B64.encode(k.verifying_key().as_bytes())),
        };
        Ok(format!("v=DKIM1; k={k}; p={p}"))
    }

    /// The key as a PKCS#8 PEM file, as `openssl genpkey` writes it.
    pub fn to_pkcs8_pem(&self) -> Result<String, DkimError> {
        let pem = match self {
            SigningKey::Rsa(k) => {
                let der = AsDer::<Pkcs8V1Der>::as_der(k.as_ref())
                    .map_err(|e| KeyError::Encode(EncodeError::Der(e)))?;
                return pem_rfc7468::encode_string("PRIVATE KEY", LineEnding::LF, der.as_ref())
                    .map_err(|e| KeyError::Encode(EncodeError::Pem(e)).into());
            }
            // Version 1 PKCS#8 without the public key, exactly as `openssl genpkey` writes it
            // (OpenSSL 3.0 refuses the version 2 form).
            SigningKey::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| KeyError::Encode(EncodeError::Pkcs8(e)))?;
        Ok(pem.to_string())
    }
}

/// A public key from a DKIM key record.
#[derive(Debug)]
pub enum PublicKey {
    /// RSA: the PKCS#1 `RSAPublicKey` DER, and its modulus size in bits.
    Rsa(Vec<u8>, usize),
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
            return Err(KeyError::BadVersion {
                version: clip(v, 20),
            }
            .into());
        }
        let kind = match tags.get("k").unwrap_or("rsa") {
            "rsa" => KeyKind::Rsa,
            "ed25519" => KeyKind::Ed25519,
            other => {
                return Err(KeyError::UnknownType {
                    kind: clip(other, 20),
                }
                .into());
            }
        };
        if kind != want {
            return Err(KeyError::TypeMismatch {
                record: kind,
                signature: want,
            }
            .into());
        }
        let p = tags.base64("p")?;
        if p.is_empty() {
            return Err(KeyError::Revoked.into());
        }
        match kind {
            KeyKind::Rsa => {
                // SubjectPublicKeyInfo (what keygen and openssl publish) or bare PKCS#1.
                let pkcs1 = spki_rsa_key(&p).unwrap_or_else(|| p.clone());
                let bits = rsa_modulus_bits(&pkcs1).ok_or(KeyError::NotRsaPublicKey)?;
                if bits < MIN_RSA_VERIFY_BITS {
                    return Err(KeyError::TooWeak {
                        bits,
                        min: MIN_RSA_VERIFY_BITS,
                    }
                    .into());
                }
                Ok(PublicKey::Rsa(pkcs1, bits))
            }
            KeyKind::Ed25519 => {
                let bytes: [u8; 32] = p
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::Ed25519Length { len: p.len() })?;
                let k = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(KeyError::BadEd25519Key)?;
                Ok(PublicKey::Ed25519(Box::new(k)))
            }
        }
    }

    /// Whether `sig` is this key's signature of `data`.
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(der, bits) => {
                // RFC 8301: keys of 1024 bits and more verify; AWS-LC's legacy profile is the one
                // that accepts 1024 to 2047.
                let alg = if *bits >= 2048 {
                    &lc::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &lc::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
                };
                lc::UnparsedPublicKey::new(alg, der)
                    .verify(data, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(&Sha256::digest(data), &s).is_ok()),
        }
    }
}

/// One DER element at the start of `der`: (tag, contents, the rest after it).
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, &b| (l << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The bits of a DER INTEGER's magnitude.
fn integer_bits(int: &[u8]) -> Option<usize> {
    let first = int.iter().position(|&b| b != 0)?;
    Some((int.len() - first) * 8 - int[first].leading_zeros() as usize)
}

/// The PKCS#1 `RSAPublicKey` inside a SubjectPublicKeyInfo whose algorithm is rsaEncryption.
fn spki_rsa_key(der: &[u8]) -> Option<Vec<u8>> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (0x30, spki, _) = der_element(der)? else {
        return None;
    };
    let (0x30, alg, rest) = der_element(spki)? else {
        return None;
    };
    let (0x06, oid, _) = der_element(alg)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (0x03, bits, _) = der_element(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    Some(key.to_vec())
}

/// The modulus size of a PKCS#1 `RSAPublicKey` (SEQUENCE { modulus, publicExponent }).
fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    let (0x30, seq, _) = der_element(pkcs1)? else {
        return None;
    };
    let (0x02, n, rest) = der_element(seq)? else {
        return None;
    };
    let (0x02, _e, _) = der_element(rest)? else {
        return None;
    };
    integer_bits(n)
}

/// The modulus size of an RSA private key, PKCS#8 or PKCS#1, for error messages.
fn rsa_private_modulus_bits(der: &[u8]) -> Option<usize> {
    let (0x30, seq, _) = der_element(der)? else {
        return None;
    };
    let (0x02, _version, rest) = der_element(seq)? else {
        return None;
    };
    match der_element(rest)? {
        // PKCS#1: version, modulus, ...
        (0x02, n, _) => integer_bits(n),
        // PKCS#8: version, algorithm, OCTET STRING { RSAPrivateKey }
        (0x30, _, rest) => {
            let (0x04, inner, _) = der_element(rest)? else {
                return None;
            };
            rsa_private_modulus_bits(inner)
        }
        _ => None,
    }
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
    /// Parses the file's text. A bad line is a [`DkimError::KeyFileLine`] with its number.
    pub fn parse(text: &str) -> Result<KeyFile, DkimError> {
        let mut records = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |source| DkimError::KeyFileLine {
                line: i + 1,
                source,
            };
            let Some((name, record)) = line.split_once(char::is_whitespace) else {
                return Err(bad(KeyFileError::NoRecord));
            };
            let record = record.trim().trim_matches('"');
            if !name.to_ascii_lowercase().contains("._domainkey.") {
                return Err(bad(KeyFileError::BadName {
                    name: clip(name, 60),
                }));
            }
            match Tags::parse(record) {
                Ok(t) if t.get("p").is_some() => {}
                Ok(_) => return Err(bad(KeyFileError::NoKey)),
                Err(e) => return Err(bad(KeyFileError::NotTagList(e))),
            }
            records.insert(
                name.trim_end_matches('.').to_ascii_lowercase(),
                record.to_owned(),
            );
        }
        Ok(KeyFile { records })
    }

    /// Reads a key file. Errors name the file: [`DkimError::Io`], or [`DkimError::File`]
    /// around what [`parse`](KeyFile::parse) says.
    pub fn open(path: &Path) -> Result<KeyFile, DkimError> {
        read_named(path, KeyFile::parse)
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

/// Reads the text file at `path` and parses it with `parse`; errors name the file
/// ([`DkimError::Io`], or [`DkimError::File`] around what `parse` says).
fn read_named<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, DkimError>,
) -> Result<T, DkimError> {
    let text = std::fs::read_to_string(path).map_err(|source| DkimError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|e| DkimError::File {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1024-bit RSA key (`openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024`), made
    /// for this test: too small to sign with.
    const RSA_1024_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBALOU/heNhikAAGQv
/iiRAduomGsymhQ+vnpuXUOXyt0rmkN2Jna9xMDPMv1nS9y8M7fFe4fkGhy7yAfm
UyZJVpM1u94iuRba731M48JYbr2kGMLrqp5GT7xK2qSCx/Db/Thk+DDJ5fDbSPDD
pjJ4f1XKgZXc39R3x/Nd+DfBZh41AgMBAAECgYANUebK3m9uCRb+V2T1o1PM9CNi
CB3PlJvSPu9h/RdJ8lr91/ygYBEA8B1rGEdTNw5q+hXgjXW2XeNHWrkeJOBr6Qib
Q7Llsnv3LSjvXnN76pPQvznKSHHbyWj/OUv+8MApxbgTeweNlHxk+ixUfDEHnDD3
fpijqdVBdZ8whMIEHQJBANeYSTelJqYdjauvqrSjKpiimMI++6sDi6LBkgtqkHMk
9/1z6K09ARhMLzWLRFmScskEQIdn1u2uGE6z0anwEAcCQQDVPOW91Lh3uJ9c8ese
TK/0QDg4jzWUZCPYWX/i/59ASbcQDLlIDaab9vBKd+Z1AQPNy7bJDyzcDPAGwQwX
btjjAkB2LLg9cx47QcnNCO5GM4X+wml/V+y1Ma1Rmk8GSPRC2UnBuM4aX20BN4lN
DTh67KZUfysrzYRnJd2XDkPnpXnzAkEAqfhbrF/2FkAMj1qqLkG0cz4JUlQcwka8
J8TXYoqdVvIrQFjUC3IOHv3L9Z/zC8qeTJkX/tXgzRpm7QtN5xPNPwJAUZK7xqbZ
/M/6nKWAn9CdgyMV0VMkw9weXBQpjJa7e6H+6mXqD/Fa+QpjBKh3tGfiq7YENLZs
RwInTL9pHB+zkQ==
-----END PRIVATE KEY-----
";

    #[test]
    fn private_keys_are_refused_with_a_typed_reason() {
        let err = SigningKey::from_pem(RSA_1024_PEM).unwrap_err();
        assert!(
            matches!(
                err,
                DkimError::Key(KeyError::TooSmall {
                    bits: 1024,
                    min: MIN_RSA_SIGN_BITS
                })
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "key: RSA key of 1024 bits; at least 2048 are required"
        );
        assert!(matches!(
            SigningKey::from_pem("junk"),
            Err(DkimError::Key(KeyError::NotPem))
        ));
        assert!(matches!(
            SigningKey::generate(KeyKind::Rsa, 1024),
            Err(DkimError::Key(KeyError::GenerateTooSmall {
                bits: 1024,
                ..
            }))
        ));
        assert!(matches!(
            SigningKey::generate(KeyKind::Rsa, 5000),
            Err(DkimError::Key(KeyError::UnsupportedSize { bits: 5000 }))
        ));
    }

    #[test]
    fn key_files_name_the_file_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let pem = dir.join("small.pem");
        std::fs::write(&pem, RSA_1024_PEM).unwrap();
        let err = SigningKey::from_file(&pem).unwrap_err();
        let DkimError::File { path, source } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, &pem);
        assert!(matches!(
            **source,
            DkimError::Key(KeyError::TooSmall { bits: 1024, .. })
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: key: RSA key of 1024 bits; at least 2048 are required",
                pem.display()
            )
        );
        let missing = dir.join("missing.pem");
        let err = SigningKey::from_file(&missing).unwrap_err();
        assert!(
            matches!(&err, DkimError::Io { path, source }
                if path == &missing && source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        let keys = dir.join("keys.txt");
        std::fs::write(&keys, "# keys\n\ns._domainkey.example.org v=DKIM1; 1a=2\n").unwrap();
        let err = KeyFile::open(&keys).unwrap_err();
        let DkimError::File { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(
            matches!(
                &**source,
                DkimError::KeyFileLine {
                    line: 3,
                    source: KeyFileError::NotTagList(crate::dkim::SyntaxError::BadTagName { name })
                } if name == "1a"
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: line 3: the record is not a tag list: syntax: bad tag name \"1a\" \
                 (expected SELECTOR._domainkey.DOMAIN v=DKIM1; k=...; p=...)",
                keys.display()
            )
        );
    }

    #[test]
    fn key_records_are_refused_with_a_typed_reason() {
        let key = |record: &str, want| PublicKey::from_record(record, want).unwrap_err();
        let ed = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        assert!(PublicKey::from_record(ed, KeyKind::Ed25519).is_ok());
        assert!(matches!(
            key("v=DKIM1; k=foo; p=AAAA", KeyKind::Rsa),
            DkimError::Key(KeyError::UnknownType { kind }) if kind == "foo"
        ));
        assert!(matches!(
            key(ed, KeyKind::Rsa),
            DkimError::Key(KeyError::TypeMismatch {
                record: KeyKind::Ed25519,
                signature: KeyKind::Rsa
            })
        ));
        assert!(matches!(
            key("v=DKIM2; p=AAAA", KeyKind::Rsa),
            DkimError::Key(KeyError::BadVersion { version }) if version == "DKIM2"
        ));
        assert!(matches!(
            key("v=DKIM1; p=", KeyKind::Rsa),
            DkimError::Key(KeyError::Revoked)
        ));
        assert!(matches!(
            key("v=DKIM1; p=AAAA", KeyKind::Rsa),
            DkimError::Key(KeyError::NotRsaPublicKey)
        ));
        assert!(matches!(
            key("k=ed25519; p=AAAA", KeyKind::Ed25519),
            DkimError::Key(KeyError::Ed25519Length { len: 3 })
        ));
        assert!(matches!(
            key("v=DKIM1; p=AAAA; p=AAAA", KeyKind::Rsa),
            DkimError::Syntax(crate::dkim::SyntaxError::RepeatedTag { tag }) if tag == "p"
        ));
        assert!(matches!(
            key("v=DKIM1; k=rsa", KeyKind::Rsa),
            DkimError::Syntax(crate::dkim::SyntaxError::MissingTag { tag }) if tag == "p"
        ));
    }
}

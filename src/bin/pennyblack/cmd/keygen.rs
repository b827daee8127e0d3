//! `pennyblack keygen`: a DKIM key in PEM (PKCS#8), and its record in the --keys file format.

use std::io::Write;

use anyhow::{Context, Result, bail};
use pennyblack::dkim::SigningKey;
use pennyblack::dkim::keys::KeyKind;

use crate::Exit;
use crate::args::{KeyAlgArg, KeygenArgs};

pub fn run(a: KeygenArgs) -> Result<Exit> {
    if a.out.exists() {
        bail!("{} exists; not overwriting a key", a.out.display());
    }
    let kind = match a.alg {
        KeyAlgArg::Ed25519 => KeyKind::Ed25519,
        KeyAlgArg::Rsa => KeyKind::Rsa,
    };
    let key = SigningKey::generate(kind, a.rsa_bits)?;
    let record = key.public_record()?;
    let pem = key.to_pkcs8_pem()?;
    // Write beside the target with owner-only permissions, then rename: never half a key file.
    let tmp = a.out.with_extension("pem.tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    println!("{}._domainkey.{} {record}", a.selector, a.domain);
    // Ready for a zone file: TXT strings hold at most 255 octets each (an RSA record is longer).
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    eprintln!(
        "publish in DNS (zone file):\n{}._domainkey.{}. IN TXT ( {} )",
        a.selector,
        a.domain,
        strings.join(" ")
    );
    Ok(Exit::Ok)
}

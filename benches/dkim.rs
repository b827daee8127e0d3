//! DKIM signing and verifying: one signature over a small message's canonical header data, per
//! key type. The RSA figures are what the constant-time implementation costs against the one
//! before it (see docs/SECURITY.md). Run with `cargo bench --bench dkim`.

use criterion::{Criterion, criterion_group, criterion_main};
use pennyblack::dkim::SigningKey;
use pennyblack::dkim::keys::{KeyKind, PublicKey};

fn keys(c: &mut Criterion) {
    let data = b"from:Alice <alice@example.org>\r\nto:bob@example.net\r\nsubject:hello\r\n\
        dkim-signature:v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1; h=from:to; bh=x; b=";
    for (name, kind) in [("rsa2048", KeyKind::Rsa), ("ed25519", KeyKind::Ed25519)] {
        let key = SigningKey::generate(kind, 2048).unwrap();
        let record = key.public_record().unwrap();
        let public = PublicKey::from_record(&record, kind).unwrap();
        let sig = key.sign(data).unwrap();
        assert!(public.verify(data, &sig));
        let mut g = c.benchmark_group(format!("dkim/{name}"));
        g.bench_function("sign", |b| {
            b.iter(|| key.sign(std::hint::black_box(data)).unwrap())
        });
        g.bench_function("verify", |b| {
            b.iter(|| public.verify(std::hint::black_box(data), &sig))
        });
        g.finish();
    }
}

criterion_group!(benches, keys);
criterion_main!(benches);

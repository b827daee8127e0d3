//! Postage tickets: what a receiver pays to check one offline (parse, then the issuer's Ed25519
//! signature), and what the ticket server pays to check a proof before it cancels one. Run with
//! `cargo bench --bench ticket`.

use criterion::{Criterion, criterion_group, criterion_main};
use pennyblack::ticket::{Carried, Issuer, Ticket, TrustedKeys};

fn tickets(c: &mut Criterion) {
    let issuer = Issuer::new("tickets.example.org", "k1", [1; 32], [2; 32]).unwrap();
    let mut trusted = TrustedKeys::new();
    trusted
        .add_record("tickets.example.org", &issuer.key_record())
        .unwrap();
    let (ticket, secret) = issuer.issue([9; 16], 4_000_000_000);
    let carried = Carried::new(
        ticket,
        &secret,
        "bob@example.net",
        "_AAAAAAAAAAAAAAAAAAAAAQ",
    )
    .unwrap();
    let text = carried.to_string();
    let mut g = c.benchmark_group("ticket");
    g.bench_function("verify offline (parse + signature)", |b| {
        b.iter(|| {
            let c = Carried::parse(std::hint::black_box(&text)).unwrap();
            c.ticket.verify(&trusted, 1_900_000_000).unwrap();
        })
    });
    g.bench_function("parse only", |b| {
        b.iter(|| Ticket::parse(std::hint::black_box(&carried.ticket.to_string())).unwrap())
    });
    g.bench_function("server: derive secret + check proof", |b| {
        b.iter(|| {
            let s = issuer.ticket_secret(&carried.ticket.serial);
            carried
                .check_proof(
                    &s,
                    std::hint::black_box("bob@example.net"),
                    "_AAAAAAAAAAAAAAAAAAAAAQ",
                )
                .unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, tickets);
criterion_main!(benches);

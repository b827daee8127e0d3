//! What one message can make a receiver spend: the worst message that fits the parser and an MTA
//! (a header of about 1 MiB of covered fields, Postfix's default limit of 1,001 recipients,
//! one bound stamp each, half under the 64 version-1 masks in turn and half version 2), judged
//! by the reception engine as the milter and `check` judge it (DKIM, stamps, bindings), against
//! the same message with unbound stamps, and against what binding checks cost per stamp when
//! nothing is kept (as earlier builds did: each stamp re-read and re-canonicalized the header).
//! Run with `cargo bench --bench reception`; figures in docs/PERFORMANCE.md.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pennyblack::bind::{BindVersion, Binding, BindingSource};
use pennyblack::dkim::KeyFile;
use pennyblack::mail::Message;
use pennyblack::postage::BindingView;
use pennyblack::reception::{Content, Envelope, Inbound, judge};
use pennyblack::{MintRequest, Minter, Policy};

const RECIPIENTS: usize = 1001;

/// The message's bytes (stamps on top), its header without the stamps, and the recipients.
fn worst(bound: bool) -> (Vec<u8>, Vec<String>) {
    let rcpts: Vec<String> = (0..RECIPIENTS)
        .map(|i| format!("r{i:04}@example.net"))
        .collect();
    let mut head = String::from("From: alice@example.org\r\nSubject: s\r\n");
    let pad = "x".repeat(880);
    for i in 0..1000 {
        head.push_str(&format!("To: \"{pad}\" <t{i:04}@example.net>\r\n"));
    }
    let body = "Hello.\r\n".repeat(1000);
    let plain = Message::parse(format!("{head}\r\n{body}").into_bytes()).unwrap();
    let view = BindingView::new(&plain);
    let minter = Minter::new().threads(1);
    let mut stamps = String::new();
    for (i, r) in rcpts.iter().enumerate() {
        let ext = match (bound, i % 2) {
            (false, _) => String::new(),
            (true, 0) => view
                .binding(BindVersion::V1, (i / 2 % 64) as u32)
                .add_to_ext(""),
            (true, _) => Binding::of(&view).add_to_ext(""),
        };
        let stamp = minter
            .mint(&MintRequest::hashcash(r.as_str(), 0).ext(ext))
            .unwrap();
        stamps.push_str(&format!("X-Hashcash: {stamp}\r\n"));
    }
    (format!("{stamps}{head}\r\n{body}").into_bytes(), rcpts)
}

fn receiver() -> Inbound {
    let mut inb = Inbound::new(
        "mx.example.net",
        Arc::new(KeyFile::default()),
        Policy {
            max_message_work: Duration::from_secs(3600),
            ..Policy::default()
        },
    );
    inb.reject_below = Some(1);
    inb
}

fn worst_message(c: &mut Criterion) {
    let inb = receiver();
    let mut g = c.benchmark_group("reception/worst-message");
    g.sample_size(10);
    for (name, bound) in [("bound", true), ("unbound", false)] {
        let (raw, rcpts) = worst(bound);
        let env = Envelope {
            sender: "alice@example.org".into(),
            recipients: rcpts,
            ..Envelope::default()
        };
        let d = judge(&inb, &env, Content::Message(raw.clone()));
        let v = &d.findings.as_ref().unwrap().verdict;
        assert_eq!(v.stamps.len(), RECIPIENTS);
        assert!(v.stamps.iter().all(|s| s.verdict.is_valid()));
        g.bench_function(name, |b| {
            b.iter(|| judge(&inb, &env, Content::Message(raw.clone())))
        });
    }
    // Every stamp a replay (spent by an earlier delivery of the same message), on an MTA that
    // lets the filter remove recipients: each recipient's removal is weighed once.
    let (raw, rcpts) = worst(true);
    let mut inb = receiver();
    inb.store = Some(Arc::new(pennyblack::MemoryStore::new()));
    let env = Envelope {
        sender: "alice@example.org".into(),
        recipients: rcpts,
        can_remove_recipients: true,
        ..Envelope::default()
    };
    inb.reject_below = None;
    judge(&inb, &env, Content::Message(raw.clone()));
    // 0 bits: the 0-bit stamps pay, so the store is asked, and finds every one spent.
    inb.reject_below = Some(0);
    g.bench_function("bound-replayed", |b| {
        b.iter(|| judge(&inb, &env, Content::Message(raw.clone())))
    });
    g.finish();
    // What one stamp's binding cost when nothing was kept between stamps: earlier builds paid
    // this once per stamp (times 1,001 here).
    let (raw, _) = worst(false);
    let msg = Message::parse(raw).unwrap();
    let mut g = c.benchmark_group("reception/one-binding-uncached");
    g.sample_size(10);
    g.bench_function("v1-all-fields", |b| {
        b.iter(|| {
            // A fresh view each time: the header canonicalized again, as for every stamp before.
            let view = BindingView::new(&msg);
            view.binding(BindVersion::V1, 63)
        })
    });
    g.finish();
}

criterion_group!(benches, worst_message);
criterion_main!(benches);

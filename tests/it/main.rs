//! Integration tests, one binary (see DESIGN.md). Data and its provenance live in `tests/data/`.

mod attacks;
mod cli;
mod dkim;
mod hostile;
mod interop;
mod kat;
mod milter;
mod minting;
mod redis;
mod roundtrip;
mod spent;
mod support;
mod verdicts;

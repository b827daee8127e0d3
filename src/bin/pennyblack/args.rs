//! Command-line arguments: plain data, parsed by clap. Behaviour lives in `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Proof-of-work e-mail postage stamps ("Penny Black" / hashcash).
///
/// A sender mints a stamp per recipient at send time; a receiver verifies it with one hash per
/// part and refuses replays. Version 1 stamps (`--alg sha1`) are exactly those of the classic
/// `hashcash` tool; version 2 stamps use SHA-256 or BLAKE3 in several parts for a predictable
/// mint time.
///
/// Exit codes: 0 valid, 1 invalid, 2 valid but not fully checked, 3 error (bad usage, I/O).
#[derive(Debug, Parser)]
#[command(
    name = "pennyblack",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mint one stamp per RESOURCE and print them, one per line.
    #[command(after_help = MINT_EXAMPLES)]
    Mint(MintArgs),
    /// Verify stamps from the arguments, or from standard input one per line.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
}

const MINT_EXAMPLES: &str = "\
Examples:
  pennyblack mint bob@example.org                      # 2:sha256:16:16:... (20 bits in 16 parts)
  pennyblack mint --alg sha1 --bits 20 bob@example.org  # hashcash version 1, checks with `hashcash -c`
  pennyblack mint --header --alg blake3 a@x.org b@y.org # X-Hashcash: lines for two recipients
  pennyblack mint --bits 24 --deadline 10s bob@example.org";

const VERIFY_EXAMPLES: &str = "\
Examples:
  pennyblack verify --bits 20 -r bob@example.org '1:20:261127:bob@example.org::...'
  grep -i '^X-Hashcash:' message.eml | pennyblack verify --bits 20 -r '*@example.org'
  pennyblack verify --no-spent --json --bits 20 -r bob@example.org < stamps.txt

Exit status: 0 all valid and fully checked; 1 any invalid; 2 all valid but not fully checked
(no --bits, no --resource, or --no-spent); 3 error.";

/// Hash algorithm, which also picks the stamp version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgArg {
    /// SHA-1: hashcash version 1 stamps, one part.
    Sha1,
    /// SHA-256: version 2 stamps.
    Sha256,
    /// BLAKE3: version 2 stamps.
    Blake3,
}

/// Minting backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The fastest backend this CPU supports.
    Auto,
    /// The hash crates with a precomputed midstate; runs everywhere.
    Portable,
}

/// `pennyblack mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// Resources to stamp, usually recipient addresses (no ':' or white space).
    #[arg(required = true, value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Total work in bits. With K parts each part gets ceil(BITS - log2 K) bits.
    #[arg(short, long, default_value_t = 20)]
    pub bits: u32,
    /// Hash algorithm: sha1 mints hashcash version 1 stamps, sha256 and blake3 version 2.
    #[arg(short, long, value_enum, default_value_t = AlgArg::Sha256)]
    pub alg: AlgArg,
    /// Number of parts, 1 to 64 [default: 16; 1 for sha1]. More parts: same mean, steadier time.
    #[arg(short, long)]
    pub parts: Option<u32>,
    /// Extension field, `name1=v1,v2;name2`.
    #[arg(short = 'x', long, default_value = "")]
    pub ext: String,
    /// Stamp date instead of now: UTC YYMMDD, YYMMDDhhmm or YYMMDDhhmmss.
    #[arg(long, value_name = "DATE", conflicts_with = "date_width")]
    pub date: Option<String>,
    /// Digits of the date taken from the clock: 6 (YYMMDD), 10 or 12.
    #[arg(short = 'z', long, default_value_t = 6, value_parser = parse_width)]
    pub date_width: usize,
    /// Worker threads [default: all cores].
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Minting backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Give up on a stamp that takes longer than this (e.g. 30s, 2m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub deadline: Option<std::time::Duration>,
    /// Print `X-Hashcash: STAMP` header lines instead of bare stamps.
    #[arg(short = 'X', long)]
    pub header: bool,
    /// No progress line on standard error.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `pennyblack verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Stamps to check; none, or `-`, reads standard input, one per line (`X-Hashcash:` allowed).
    #[arg(value_name = "STAMP")]
    pub stamps: Vec<String>,
    /// Least work accepted, in bits. Without it any honest claim passes (exit 2).
    #[arg(short, long)]
    pub bits: Option<u32>,
    /// Accepted resource; repeat for several. `*` and `?` are wildcards (`*@example.org`).
    /// Without it any resource passes (exit 2).
    #[arg(short, long = "resource", value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Match resources case-sensitively (default: ASCII case-insensitive, as hashcash).
    #[arg(short = 'C', long)]
    pub case_sensitive: bool,
    /// How long a stamp stays valid after its date (e.g. 28d, 12h); 0 means forever.
    #[arg(short = 'e', long, default_value = "28d", value_parser = parse_duration)]
    pub validity: std::time::Duration,
    /// Clock-skew allowance, both directions.
    #[arg(short, long, default_value = "2d", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// Spent-stamp database file [default: $XDG_DATA_HOME/pennyblack/spent.redb].
    #[arg(
        short,
        long,
        env = "PENNYBLACK_SPENT",
        value_name = "PATH",
        conflicts_with = "no_spent"
    )]
    pub spent: Option<PathBuf>,
    /// Do not record or refuse replays (valid stamps then exit 2: not fully checked).
    #[arg(long)]
    pub no_spent: bool,
    /// Check as if it were this time: RFC 3339 (2026-11-27T12:00:00Z) or Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<i64>,
    /// One JSON object per stamp (JSON Lines) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 28d, 12h, 90m, 0)"))
}

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("{e} (examples: 2026-11-27T12:00:00Z, 1795000000)"))
}

fn parse_width(s: &str) -> Result<usize, String> {
    match s {
        "6" | "10" | "12" => Ok(s.parse().expect("digits")),
        _ => Err("must be 6 (YYMMDD), 10 (YYMMDDhhmm) or 12 (YYMMDDhhmmss)".into()),
    }
}

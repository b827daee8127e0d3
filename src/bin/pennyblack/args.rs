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
    /// Stamp a message (from standard input) for every recipient and DKIM-sign it.
    #[command(after_help = STAMP_EXAMPLES)]
    Stamp(StampArgs),
    /// Check a message's DKIM signatures and stamps; print it with Authentication-Results.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(Box<CheckArgs>),
    /// Inspect or clean the spent-stamp database.
    #[command(subcommand)]
    Spent(SpentCommand),
    /// Make a DKIM signing key and print the DNS record to publish.
    #[command(after_help = KEYGEN_EXAMPLES)]
    Keygen(KeygenArgs),
    /// Measure hash rates per algorithm and backend, beside OpenSSL and hashcash.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    /// Pick the bits that hit a target mint time, with predicted p50/p90/p99 times.
    #[command(after_help = CALIBRATE_EXAMPLES)]
    Calibrate(CalibrateArgs),
    /// Check a client's SPF authorisation for a sender, as spfquery does (RFC 7208).
    #[cfg(feature = "dns")]
    #[command(after_help = SPF_EXAMPLES)]
    Spf(SpfArgs),
    /// Show the postage policy each domain publishes, and what this sender would mint for it.
    #[cfg(feature = "dns")]
    #[command(after_help = POLICY_EXAMPLES)]
    Policy(PostagePolicyArgs),
    /// Mail filter for Postfix and Sendmail: stamp and sign outbound, check inbound mail.
    #[cfg(feature = "milter")]
    #[command(after_help = MILTER_EXAMPLES)]
    Milter(Box<MilterArgs>),
    /// The ticket service (bankable postage): serve it, and administer it.
    #[cfg(feature = "ticketd")]
    #[command(subcommand)]
    Ticketd(TicketdCommand),
    /// Postage tickets from a ticket service: buy them into a wallet, see the balance, refund
    /// the tickets of a wanted message.
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// Answer a postage challenge (read on standard input): re-send the message it names with
    /// stamps that meet it.
    #[cfg(feature = "milter")]
    #[command(after_help = ANSWER_EXAMPLES)]
    Answer(Box<AnswerArgs>),
    /// Print the man page (roff) on standard output: `pennyblack man > pennyblack.1`.
    Man,
    /// Print shell completions: `pennyblack completions bash > /etc/bash_completion.d/pennyblack`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[cfg(feature = "milter")]
const MILTER_EXAMPLES: &str = "\
Examples:
  pennyblack milter --listen inet:127.0.0.1:8891 --bits 20 --alg sha1 \\
      --domain example.org --sign s1:/etc/pennyblack/s1.pem --originating ORIGINATING \\
      --spent /var/lib/pennyblack/spent.redb
  pennyblack milter --listen unix:/run/pennyblack/milter.sock --inbound-only --min-bits 20 \\
      --reject-below 20 --spent redis://10.0.0.5:6379/0

Outbound (stamped and signed): mail from a SASL-authenticated sender or an --internal client,
and with --originating only when it came through an MTA daemon so named (Postfix:
milter_macro_daemon_name). Everything else is checked: Authentication-Results fields are added
(dkim, spf, dmarc and x-hashcash; fields already claiming --authserv-id are removed), stamps for
the envelope recipients are marked spent, and with --reject-below a message is refused unless
every envelope recipient is paid by a valid stamp of its own (naming it, bound to the message);
with --dmarc-enforce one that fails DMARC under p=reject is refused, and burns no stamp.
A postage refusal is a 451 (--reject-with reject: 550) whose text states the requirement:
  451 4.7.1 postage required [v=PB1; bits=20; alg=sha256,blake3,sha1] for 1 of 2 recipient(s)
With --challenge-relay the authenticated sender of such a message also gets a DKIM-signed
challenge (RFC 3834 auto-reply, null sender) that `pennyblack answer` meets; --keep-sent DIR
keeps outbound messages so that they can be re-sent.
See the README for Postfix and Sendmail configuration.";

#[cfg(feature = "milter")]
const ANSWER_EXAMPLES: &str = "\
Examples:
  pennyblack answer --sent /var/lib/pennyblack/sent --smtp 127.0.0.1:25 \\
      --domain example.org --sign s1:/etc/pennyblack/s1.pem < challenge.eml

The outbound milter stamps no recipient again whom these stamps pay. The challenge names the
envelope sender it went to, and must be DKIM-signed by the domain of every recipient it names (or a parent of
it), covering its Postage-Challenge field; not expired; for a message kept in --sent (by
`milter --keep-sent` or `stamp --keep-sent`) to those recipients. Each (message, recipient) is
answered once: the message is re-sent as it was kept, with a Postage-Answer field (the
challenge), a stamp per challenged recipient meeting the requirement (never more than
--max-bits) and the --sign signatures, MAIL FROM the kept envelope sender, RCPT TO the
challenged recipients; it is recorded as answered once the server accepted it.
Exit status: 0 answered and re-sent; 1 ignored (not a challenge, not signed by the recipients'
domain, expired, unknown message or recipients, already answered); 2 refused: it asks more
than --max-bits (or an algorithm or memory this sender does not mint), reported; 3 error
(SMTP failure, I/O).";

const STAMP_EXAMPLES: &str = "\
Examples:
  pennyblack stamp < message.eml > stamped.eml                      # stamps for To and Cc
  pennyblack stamp --rcpt bcc@example.net --domain example.org \\
      --sign sel1:/etc/pennyblack/ed25519.pem --sign sel2:/etc/pennyblack/rsa.pem < m.eml
  pennyblack stamp --bits 20 --postage-policy on --max-bits 24 < m.eml  # what each domain asks

The output differs from the input only by the added header fields (X-Hashcash above the
message, DKIM-Signature above those). On any failure nothing is written and the exit status
is 3. With --postage-policy on each recipient's stamp meets its domain's policy (see `pennyblack
policy`) up to --max-bits; a policy over the cap, invalid, or not looked up in time gets the
configured cost and one warning line naming the domain (never a recipient).";

const CHECK_EXAMPLES: &str = "\
Examples:
  pennyblack check --min-bits 20 --rcpt me@example.net --keys keys.txt < message.eml
  pennyblack check --min-bits 20 --verdict-only --authserv-id mx.example.net \
      --rcpt \"$RECIPIENT\" < m.eml                         # from a delivery agent

Each --rcpt must be paid by a valid stamp naming it (literally, or in hidden form for a Bcc
recipient); stamps bound to another message's body are refused and not recorded as spent.
Keys come from the DNS (the system resolver, or --dns-server), or from --keys FILE with lines
`SELECTOR._domainkey.DOMAIN v=DKIM1; k=...; p=...`.
With --client-ip (and --helo, --mail-from: the SMTP session's facts) SPF and DMARC are checked
too, through the DNS even with --keys, and reported in the field that holds dkim=:
  pennyblack check --rcpt me@example.net --client-ip 192.0.2.1 --helo mx.example.org \
      --mail-from alice@example.org --verdict-only < m.eml
Exit status: 0 pass (every recipient paid, every check made, no failing signature); 1 fail;
2 none or neutral (a recipient without a stamp, or not fully checked: no --min-bits, no --rcpt
or --resource, --no-spent); 3 error.";

#[cfg(feature = "dns")]
const SPF_EXAMPLES: &str = "\
Examples:
  pennyblack spf --client-ip 192.0.2.1 --helo mx.example.org --mail-from alice@example.org
  pennyblack spf --client-ip 2001:db8::1 --helo mx.example.org --json   # null sender: HELO

Checks the MAIL FROM identity, or with an empty or absent --mail-from the HELO identity
(postmaster@HELO), through --dns-server or the system resolver. Limits: 10 DNS-querying
mechanisms, 2 void lookups, 20 s a check.
Exit status: 0 pass; 1 fail or softfail; 2 neutral, none, temperror or permerror; 3 error.";

#[cfg(feature = "dns")]
const POLICY_EXAMPLES: &str = "\
Examples:
  pennyblack policy example.net                     # what example.net asks of each stamp
  pennyblack policy --bits 20 --max-bits 24 example.net bob@example.com
  pennyblack policy --json --dns-server 127.0.0.1:5353 example.net

A receiving domain publishes its policy as one TXT record at _postage.DOMAIN:
  _postage.example.net.  IN TXT  \"v=PB1; bits=22; alg=sha256,blake3; parts=16\"
(the grammar is in docs/FORMAT.md). For each DOMAIN (or the domain of an ADDRESS) this prints
the record, the requirement in canonical form, its TTL, and what `stamp --postage-policy on`
and the milter would mint for a recipient there with the given --bits/--alg/--parts and
--max-bits: at least what is asked, never more than the cap; over the cap, or with no
algorithm in common, the configured cost (and a report). A malformed record, or several
v=PB1 records, count as none for senders. Other TXT records at the name are ignored.
--json: one object a line per domain: {domain, result (policy, none, invalid, several,
temperror), record, requirement, ttl, kept (seconds senders keep it: the TTL within 60 s
to 1 day), error, count, mint: {alg, bits, parts}, followed, deviation}.
Exit status: 0 every domain publishes a policy; 1 some domain publishes none; 2 some record is
invalid, or several; 3 error (a DNS failure, bad usage). The highest applies.";

const KEYGEN_EXAMPLES: &str = "\
Examples:
  pennyblack keygen --selector s1 --domain example.org --out s1.pem            # Ed25519
  pennyblack keygen --selector s2 --domain example.org --alg rsa --out s2.pem  # RSA 2048

Prints the record to publish as one line in the --keys file format:
  s1._domainkey.example.org v=DKIM1; k=ed25519; p=...";

const BENCH_EXAMPLES: &str = "\
Examples:
  pennyblack bench                          # every algorithm and backend, 1 core and all cores
  pennyblack bench --alg sha256 --seconds 5
  pennyblack bench --json --no-reference > rates.json
  pennyblack bench --alg argon2id --memory 64MiB    # Argon2id at 64 MiB, one pass, one lane

Rates are attempts (one hash of a candidate stamp, or one Argon2id evaluation) per second. The
reference rows run `openssl speed` (SHA-1/SHA-256 compressions per second on 16 KiB buffers) and
`hashcash -s` when those tools are installed, in the same run, so the ratios compare like with
like. Memory-hard rows have no instruction bound (\"of bound\" is empty) and their own table:
attempts per second, per thread, threads against one, memory each thread holds, and one attempt
in SHA-256 attempts (the fastest SHA-256 backend of the run, one thread each).

The verification table times `Verifier::check` (parse, policy, work; no spent store) on one
part and on a stamp of the default parts, single-threaded and, for a memory-hard stamp, with
the parallel verifier, beside the cost model the receiver budgets with (--max-work), an
estimate for one core made before any work: model/run under 1 on a one-thread row means the
model is too low on this machine.

--json: {\"rates\": [{alg, backend, threads, attempts, seconds, per_second, memory_per_thread
(bytes), bound_per_second, of_bound (null for memory-hard rows)}], \"verify\": [{alg, parts,
threads, checks, seconds, per_stamp_s, per_part_s, estimated_s}], \"attempt_cost\": [{alg,
sha256_backend, sha256_attempts}], \"clock_ghz\", \"verify_v1_per_second\", \"reference\":
{openssl_sha1, openssl_sha256, hashcash_sha1}}; alg is the stamp's algorithm field
(argon2id-m1024-t1-p1).";

const CALIBRATE_EXAMPLES: &str = "\
Examples:
  pennyblack calibrate --target 2s                  # default sha256, 16 parts
  pennyblack calibrate --target 500ms --alg sha1    # hashcash v1 stamps (one part)
  pennyblack calibrate --target 2s --parts 1 --plot one-part.svg
  pennyblack calibrate --target 2s -a argon2id --memory 8MiB   # 4 parts of Argon2id attempts

The chosen bits are the most whose mean mint time on this machine stays within the target.
One part: the time is exponential, p99 = 4.6 x mean. K parts: gamma of shape K, p99 near
1 + 2.33/sqrt(K) x mean. Below 12 bits a part (memory-hard stamps, whose attempts are slow)
the percentiles are the exact negative binomial's, and the minter's re-evaluation of each part
it keeps is counted. The receiver line is what checking the chosen stamp costs: one Argon2id
evaluation a part (the attempt time of one minting thread), against the receiver's cost model
and default policy.";

const MINT_EXAMPLES: &str = "\
Examples:
  pennyblack mint bob@example.org                      # 2:sha256:16:16:... (20 bits in 16 parts)
  pennyblack mint --alg sha1 --bits 20 bob@example.org  # hashcash version 1, checks with `hashcash -c`
  pennyblack mint --header --alg blake3 a@x.org b@y.org # X-Hashcash: lines for two recipients
  pennyblack mint --bits 24 --deadline 10s bob@example.org";

const VERIFY_EXAMPLES: &str = "\
Examples:
  pennyblack verify --min-bits 20 -r bob@example.org \"$(pennyblack mint --alg sha1 bob@example.org)\"
  grep -i '^X-Hashcash:' message.eml | pennyblack verify --min-bits 20 -r '*@example.org'
  pennyblack verify --no-spent --json --min-bits 20 -r bob@example.org < stamps.txt

Exit status: 0 all valid and fully checked; 1 any invalid; 2 all valid but not fully checked
(no --min-bits, no --resource, --no-spent, or a stamp bound to a message body, which only `check`
can compare); 3 error.";

/// Hash algorithm, which also picks the stamp version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgArg {
    /// SHA-1: hashcash version 1 stamps, one part.
    Sha1,
    /// SHA-256: version 2 stamps.
    Sha256,
    /// BLAKE3: version 2 stamps.
    Blake3,
    /// Argon2id (memory-hard): version 2 stamps; cost per attempt from --memory, --passes,
    /// --lanes.
    Argon2id,
    /// Equi-X (memory-hard, Tor's onion-service proof of work): version 2 stamps; needs a
    /// build with --features equix.
    Equix,
}

/// Minting backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The fastest backend this CPU supports.
    Auto,
    /// The hash crates with a precomputed midstate; runs everywhere.
    Portable,
    /// x86 SHA extensions (SHA-1, SHA-256).
    ShaNi,
    /// x86 AVX2, 8 lanes (SHA-256, BLAKE3).
    Avx2,
    /// x86 AVX-512, 16 lanes (BLAKE3).
    Avx512,
}

impl BackendArg {
    /// The library backend, or `None` for auto.
    pub fn backend(self) -> Option<pennyblack::Backend> {
        match self {
            BackendArg::Auto => None,
            BackendArg::Portable => Some(pennyblack::Backend::Portable),
            BackendArg::ShaNi => Some(pennyblack::Backend::ShaNi),
            BackendArg::Avx2 => Some(pennyblack::Backend::Avx2),
            BackendArg::Avx512 => Some(pennyblack::Backend::Avx512),
        }
    }
}

impl AlgArg {
    /// The library algorithm.
    pub fn alg(self) -> pennyblack::Algorithm {
        match self {
            AlgArg::Sha1 => pennyblack::Algorithm::Sha1,
            AlgArg::Sha256 => pennyblack::Algorithm::Sha256,
            AlgArg::Blake3 => pennyblack::Algorithm::Blake3,
            AlgArg::Argon2id => pennyblack::Algorithm::ARGON2ID,
            AlgArg::Equix => pennyblack::Algorithm::Equix,
        }
    }
}

/// The cost of one Argon2id attempt (with `--alg argon2id`).
#[derive(Debug, Clone, Copy, Args)]
pub struct Argon2Args {
    /// Argon2id memory per attempt: 1MiB, 256KiB, 64MiB (a bare number is KiB). Each minting
    /// thread holds this much; receivers refuse stamps outside their --min-memory/--max-memory
    /// [default: 1MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_kib)]
    pub memory: Option<u32>,
    /// Argon2id passes over the memory [default: 1].
    #[arg(long, value_name = "N")]
    pub passes: Option<u32>,
    /// Argon2id lanes (degree of parallelism inside one attempt) [default: 1].
    #[arg(long, value_name = "N")]
    pub lanes: Option<u32>,
}

impl Argon2Args {
    /// `alg` with these parameters: an error when they are given for another algorithm or
    /// break Argon2's rules.
    pub fn apply(&self, alg: pennyblack::Algorithm) -> anyhow::Result<pennyblack::Algorithm> {
        let Some(d) = alg.argon2() else {
            if self.given() {
                anyhow::bail!("--memory, --passes and --lanes apply to --alg argon2id only");
            }
            return Ok(alg);
        };
        let p = pennyblack::Argon2Params::new(
            self.memory.unwrap_or(d.memory_kib),
            self.passes.unwrap_or(d.passes),
            self.lanes.unwrap_or(d.lanes),
        )
        .map_err(|_| {
            anyhow::anyhow!(
                "Argon2id needs --memory of at least 8 KiB per lane and at most 4 GiB, --passes 1-999, --lanes 1-255"
            )
        })?;
        Ok(pennyblack::Algorithm::Argon2id(p))
    }
}

impl Argon2Args {
    /// Whether any of --memory, --passes, --lanes was given.
    pub fn given(&self) -> bool {
        self.memory.is_some() || self.passes.is_some() || self.lanes.is_some()
    }
}

/// A memory size in KiB: a number with K/KiB, M/MiB or G/GiB (binary units), or a bare number
/// of KiB.
pub fn parse_kib(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 1MiB, 256KiB or 64MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "k" | "kib" | "kb" => 1,
        "m" | "mib" | "mb" => 1 << 10,
        "g" | "gib" | "gb" => 1 << 20,
        _ => return Err(format!("{s:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    n.checked_mul(scale)
        .and_then(|k| u32::try_from(k).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `ALG=VALUE` of `--min-value`.
pub fn parse_min_value(s: &str) -> Result<(pennyblack::Algorithm, u32), String> {
    let (alg, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ALG=VALUE (e.g. argon2id=8, sha256=22)"))?;
    let alg: pennyblack::Algorithm = alg.parse().map_err(|_| {
        format!(
            "{alg:?} is not an algorithm ({})",
            pennyblack::Algorithm::NAMES.join(", ")
        )
    })?;
    let v: u32 = v
        .parse()
        .ok()
        .filter(|v| *v <= 262)
        .ok_or_else(|| format!("{v:?} is not a value in bits (0-262)"))?;
    Ok((alg, v))
}

/// `pennyblack spent ...`.
#[derive(Debug, Subcommand)]
pub enum SpentCommand {
    /// Count entries, expired entries and the file's size.
    Stats(SpentArgs),
    /// Remove every expired entry now (checks also purge a few at a time as they go).
    Purge(SpentArgs),
}

/// Options of `pennyblack spent`.
#[derive(Debug, Args)]
pub struct SpentArgs {
    /// Spent-stamp database file [default: $XDG_DATA_HOME/pennyblack/spent.redb].
    #[arg(
        short,
        long,
        env = "PENNYBLACK_SPENT",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub spent: Option<PathBuf>,
    /// As if it were this time: RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<i64>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `pennyblack stamp`.
#[derive(Debug, Args)]
pub struct StampArgs {
    /// What each stamp costs.
    #[command(flatten)]
    pub cost: CostArgs,
    /// Also stamp for this address (envelope or Bcc recipient: written in hidden form unless To
    /// or Cc names it); repeat for several.
    #[arg(long = "rcpt", value_name = "ADDR")]
    pub rcpts: Vec<String>,
    /// Only the --rcpt addresses, not To and Cc.
    #[arg(long)]
    pub only_rcpt: bool,
    /// DKIM signatures over the stamped message.
    #[command(flatten)]
    pub sign: SignArgs,
    /// Worker threads [default: all cores].
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Give up (exit 3, nothing written) when the stamps take longer than this (e.g. 30s).
    #[arg(long, value_parser = parse_timeout)]
    pub deadline: Option<std::time::Duration>,
    /// No progress line on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_size: usize,
    /// Follow the postage policies of the recipients' domains (TXT at _postage.DOMAIN): mint
    /// at least what each asks, never more than --max-bits; over it, or when the lookup fails,
    /// the configured cost, said on standard error. Off by default: `stamp` runs in scripts
    /// and offline, and asks the DNS nothing unless told to (the milter's default is on).
    #[arg(long, value_enum, default_value_t = OnOff::Off, value_name = "on|off", help_heading = "Postage policies")]
    pub postage_policy: OnOff,
    /// The most bits minted for a recipient domain's policy [default: 26, or --bits when higher].
    #[arg(long, value_name = "BITS", help_heading = "Postage policies")]
    pub max_bits: Option<u32>,
    /// Where policies are looked up.
    #[command(flatten, next_help_heading = "Postage policies")]
    pub dns: DnsArgs,
    /// Keep the message (as read, before its stamps) in this folder, so that a postage
    /// challenge can be answered (`pennyblack answer`); needs --mail-from.
    #[arg(long, value_name = "DIR", requires = "mail_from")]
    pub keep_sent: Option<PathBuf>,
    /// The envelope sender (MAIL FROM) the message is sent with, kept with it.
    #[arg(long, value_name = "ADDR", requires = "keep_sent")]
    pub mail_from: Option<String>,
    /// How long kept messages stay (pruned on each write; at most 10000 are kept, each at most
    /// 10 MiB).
    #[arg(long, default_value = "3d", value_parser = parse_duration, value_name = "DURATION")]
    pub keep_for: std::time::Duration,
    /// Pay each recipient the message's To or Cc names with a ticket from this wallet (made by
    /// `pennyblack ticket buy`), in an X-Postage-Ticket field the signatures cover; recipients
    /// without one (Bcc, or the wallet ran dry) get stamps.
    #[arg(
        long,
        value_name = "FILE",
        env = "PENNYBLACK_WALLET",
        help_heading = "Tickets"
    )]
    pub wallet: Option<PathBuf>,
}

/// The DNS server of commands that look up records only in the DNS (`stamp`, `policy`).
#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Ask this DNS server (IP:PORT) instead of the system's resolver.
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// How long to wait for a DNS answer: 5s, 500ms; a bare number is seconds.
    #[arg(long, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    pub dns_timeout: std::time::Duration,
}

/// `pennyblack policy`.
#[cfg(feature = "dns")]
#[derive(Debug, Args)]
pub struct PostagePolicyArgs {
    /// Recipient domains (example.net, not _postage.example.net), or addresses at them.
    #[arg(value_name = "DOMAIN", required = true)]
    pub domains: Vec<String>,
    /// The cost this sender mints when a domain asks less (as `stamp`'s and the milter's).
    #[command(flatten)]
    pub cost: CostArgs,
    /// The most bits this sender mints for a policy [default: 26, or --bits when higher].
    #[arg(long, value_name = "BITS")]
    pub max_bits: Option<u32>,
    /// Where policies are looked up.
    #[command(flatten)]
    pub dns: DnsArgs,
    /// One JSON object per domain, one a line.
    #[arg(long)]
    pub json: bool,
}

/// `pennyblack answer`.
#[cfg(feature = "milter")]
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The folder of kept messages (`milter --keep-sent`, `stamp --keep-sent`).
    #[arg(long, value_name = "DIR")]
    pub sent: PathBuf,
    /// The SMTP server (HOST:PORT, plain SMTP: a relay on loopback or the local network) that
    /// takes the re-sent message.
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp: String,
    /// The most bits minted for a challenge; one asking more is refused and reported (exit 2)
    /// [default: 26, or --bits when higher].
    #[arg(long, value_name = "BITS")]
    pub max_bits: Option<u32>,
    /// The stamps' cost when it is more than the challenge asks (what it asks, up to
    /// --max-bits, otherwise).
    #[command(flatten)]
    pub cost: CostArgs,
    /// DKIM signatures over the re-sent message.
    #[command(flatten)]
    pub sign: SignArgs,
    /// Where the challenge's DKIM keys come from.
    #[command(flatten)]
    pub key_source: KeySourceArgs,
    /// Worker threads [default: all cores].
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Give up (exit 3, nothing sent) when the stamps take longer than this.
    #[arg(long, value_parser = parse_timeout)]
    pub deadline: Option<std::time::Duration>,
    /// The name given in EHLO.
    #[arg(long, default_value = "localhost", value_name = "NAME")]
    pub helo: String,
    /// Time allowed for each SMTP command.
    #[arg(long, default_value = "60s", value_parser = parse_timeout, value_name = "DURATION")]
    pub smtp_timeout: std::time::Duration,
    /// As if it were this time (expiry of the challenge and of its signature): RFC 3339 or
    /// Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<i64>,
    /// Largest challenge message read, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_size: usize,
}

/// `pennyblack check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Least work accepted, in bits (as the milter's --min-bits; --bits, hashcash's spelling,
    /// works too). Without it any honest claim passes (neutral, exit 2).
    #[arg(short = 'b', long = "min-bits", alias = "bits", value_name = "BITS")]
    pub bits: Option<u32>,
    /// A recipient of this delivery (the envelope address, as the MTA gives it); repeat for
    /// several. Each must be paid by a valid stamp naming it. Matched as a mail address, never
    /// as a pattern (`*` is a plain character). Without --rcpt or --resource: exit 2.
    #[arg(long = "rcpt", value_name = "ADDR")]
    pub rcpts: Vec<String>,
    /// Also check stamps for this resource or pattern of your own (`*@example.org`); without
    /// --rcpt, one valid stamp matching it pays for the message. Repeat for several.
    #[arg(short, long = "resource", value_name = "PATTERN")]
    pub resources: Vec<String>,
    /// Refuse stamps that are not bound to this message's body (stamps minted by `stamp` and
    /// the milter are; hashcash's and `mint`'s are not).
    #[arg(long)]
    pub require_binding: bool,
    /// Refuse stamps whose binding leaves out a field the reader sees (Reply-To, Sender,
    /// In-Reply-To, References, the MIME fields...): stamps minted by releases before version-2
    /// bindings, under which those fields may be added in transit. Implies --require-binding.
    #[arg(long)]
    pub require_full_binding: bool,
    /// The authserv-id of the Authentication-Results fields (this host's name).
    #[arg(long, default_value = "localhost")]
    pub authserv_id: String,
    /// Judge as `milter --reject-below BITS` does: a recipient without a valid stamp (or ticket)
    /// of at least BITS makes the decision a refusal (the JSON's "decision"; exit status 1), and
    /// then no stamp is recorded as spent.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u32).range(1..=128), requires = "rcpts")]
    pub reject_below: Option<u32>,
    /// Where DKIM keys come from.
    #[command(flatten)]
    pub key_source: KeySourceArgs,
    /// SPF and DMARC.
    #[cfg(feature = "dns")]
    #[command(flatten)]
    pub sender: SenderArgs,
    /// Stamp validity, clock and spent store.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Honour a signature's l= body length (off: such a signature must cover the whole body).
    #[arg(long)]
    pub honour_l: bool,
    /// At most this many X-Hashcash fields are examined.
    #[arg(long, default_value_t = 64)]
    pub max_stamps: usize,
    /// At most this many DKIM signatures are verified.
    #[arg(long, default_value_t = 5)]
    pub max_signatures: usize,
    /// Print only the Authentication-Results fields, not the message.
    #[arg(long)]
    pub verdict_only: bool,
    /// Print a JSON verdict instead of the message.
    #[arg(long, conflicts_with = "verdict_only")]
    pub json: bool,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_size: usize,
    #[command(flatten)]
    pub tickets: TicketServiceArgs,
}

/// Where DKIM public keys come from, shared by `check` and `milter`.
#[derive(Debug, Args)]
pub struct KeySourceArgs {
    /// DKIM key records from a file of `SELECTOR._domainkey.DOMAIN RECORD` lines, instead of
    /// the DNS (SPF and DMARC records still come from the DNS).
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Ask this DNS server (IP:PORT) instead of the system's resolver: for DKIM keys (unless
    /// --keys), SPF and DMARC records, and the milter's postage policies.
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// How long to wait for a DNS answer: 5s, 500ms; a bare number is seconds.
    #[arg(long, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    pub dns_timeout: std::time::Duration,
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// The SMTP session facts of `check`, for SPF and DMARC.
#[cfg(feature = "dns")]
#[derive(Debug, Args)]
#[command(next_help_heading = "SPF and DMARC")]
pub struct SenderArgs {
    /// The connecting client's address: turns on SPF (RFC 7208) and DMARC (RFC 7489) checks,
    /// reported in the Authentication-Results field that holds dkim=.
    #[arg(long, value_name = "IP")]
    pub client_ip: Option<std::net::IpAddr>,
    /// The HELO/EHLO name the client gave (checked as the SPF identity when MAIL FROM is empty).
    #[arg(long, value_name = "NAME", requires = "client_ip")]
    pub helo: Option<String>,
    /// The envelope sender (MAIL FROM), without angle brackets; empty or absent for the null
    /// sender (bounces).
    #[arg(long, value_name = "ADDR", requires = "client_ip")]
    pub mail_from: Option<String>,
}

/// `pennyblack spf`.
#[cfg(feature = "dns")]
#[derive(Debug, Args)]
pub struct SpfArgs {
    /// The connecting client's address (IPv4 or IPv6).
    #[arg(long, value_name = "IP")]
    pub client_ip: std::net::IpAddr,
    /// The HELO/EHLO name the client gave.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub helo: String,
    /// The envelope sender (MAIL FROM); empty or absent: the HELO identity is checked.
    #[arg(long, value_name = "ADDR", default_value = "")]
    pub mail_from: String,
    /// This host's name, for the %{r} macro of explanations.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub receiver: String,
    /// Ask this DNS server (IP:PORT) instead of the system's resolver.
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// How long to wait for a DNS answer: 5s, 500ms; a bare number is seconds.
    #[arg(long, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    pub dns_timeout: std::time::Duration,
    /// Print one JSON object instead of the result line.
    #[arg(long)]
    pub json: bool,
}

/// DKIM signing options, shared by `stamp` and `milter`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Signing domain (d=), needed with --sign.
    #[arg(long, requires = "sign")]
    pub domain: Option<String>,
    /// SELECTOR:KEYFILE to sign with (PEM, RSA or Ed25519); repeat for one signature per key.
    #[arg(long, value_name = "SELECTOR:KEYFILE", requires = "domain")]
    pub sign: Vec<String>,
    /// Canonicalization, header/body.
    #[arg(long, default_value = "relaxed/relaxed")]
    pub canon: String,
}

/// `pennyblack milter`.
#[cfg(feature = "milter")]
#[derive(Debug, Args)]
pub struct MilterArgs {
    /// Where to listen: inet:HOST:PORT (also Sendmail's inet:PORT@HOST) or unix:PATH.
    #[arg(long, value_name = "inet:HOST:PORT|unix:PATH")]
    pub listen: pennyblack::milter::Listen,
    /// Never stamp: treat every message as inbound.
    #[arg(long, help_heading = "Which mail is outbound")]
    pub inbound_only: bool,
    /// Mail from clients in this network is outbound (CIDR, e.g. 192.0.2.0/24); repeat.
    /// Mail from SASL-authenticated senders is outbound too; nothing else is.
    #[arg(long, value_name = "CIDR", help_heading = "Which mail is outbound")]
    pub internal: Vec<ipnet::IpNet>,
    /// Only mail received by the MTA daemon of this name can be outbound (the {daemon_name}
    /// macro; Postfix: `-o milter_macro_daemon_name=ORIGINATING` on the submission service);
    /// repeat. It narrows the two rules above, never makes mail outbound by itself.
    #[arg(long, value_name = "NAME", help_heading = "Which mail is outbound")]
    pub originating: Vec<String>,
    /// What each outbound stamp costs (one stamp per envelope recipient, Bcc included).
    #[command(flatten, next_help_heading = "Outbound: stamps")]
    pub cost: CostArgs,
    /// Worker threads per message [default: all cores].
    #[arg(short = 't', long, help_heading = "Outbound: stamps")]
    pub threads: Option<usize>,
    /// At most this many messages are minted at once; the others wait.
    #[arg(long, default_value_t = 1, help_heading = "Outbound: stamps")]
    pub max_mints: usize,
    /// Time allowed for one message's stamps, waiting included; then the message passes
    /// unstamped (logged). Keep it below the MTA's milter content timeout (Postfix: 300s).
    #[arg(long, default_value = "60s", value_parser = parse_timeout, help_heading = "Outbound: stamps")]
    pub mint_timeout: std::time::Duration,
    /// Follow the postage policies of the recipients' domains (TXT at _postage.DOMAIN, through
    /// --dns-server or the system resolver, kept for their TTL): mint at least what each asks,
    /// never more than --max-bits. Over it, or when the lookup fails, the configured cost
    /// (logged). Lookups take at most a quarter of --mint-timeout.
    #[arg(long, value_enum, default_value_t = OnOff::On, value_name = "on|off", help_heading = "Outbound: stamps")]
    pub postage_policy: OnOff,
    /// The most bits minted for a recipient domain's policy [default: 26, or --bits when higher].
    #[arg(long, value_name = "BITS", help_heading = "Outbound: stamps")]
    pub max_bits: Option<u32>,
    /// Keep each outbound message (before its stamps) in this folder, so that a postage
    /// challenge can be answered (`pennyblack answer --sent DIR`).
    #[arg(long, value_name = "DIR", help_heading = "Outbound: stamps")]
    pub keep_sent: Option<PathBuf>,
    /// How long kept messages stay (pruned on each write; at most 10000 are kept, each at most
    /// 10 MiB).
    #[arg(long, default_value = "3d", value_parser = parse_duration, value_name = "DURATION", help_heading = "Outbound: stamps")]
    pub keep_for: std::time::Duration,
    /// Pay each recipient the message's To or Cc names with a ticket from this wallet
    /// (`pennyblack ticket buy --top-up --every 10m` keeps it filled); the others, and all once
    /// it is empty, get stamps.
    #[arg(
        long,
        value_name = "FILE",
        env = "PENNYBLACK_WALLET",
        help_heading = "Outbound: stamps"
    )]
    pub wallet: Option<PathBuf>,
    /// Inbound: the ticket service that cancels the tickets paying for recipients no stamp
    /// pays (its keys are fetched at start).
    #[command(flatten)]
    pub tickets: TicketServiceArgs,
    /// DKIM signatures over the stamped message (and over postage challenges).
    #[command(flatten, next_help_heading = "Outbound: DKIM")]
    pub sign: SignArgs,
    /// Least work accepted on inbound stamps, in bits (--bits is the cost of outbound ones).
    #[arg(
        long,
        value_name = "BITS",
        default_value_t = 20,
        help_heading = "Inbound: checks"
    )]
    pub min_bits: u32,
    /// Refuse stamps not bound to their message's body (unbound: hashcash's, `mint`'s).
    #[arg(long, help_heading = "Inbound: checks")]
    pub require_binding: bool,
    /// Refuse stamps whose binding leaves out a field the reader sees (Reply-To, Sender,
    /// In-Reply-To, References, the MIME fields...): stamps minted by releases before version-2
    /// bindings, under which those fields may be added in transit. Implies --require-binding.
    #[arg(long, help_heading = "Inbound: checks")]
    pub require_full_binding: bool,
    /// The authserv-id of the Authentication-Results fields [default: this host's name].
    /// Fields that already claim it are removed as forgeries.
    #[arg(long, help_heading = "Inbound: checks")]
    pub authserv_id: Option<String>,
    /// Refuse messages without a valid stamp of at least BITS (default: only add headers). A
    /// memory-hard stamp (argon2id, equix) pays when it meets its family's --min-value instead.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u32).range(1..=128), help_heading = "Inbound: checks")]
    pub reject_below: Option<u32>,
    /// How --reject-below refuses: tempfail (451 4.7.1: the sender's server retries, and can
    /// meet the requirement the reply states) or reject (550 5.7.1: a bounce). The reply reads
    /// `postage required [v=PB1; bits=N; alg=...] for N of M recipient(s)`.
    #[arg(long, value_enum, default_value_t = RejectWithArg::Tempfail, help_heading = "Inbound: checks")]
    pub reject_with: RejectWithArg,
    /// How --reject-below refuses a replay (every unpaid recipient's stamp or ticket was spent
    /// before: a copy of a message delivered already): reject (550 5.7.1, the default: retrying
    /// cannot make it deliverable) or tempfail (451 4.7.1). The reply reads `postage already
    /// spent: a replay of a message delivered before, ...`; no challenge is sent for it. Use
    /// tempfail where a filter after this one can still tempfail a message accepted here (its
    /// retry then finds its stamps spent).
    #[arg(long, value_enum, default_value_t = RejectWithArg::Reject, help_heading = "Inbound: checks")]
    pub replay_with: RejectWithArg,
    /// Send postage challenges through this SMTP relay (HOST:PORT, plain SMTP: on loopback or
    /// the local network; TLS onwards is the relay's job): to the authenticated sender (SPF
    /// pass, or a DKIM pass covering From, sent from that From address) of a message refused
    /// under --reject-below, never to automatic mail, at most once per sender and message.
    /// Needs --challenge-key and --sign.
    #[arg(
        long,
        value_name = "HOST:PORT",
        requires = "reject_below",
        help_heading = "Inbound: postage challenges"
    )]
    pub challenge_relay: Option<String>,
    /// The From: of challenges [default: postmaster@ the --domain].
    #[arg(
        long,
        value_name = "ADDR",
        help_heading = "Inbound: postage challenges"
    )]
    pub challenge_from: Option<String>,
    /// The challenges' MAC key: at least 32 random bytes, readable by no one else; made (32
    /// bytes, mode 0600) when the file does not exist.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Inbound: postage challenges"
    )]
    pub challenge_key: Option<PathBuf>,
    /// How long a challenge may be answered.
    #[arg(long, default_value = "3d", value_parser = parse_timeout, value_name = "DURATION", help_heading = "Inbound: postage challenges")]
    pub challenge_ttl: std::time::Duration,
    /// At most N challenges per sender per PERIOD (e.g. 3/1h); at most 10000 senders are
    /// tracked, and when all are within their period no challenge goes to a new one.
    #[arg(long, default_value = "3/1h", value_parser = parse_rate, value_name = "N/PERIOD", help_heading = "Inbound: postage challenges")]
    pub challenge_rate: (u32, std::time::Duration),
    /// At most N challenges per sender domain in the --challenge-rate period, all its
    /// addresses together (any local part of a domain passes its SPF).
    #[arg(
        long,
        default_value_t = 30,
        value_name = "N",
        help_heading = "Inbound: postage challenges"
    )]
    pub challenge_domain_rate: u32,
    /// At most this many challenges an hour, all senders together.
    #[arg(
        long,
        default_value_t = 1000,
        value_name = "N",
        help_heading = "Inbound: postage challenges"
    )]
    pub challenge_per_hour: u32,
    /// Honour a signature's l= body length.
    #[arg(long, help_heading = "Inbound: checks")]
    pub honour_l: bool,
    /// SPF (RFC 7208: the client's address for MAIL FROM, or HELO for the null sender) and
    /// DMARC (RFC 7489: the From domain's policy and alignment), added to the field that holds
    /// dkim=; through --dns-server or the system resolver, also with --keys.
    #[arg(long, value_enum, default_value_t = OnOff::On, value_name = "on|off", help_heading = "Inbound: SPF and DMARC")]
    pub sender_auth: OnOff,
    /// Act on a DMARC fail as the From domain asks: refuse (550 5.7.1) under p=reject,
    /// quarantine (Postfix: the hold queue) under p=quarantine, one step milder under t=y. A
    /// temperror never refuses. Without it the result is only reported.
    #[arg(long, help_heading = "Inbound: SPF and DMARC")]
    pub dmarc_enforce: bool,
    /// At most this many X-Hashcash fields are examined per message.
    #[arg(long, default_value_t = 64, help_heading = "Inbound: checks")]
    pub max_stamps: usize,
    /// At most this many DKIM signatures are verified per message.
    #[arg(long, default_value_t = 5, help_heading = "Inbound: checks")]
    pub max_signatures: usize,
    /// Where DKIM keys come from.
    #[command(flatten, next_help_heading = "Inbound: DKIM keys")]
    pub key_source: KeySourceArgs,
    /// Stamp validity, clock and spent store.
    #[command(flatten, next_help_heading = "Inbound: validity and spent store")]
    pub policy: PolicyArgs,
    /// Messages larger than this (bytes) pass unchanged (refused under --reject-below).
    #[arg(long, default_value_t = 64 << 20)]
    pub max_size: usize,
    /// On SIGTERM or SIGINT, wait this long for messages in progress before closing.
    #[arg(long, default_value = "90s", value_parser = parse_timeout)]
    pub shutdown_grace: std::time::Duration,
    /// No log line per message on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Permissions of a unix: socket, octal. The MTA's user must be able to write to it
    /// (Postfix's smtpd runs as `postfix`: run the milter in the `postfix` group). Never give
    /// others access: the milter protocol has no authentication, so anyone who can connect
    /// gets mail signed (a warning is printed at start-up if they can).
    #[arg(long, default_value = "660", value_parser = parse_mode)]
    pub socket_mode: u32,
}

/// `N/PERIOD` of `--challenge-rate`: 3/1h, 10/1d.
#[cfg(feature = "milter")]
fn parse_rate(s: &str) -> Result<(u32, std::time::Duration), String> {
    let (n, period) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not N/PERIOD (e.g. 3/1h)"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a number"))?;
    Ok((n, parse_timeout(period)?))
}

#[cfg(feature = "milter")]
fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal mode such as 660"))
}

/// How `milter --reject-below` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RejectWithArg {
    /// 550 5.7.1: the sender gets a bounce.
    Reject,
    /// 451 4.7.1: the sender retries later.
    Tempfail,
}

/// Key algorithm for keygen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgArg {
    /// Ed25519 (RFC 8463): small and fast; not every receiver checks it yet.
    Ed25519,
    /// RSA: understood everywhere.
    Rsa,
}

/// `pennyblack keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The selector.
    #[arg(long)]
    pub selector: String,
    /// The signing domain.
    #[arg(long)]
    pub domain: String,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = KeyAlgArg::Ed25519)]
    pub alg: KeyAlgArg,
    /// RSA modulus size in bits (at least 2048).
    #[arg(long, default_value_t = 2048)]
    pub rsa_bits: usize,
    /// Where to write the private key (PEM, PKCS#8, mode 0600). Refuses to overwrite.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `pennyblack bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Algorithms to measure (repeat) [default: all; argon2id at its default parameters and
    /// for at most 0.5 s a row].
    #[arg(short, long, value_enum)]
    pub alg: Vec<AlgArg>,
    #[command(flatten)]
    pub argon2: Argon2Args,
    /// Parts of the stamp whose verification is timed, beside one part [default: each
    /// algorithm's default: 16; 4 for argon2id; sha1 always 1].
    #[arg(short, long)]
    pub parts: Option<u32>,
    /// Backends to measure (repeat) [default: every one this CPU has].
    #[arg(long, value_enum)]
    pub backend: Vec<BackendArg>,
    /// Threads for the all-cores row [default: all cores].
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Skip the OpenSSL and hashcash reference measurements.
    #[arg(long)]
    pub no_reference: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `pennyblack calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Target mean mint time per stamp (e.g. 2s, 500ms).
    #[arg(long, value_parser = parse_timeout)]
    pub target: std::time::Duration,
    /// Algorithm.
    #[arg(short, long, value_enum, default_value_t = AlgArg::Sha256)]
    pub alg: AlgArg,
    #[command(flatten)]
    pub argon2: Argon2Args,
    /// Number of parts [default: 16; 4 for argon2id; 1 for sha1].
    #[arg(short, long)]
    pub parts: Option<u32>,
    /// Threads the sender will mint with [default: all cores; for argon2id no more than the
    /// minter's 1 GiB memory limit allows].
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Minting backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Seconds spent measuring this machine's rate (five samples).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Use this rate (attempts per second, all threads: hashes, or Argon2id evaluations)
    /// instead of measuring.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Draw the predicted mint-time distributions (one part vs the chosen parts) to an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// The cost of new stamps, shared by `mint` and `stamp`.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Total work in bits. With K parts each part gets ceil(BITS - log2 K) bits.
    #[arg(short, long, default_value_t = 20)]
    pub bits: u32,
    /// Algorithm: sha1 mints hashcash version 1 stamps; sha256, blake3, argon2id and equix
    /// (memory-hard; equix needs a build with --features equix) version 2.
    #[arg(short, long, value_enum, default_value_t = AlgArg::Sha256)]
    pub alg: AlgArg,
    /// Number of parts, 1 to 64 [default: 16; 4 for argon2id and equix; 1 for sha1]. More parts: same
    /// mean, steadier time, more work for the receiver.
    #[arg(short, long)]
    pub parts: Option<u32>,
    #[command(flatten)]
    pub argon2: Argon2Args,
}

impl CostArgs {
    /// The algorithm with its parameters and the number of parts (its default when not given).
    pub fn alg_and_parts(&self) -> anyhow::Result<(pennyblack::Algorithm, u32)> {
        let alg = self.argon2.apply(self.alg.alg())?;
        Ok((alg, self.parts.unwrap_or(alg.default_parts())))
    }
}

/// `pennyblack mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// Resources to stamp, usually recipient addresses (no ':' or white space). None, or `-`,
    /// reads them from standard input, one per line (blank lines skipped); stamps are printed in
    /// the same order. Many small stamps are minted many at once, one per thread.
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// What each stamp costs.
    #[command(flatten)]
    pub cost: CostArgs,
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
    #[arg(long, value_parser = parse_timeout)]
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
    /// Least work accepted, in bits (as the milter's --min-bits; --bits, hashcash's spelling,
    /// works too). Without it any honest claim passes (exit 2).
    #[arg(short = 'b', long = "min-bits", alias = "bits", value_name = "BITS")]
    pub bits: Option<u32>,
    /// Accepted resource; repeat for several. `*` and `?` are wildcards (`*@example.org`).
    /// Without it any resource passes (exit 2).
    #[arg(short, long = "resource", value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Match resources case-sensitively (default: ASCII case-insensitive, as hashcash).
    #[arg(short = 'C', long)]
    pub case_sensitive: bool,
    /// Stamp validity, clock and spent store.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// At most this many stamps per commit of the spent store. A batch takes the lines already
    /// waiting on standard input (group commit); verdicts are printed after each commit. A batch
    /// of 256 stamps or more is checked on every core (RAYON_NUM_THREADS=N to use fewer).
    #[arg(long, default_value_t = 65536)]
    pub batch: usize,
    /// One JSON object per stamp (JSON Lines) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What to do when the spent store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unavailable {
    /// Fail closed: an error, exit 3.
    Reject,
    /// Fail open: accept without a replay check, stated in the verdict.
    Accept,
}

/// Options shared by `verify` and `check`: how long stamps live, the clock, the spent store.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// How long a stamp stays valid after its date (e.g. 28d, 12h); 0 means forever.
    #[arg(short = 'e', long, default_value = "28d", value_parser = parse_duration)]
    pub validity: std::time::Duration,
    /// Clock-skew allowance, both directions (under 10 years: two-digit years in stamp dates
    /// are read within 50 years of now).
    #[arg(short, long, default_value = "2d", value_parser = parse_grace)]
    pub grace: std::time::Duration,
    /// Spent-stamp store: a database file (a path, or file:PATH), or Redis to share one set
    /// between machines: redis://[USER[:PASSWORD]@]HOST:PORT/DB, rediss://... (TLS),
    /// redis+cluster://HOST:PORT[,HOST:PORT], redis+sentinel://HOST:PORT[,...]/SERVICE[/DB]
    /// [default: $PENNYBLACK_SPENT, else $XDG_DATA_HOME/pennyblack/spent.redb]
    #[arg(short, long, value_name = "PATH|URL", conflicts_with = "no_spent")]
    pub spent: Option<PathBuf>,
    /// Do not record or refuse replays (a valid stamp is then not fully checked); wins over
    /// PENNYBLACK_SPENT.
    #[arg(long)]
    pub no_spent: bool,
    /// When the spent store fails, to open or mid-run: reject (stop with exit 3, the default)
    /// or accept stamps without a replay check, saying so in each verdict (exit 2).
    #[arg(long, value_enum, default_value_t = Unavailable::Reject)]
    pub spent_unavailable: Unavailable,
    /// How long to wait for the Redis server (a connection, each reply): 2s, 500ms; a bare
    /// number is seconds.
    #[arg(long, default_value = "2s", value_parser = parse_timeout, value_name = "DURATION")]
    pub redis_timeout: std::time::Duration,
    /// rediss://: trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub redis_ca: Option<PathBuf>,
    /// rediss://: present this client certificate (PEM), with --redis-key.
    #[arg(long, value_name = "FILE")]
    pub redis_cert: Option<PathBuf>,
    /// rediss://: the client certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub redis_key: Option<PathBuf>,
    /// Read the Redis password from this file (first line), so it is not on the command line;
    /// PENNYBLACK_REDIS_PASSWORD also works. Overrides a password in the URL.
    #[arg(long, value_name = "FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// Check as if it were this time: RFC 3339 (2026-11-27T12:00:00Z) or Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<i64>,
    /// Least value for one algorithm family, e.g. argon2id=8, equix=6 or sha256=22 (repeat).
    /// Values of different families are not comparable: a family listed here is judged by its
    /// own minimum, the hash families not listed by the bits minimum; once any minimum is set,
    /// a family with none (argon2id, equix unless listed) is refused.
    #[arg(long, value_name = "ALG=VALUE", value_parser = parse_min_value)]
    pub min_value: Vec<(pennyblack::Algorithm, u32)>,
    /// Refuse Argon2id stamps with less memory per attempt than this.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_kib)]
    pub min_memory: u32,
    /// Refuse Argon2id stamps with more memory per attempt than this (checked before any
    /// work; the checker holds this much per thread).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_kib)]
    pub max_memory: u32,
    /// Refuse stamps of more parts than this (1-64).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_parts: u32,
    /// Most verification work for the stamps of one recipient of a message (per stamp for
    /// `verify`), estimated before any work from each stamp's algorithm, parameters and parts;
    /// stamps beyond it are refused unchecked.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_timeout)]
    pub max_work: std::time::Duration,
    /// Most verification work for all the stamps of one message, whatever its recipients.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_timeout)]
    pub max_message_work: std::time::Duration,
}

/// A timeout: a duration (2s, 500ms), or a bare number of seconds.
pub fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(n) = s.trim().parse::<f64>() {
        if n.is_finite() && n > 0.0 {
            return Ok(std::time::Duration::from_secs_f64(n));
        }
        return Err(format!("{s:?} is not a positive duration"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (examples: 2s, 500ms, 5)"))
        .and_then(|d| {
            if d.is_zero() {
                Err(format!("{s:?} is not a positive duration"))
            } else {
                Ok(d)
            }
        })
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 28d, 12h, 90m, 0)"))
}

/// A grace under 10 years: with more, one two-digit-year date could be read as two centuries
/// by checks a few months apart (the century is the one within 50 years of now), and a stamp
/// filed under two dates could be accepted twice.
fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d >= std::time::Duration::from_secs(10 * 365 * 86_400) {
        return Err(
            "a grace of 10 years or more is refused (clock skew is minutes or days)".into(),
        );
    }
    Ok(d)
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

/// `pennyblack ticketd ...`.
#[cfg(feature = "ticketd")]
#[derive(Debug, Subcommand)]
pub enum TicketdCommand {
    /// Serve the ticket API over HTTP until SIGTERM or SIGINT (put a TLS proxy in front of it
    /// for anything but loopback).
    #[command(after_help = TICKETD_EXAMPLES)]
    Serve(TicketdServeArgs),
    /// Open a sender or receiver account through the running service; prints its token once.
    Account(TicketdAccountArgs),
    /// Grant a sender credits (tickets it may take without paying in work).
    Grant(TicketdGrantArgs),
    /// Name the recipient domains a receiver account cancels tickets for (one receiver per
    /// domain; exact names, no subdomains).
    Domain(TicketdDomainArgs),
    /// Forget unused tickets past their expiry.
    Purge(TicketdAdminArgs),
    /// Print the key record receivers trust, as a DNS TXT record at _postage-ticket.ISSUER.
    Key(TicketdKeyArgs),
}

#[cfg(feature = "ticketd")]
const TICKETD_EXAMPLES: &str = "\
Examples:
  pennyblack ticketd serve --issuer tickets.example.org --key /var/lib/pennyblack/ticket.key \\
      --books /var/lib/pennyblack/books.redb --spent /var/lib/pennyblack/ticket-spent.redb \\
      --admin-token-file /var/lib/pennyblack/admin.token --price-bits 24
  pennyblack ticketd account alice --role sender --admin-token-file /var/lib/pennyblack/admin.token
  pennyblack ticketd account mx --role receiver --domain example.net \\
      --admin-token-file /var/lib/pennyblack/admin.token
  pennyblack ticketd grant alice 100 --admin-token-file /var/lib/pennyblack/admin.token

The key file (an Ed25519 seed and the secret ticket secrets derive from) and the admin token
file are made with mode 600 when missing; a key file others can read is refused.";

/// `pennyblack ticketd serve`.
#[cfg(feature = "ticketd")]
#[derive(Debug, Args)]
pub struct TicketdServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8025")]
    pub listen: std::net::SocketAddr,
    /// The issuer's name, written in every ticket (a domain name receivers know it by).
    #[arg(long)]
    pub issuer: String,
    /// The issuer's key file (made when missing).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The books: accounts, tickets, statements: a redb file (one instance), or a PostgreSQL
    /// URL (postgres://USER@HOST:PORT/DB) that several instances share.
    #[arg(long, value_name = "FILE|URL")]
    pub books: String,
    /// The spent store of the stamps paid with (a redb file); with PostgreSQL books it is a
    /// table of the same database, shared by every instance, unless this is given.
    #[arg(long, value_name = "FILE")]
    pub spent: Option<PathBuf>,
    /// The price of one ticket: a stamp of this many bits for ACCOUNT@ISSUER.
    #[arg(long, default_value_t = 24)]
    pub price_bits: u32,
    /// How long a ticket stays valid after its purchase.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub lifetime: std::time::Duration,
    /// The admin token's file (made when missing); without it the admin routes are off.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// Where the running service is and the admin token.
#[cfg(feature = "ticketd")]
#[derive(Debug, Args)]
pub struct TicketdAdminArgs {
    /// The service's URL.
    #[arg(long, default_value = "http://127.0.0.1:8025")]
    pub url: String,
    /// The admin token's file (as given to `serve`).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: PathBuf,
}

/// `pennyblack ticketd account`.
#[cfg(feature = "ticketd")]
#[derive(Debug, Args)]
pub struct TicketdAccountArgs {
    /// The account's name: 1 to 64 letters, digits, '.', '-' or '_'.
    pub name: String,
    /// Sender (buys tickets) or receiver (cancels and refunds them).
    #[arg(long, value_parser = ["sender", "receiver"])]
    pub role: String,
    /// A receiver's recipient domain (repeatable): it cancels the tickets paying for
    /// recipients there, and no other receiver can.
    #[arg(long = "domain", value_name = "DOMAIN")]
    pub domains: Vec<String>,
    #[command(flatten)]
    pub admin: TicketdAdminArgs,
}

/// `pennyblack ticketd domain`.
#[cfg(feature = "ticketd")]
#[derive(Debug, Args)]
pub struct TicketdDomainArgs {
    /// The receiver's account.
    pub account: String,
    /// Its recipient domains.
    #[arg(required = true)]
    pub domains: Vec<String>,
    #[command(flatten)]
    pub admin: TicketdAdminArgs,
}

/// `pennyblack ticketd grant`.
#[cfg(feature = "ticketd")]
#[derive(Debug, Args)]
pub struct TicketdGrantArgs {
    /// The sender's account.
    pub account: String,
    /// Credits to add.
    pub count: u64,
    #[command(flatten)]
    pub admin: TicketdAdminArgs,
}

/// `pennyblack ticketd key`.
#[cfg(feature = "ticketd")]
#[derive(Debug, Args)]
pub struct TicketdKeyArgs {
    /// The issuer's name.
    #[arg(long)]
    pub issuer: String,
    /// The issuer's key file (made when missing).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

/// The ticket service a command talks to.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Tickets")]
pub struct TicketServiceArgs {
    /// The ticket service's URL (`pennyblack ticketd serve`; plain HTTP: loopback, a private
    /// network, or a TLS proxy's local side). `ticket` buys, shows and refunds there; `check`
    /// and the milter cancel there the tickets paying for recipients no stamp pays.
    #[arg(long, value_name = "URL", env = "PENNYBLACK_TICKET_SERVER")]
    pub ticket_server: Option<String>,
    /// The file holding this account's token (from `pennyblack ticketd account`).
    #[arg(
        long,
        value_name = "FILE",
        env = "PENNYBLACK_TICKET_TOKEN_FILE",
        requires = "ticket_server"
    )]
    pub ticket_token_file: Option<PathBuf>,
    /// How long to wait for the ticket service: each request, and (check, milter) all of one
    /// message's cancels.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub ticket_timeout: std::time::Duration,
}

/// `pennyblack ticket ...`.
#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Buy tickets into a wallet, paying with stamps minted here (or from granted credits).
    #[command(after_help = TICKET_EXAMPLES)]
    Buy(TicketBuyArgs),
    /// Show the account's balance at the service and what the wallet holds.
    Balance(TicketBalanceArgs),
    /// Refund the tickets of a wanted message (read on standard input): the sender gets them
    /// back. Only the receiver that cancelled a ticket may refund it, once.
    #[command(after_help = TICKET_EXAMPLES)]
    Refund(TicketRefundArgs),
}

const TICKET_EXAMPLES: &str = "\
Examples:
  # A sender keeps 200 tickets ready, topping up every 10 minutes (in the background):
  pennyblack ticket buy 200 --top-up --every 10m --wallet ~/.pennyblack/wallet \\
      --ticket-server http://127.0.0.1:8025 --ticket-token-file ~/.pennyblack/ticket.token
  # Stamp with tickets (Bcc recipients and an empty wallet get stamps):
  pennyblack stamp --wallet ~/.pennyblack/wallet --bits 20 < msg.eml > stamped.eml
  # A receiver refunds a message its user wanted:
  pennyblack ticket refund --rcpt bob@example.net --ticket-server http://127.0.0.1:8025 \\
      --ticket-token-file /etc/pennyblack/receiver.token < wanted.eml

Exit status of refund: 0 at least one ticket refunded, 1 none (no ticket for the recipient,
refused or refunded before), 3 error (service unreachable, bad arguments).";

/// `pennyblack ticket buy`.
#[derive(Debug, Args)]
pub struct TicketBuyArgs {
    /// How many tickets to buy (with --top-up: how many the wallet should hold).
    pub count: u64,
    /// Buy only what the wallet lacks to hold COUNT usable tickets.
    #[arg(long)]
    pub top_up: bool,
    /// Keep running: top up again after each DURATION (implies --top-up).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub every: Option<std::time::Duration>,
    /// Pay from the account's credits (`ticketd grant`) instead of minting stamps.
    #[arg(long)]
    pub from_balance: bool,
    /// The wallet the tickets go to (made with mode 600).
    #[arg(long, value_name = "FILE", env = "PENNYBLACK_WALLET")]
    pub wallet: PathBuf,
    /// Minting threads (default: every core).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// No progress on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub service: TicketServiceArgs,
}

/// `pennyblack ticket balance`.
#[derive(Debug, Args)]
pub struct TicketBalanceArgs {
    /// Also count the usable tickets of this wallet.
    #[arg(long, value_name = "FILE", env = "PENNYBLACK_WALLET")]
    pub wallet: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub service: TicketServiceArgs,
}

/// `pennyblack ticket refund`.
#[derive(Debug, Args)]
pub struct TicketRefundArgs {
    /// Refund the tickets paying for this recipient (repeatable): the user who wanted the
    /// message, never its other recipients.
    #[arg(long = "rcpt", value_name = "ADDR", required = true)]
    pub rcpts: Vec<String>,
    /// Largest message read, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_size: usize,
    #[command(flatten)]
    pub service: TicketServiceArgs,
}

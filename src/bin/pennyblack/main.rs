//! The `pennyblack` command: a thin layer over the library. Exit codes are decided here only.

mod args;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// The exit codes, as hashcash's: the one place they are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Everything checked and valid (or the command did its job).
    Ok = 0,
    /// At least one stamp is invalid.
    Invalid = 1,
    /// Valid, but not every check was made.
    NotFullyChecked = 2,
    /// Bad usage or a failure of ours.
    Error = 3,
}

/// The man page, from the same definitions as `--help`, with every subcommand as a section.
fn man() -> anyhow::Result<Exit> {
    use std::io::Write;
    let cmd = <args::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands() {
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone()).render(&mut page)?;
        // The subcommand's own page, without its title header, as a section of the tool's.
        let text = String::from_utf8_lossy(&page);
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with(".SH"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.extend_from_slice(format!(".SH \"COMMAND {}\"\n", sub.get_name()).as_bytes());
        out.extend_from_slice(body.replace(".SH ", ".SS ").as_bytes());
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(Exit::Ok)
}

/// The error and its causes, like `{e:#}` but each said once: the library's errors show their
/// cause in their own text and also give it as their source (a key file's error reads
/// "FILE: key: why" and its source is "key: why"), so a cause whose text is already shown is
/// left out.
fn report(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

fn main() -> ExitCode {
    // The embedded store panics on some damage inside its file; the store turns that into an
    // error ("database damaged: ..."), so its own panic message is not shown.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.location().is_some_and(|l| l.file().contains("/redb-")) {
            return;
        }
        default_hook(info);
    }));
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; every real usage error exits 3.
            let code = if e.use_stderr() {
                Exit::Error
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let result = match cli.command {
        args::Command::Mint(a) => cmd::mint::run(a),
        args::Command::Verify(a) => cmd::verify::run(a),
        args::Command::Stamp(a) => cmd::stamp::run(a),
        args::Command::Check(a) => cmd::check::run(*a),
        args::Command::Keygen(a) => cmd::keygen::run(a),
        #[cfg(feature = "dns")]
        args::Command::Spf(a) => cmd::spf::run(a),
        #[cfg(feature = "dns")]
        args::Command::Policy(a) => cmd::policy::run(a),
        args::Command::Spent(a) => cmd::spent::run(a),
        args::Command::Bench(a) => cmd::bench::run(a),
        args::Command::Calibrate(a) => cmd::calibrate::run(a),
        #[cfg(feature = "milter")]
        args::Command::Milter(a) => cmd::milter::run(*a),
        #[cfg(feature = "ticketd")]
        args::Command::Ticketd(c) => cmd::ticketd::run(c),
        args::Command::Ticket(c) => cmd::ticket::run(c),
        #[cfg(feature = "milter")]
        args::Command::Answer(a) => cmd::answer::run(*a),
        args::Command::Man => man(),
        args::Command::Completions { shell } => {
            let mut cmd = <args::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "pennyblack", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("pennyblack: error: {}", report(&e));
            ExitCode::from(Exit::Error as u8)
        }
    }
}

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

fn main() -> ExitCode {
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
        args::Command::Check(a) => cmd::check::run(a),
        args::Command::Keygen(a) => cmd::keygen::run(a),
        args::Command::Spent(a) => cmd::spent::run(a),
        args::Command::Bench(a) => cmd::bench::run(a),
        args::Command::Calibrate(a) => cmd::calibrate::run(a),
        #[cfg(feature = "milter")]
        args::Command::Milter(a) => cmd::milter::run(*a),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("pennyblack: error: {e:#}");
            ExitCode::from(Exit::Error as u8)
        }
    }
}

//! One file per subcommand.

pub mod mint;
pub mod verify;

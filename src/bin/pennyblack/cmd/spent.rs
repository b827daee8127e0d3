//! `pennyblack spent stats|purge`.

use anyhow::Result;
use pennyblack::{Clock, FileStore, SpentStore, SystemClock};

use crate::Exit;
use crate::args::SpentCommand;

pub fn run(c: SpentCommand) -> Result<Exit> {
    let (a, purge) = match c {
        SpentCommand::Stats(a) => (a, false),
        SpentCommand::Purge(a) => (a, true),
    };
    let path = match a.spent.clone() {
        Some(p) => p,
        None => crate::cmd::verify::default_spent_path()?,
    };
    let path = match crate::cmd::parse_location(&path)? {
        crate::cmd::Location::File(p) => p,
        crate::cmd::Location::Redis(url) => anyhow::bail!(
            "{}: `spent stats` and `spent purge` work on a file store (Redis expires entries itself)",
            crate::cmd::redact(&url)
        ),
    };
    let store = FileStore::open(&path)?;
    let now = a.now.unwrap_or_else(|| SystemClock.now());
    if purge {
        let removed = store.purge(now)?;
        if a.json {
            println!(
                "{}",
                serde_json::json!({ "removed": removed, "path": path })
            );
        } else {
            println!("removed {removed} expired entries from {}", path.display());
        }
        return Ok(Exit::Ok);
    }
    let s = store.stats(now)?;
    if a.json {
        println!("{}", serde_json::json!({ "path": path, "stats": s }));
    } else {
        println!("file:      {} ({} bytes)", path.display(), s.file_bytes);
        println!("entries:   {}", s.entries);
        println!(
            "expired:   {} (removed by `pennyblack spent purge`, and a few at a time by checks)",
            s.expired
        );
        if let Some(t) = s.next_expiry {
            println!("next expiry: {t} (Unix seconds)");
        }
    }
    Ok(Exit::Ok)
}

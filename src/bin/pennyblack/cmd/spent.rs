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
        None => crate::cmd::default_spent_path()?,
    };
    let path = match crate::cmd::parse_location(&path)? {
        crate::cmd::Location::File(p) => p,
        crate::cmd::Location::Redis(url) => anyhow::bail!(
            "{}: `spent stats` and `spent purge` work on a file store (Redis expires entries itself)",
            crate::cmd::redact(&url)
        ),
    };
    let now = a.now.unwrap_or_else(|| SystemClock.now());
    if purge {
        let mut store = FileStore::open(&path)?;
        let removed = store.purge(now)?;
        let before = std::fs::metadata(&path).map_or(0, |m| m.len());
        // Removed entries leave free pages: give them back, so the file shrinks.
        store.compact()?;
        drop(store);
        let after = std::fs::metadata(&path).map_or(0, |m| m.len());
        if a.json {
            println!(
                "{}",
                serde_json::json!({ "removed": removed, "path": path, "bytes_before": before, "bytes_after": after })
            );
        } else {
            println!(
                "removed {removed} entries whose time had passed from {}; {before} -> {after} bytes",
                path.display()
            );
        }
        return Ok(Exit::Ok);
    }
    // Read-only: works on a file this user may not write, and never creates one.
    let s = FileStore::stats_read_only(&path, now)?;
    if a.json {
        println!("{}", serde_json::json!({ "path": path, "stats": s }));
    } else {
        println!("file:      {} ({} bytes)", path.display(), s.file_bytes);
        println!(
            "entries:   {} in {} hours of stamp dates",
            s.entries, s.hours
        );
        println!(
            "past their time: {} (removed by `pennyblack spent purge`, and a few hours at a time by checks)",
            s.expired
        );
        if let Some(t) = s.next_expiry {
            println!("next to go: {t} (Unix seconds)");
        }
    }
    Ok(Exit::Ok)
}

//! `pennyblack ticketd serve|account|grant|purge|key`: the ticket service and its admin.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use pennyblack::ticket::Issuer;
use pennyblack::ticket::postgres::PgTicketStore;
use pennyblack::ticket::server::{Metrics, Service, token_hash};
use pennyblack::ticket::store::{FileTicketStore, TicketStore};

use crate::Exit;
use crate::args::{TicketdAdminArgs, TicketdCommand};

pub fn run(c: TicketdCommand) -> Result<Exit> {
    match c {
        TicketdCommand::Serve(a) => {
            let issuer = Issuer::from_key_file(&a.issuer, &a.key)
                .with_context(|| format!("--key {}", a.key.display()))?;
            let (books, spent): (Arc<dyn TicketStore>, Arc<dyn pennyblack::SpentStore>) =
                if a.books.starts_with("postgres://") || a.books.starts_with("postgresql://") {
                    let pg = Arc::new(PgTicketStore::open(&a.books)?.with_spent_table()?);
                    let spent: Arc<dyn pennyblack::SpentStore> = match &a.spent {
                        Some(p) => Arc::new(pennyblack::FileStore::open(p)?),
                        None => pg.clone(),
                    };
                    (pg, spent)
                } else {
                    let Some(p) = &a.spent else {
                        bail!("--spent FILE is needed with file books (the stamps paid with)");
                    };
                    (
                        Arc::new(FileTicketStore::open(std::path::Path::new(&a.books))?),
                        Arc::new(pennyblack::FileStore::open(p)?),
                    )
                };
            let admin_token_hash = match &a.admin_token_file {
                Some(f) => Some(token_hash(&read_or_make_token(f)?)),
                None => None,
            };
            eprintln!(
                "pennyblack ticketd: {} on http://{} (key {}, price {} bits)",
                issuer.name, a.listen, issuer.kid, a.price_bits
            );
            let service = Arc::new(Service {
                issuer,
                books,
                spent,
                price_bits: a.price_bits,
                lifetime: a.lifetime,
                admin_token_hash,
                metrics: Metrics::default(),
            });
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(a.listen)
                    .await
                    .with_context(|| format!("--listen {}", a.listen))?;
                let shutdown = async {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("a SIGTERM handler");
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                    eprintln!("pennyblack ticketd: signal received, finishing requests");
                };
                pennyblack::ticket::server::serve(listener, service, shutdown).await?;
                anyhow::Ok(())
            })?;
            Ok(Exit::Ok)
        }
        TicketdCommand::Account(a) => {
            let v = admin_post(
                &a.admin,
                "/v1/admin/account",
                serde_json::json!({ "name": a.name, "role": a.role }),
            )?;
            println!("{}", v["token"].as_str().unwrap_or_default());
            eprintln!(
                "pennyblack ticketd: account {} ({}) opened; the token above is shown only once",
                a.name, a.role
            );
            // Standard output holds the token alone.
            add_domains(&a.admin, &a.name, &a.domains, |line| {
                eprintln!("pennyblack ticketd: {line}")
            })?;
            Ok(Exit::Ok)
        }
        TicketdCommand::Domain(a) => {
            add_domains(&a.admin, &a.account, &a.domains, |line| println!("{line}"))?;
            Ok(Exit::Ok)
        }
        TicketdCommand::Grant(a) => {
            let v = admin_post(
                &a.admin,
                "/v1/admin/grant",
                serde_json::json!({ "account": a.account, "count": a.count }),
            )?;
            println!("balance {}", v["balance"]);
            Ok(Exit::Ok)
        }
        TicketdCommand::Purge(a) => {
            let v = admin_post(&a, "/v1/admin/purge", serde_json::json!({}))?;
            println!("purged {}", v["purged"]);
            Ok(Exit::Ok)
        }
        TicketdCommand::Key(a) => {
            let issuer = Issuer::from_key_file(&a.issuer, &a.key)
                .with_context(|| format!("--key {}", a.key.display()))?;
            println!("_postage-ticket.{} {}", issuer.name, issuer.key_record());
            Ok(Exit::Ok)
        }
    }
}

/// Gives `domains` to the receiver `account`, saying each with `say`.
fn add_domains(
    admin: &TicketdAdminArgs,
    account: &str,
    domains: &[String],
    say: impl Fn(&str),
) -> Result<()> {
    for d in domains {
        admin_post(
            admin,
            "/v1/admin/domain",
            serde_json::json!({ "account": account, "domain": d }),
        )?;
        say(&format!("{account} cancels tickets for {d}"));
    }
    Ok(())
}

/// The admin token in `path`, made (32 random bytes, base64url, mode 600) when missing.
fn read_or_make_token(path: &std::path::Path) -> Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        Ok(_) => bail!("{}: empty admin token file", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = pennyblack::ticket::server::new_token();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("--admin-token-file {}", path.display()))?;
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("--admin-token-file {}", path.display())),
    }
}

/// POSTs `body` to the admin route `path`; the JSON answer, or the service's error.
fn admin_post(
    a: &TicketdAdminArgs,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let token = std::fs::read_to_string(&a.admin_token_file)
        .with_context(|| format!("--admin-token-file {}", a.admin_token_file.display()))?;
    let url = format!("{}{path}", a.url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut resp = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {}", token.trim()))
        .send_json(&body)
        .with_context(|| url.clone())?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .body_mut()
        .read_json()
        .with_context(|| format!("{url}: answer is not JSON ({status})"))?;
    if !status.is_success() {
        bail!("{url}: {status}: {}", v["error"].as_str().unwrap_or("?"));
    }
    Ok(v)
}

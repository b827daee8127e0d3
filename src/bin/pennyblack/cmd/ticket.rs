//! `pennyblack ticket buy|balance|refund`: the client side of the ticket service.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pennyblack::mail::Message;
use pennyblack::ticket::client::{Client, ClientError};
use pennyblack::ticket::wallet::Wallet;
use pennyblack::ticket::{Carried, TICKET_FIELD};

use crate::Exit;
use crate::args::TicketServiceArgs;
use crate::args::{TicketBalanceArgs, TicketBuyArgs, TicketCommand, TicketRefundArgs};

/// Tickets bought per request while buying with work: an interrupted run loses at most the
/// work of one batch, and each batch is in the wallet as soon as it is bought.
const BATCH: u64 = 25;

pub fn run(c: TicketCommand) -> Result<Exit> {
    match c {
        TicketCommand::Buy(a) => buy(a),
        TicketCommand::Balance(a) => balance(a),
        TicketCommand::Refund(a) => refund(a),
    }
}

/// The client of `--ticket-server` with the token of `--ticket-token-file`.
pub fn client(a: &TicketServiceArgs) -> Result<Client> {
    let (Some(url), Some(file)) = (&a.ticket_server, &a.ticket_token_file) else {
        bail!("give the ticket service: --ticket-server URL and --ticket-token-file FILE");
    };
    if !url.starts_with("http://") {
        bail!(
            "--ticket-server {url}: the client speaks plain HTTP (http://HOST:PORT): reach a \
             TLS-fronted service through a local tunnel or its proxy's local side"
        );
    }
    let token = std::fs::read_to_string(file)
        .with_context(|| format!("--ticket-token-file {}", file.display()))?;
    if token.trim().is_empty() {
        bail!("--ticket-token-file {}: empty", file.display());
    }
    Ok(Client::new(url, &token, a.ticket_timeout))
}

fn buy(a: TicketBuyArgs) -> Result<Exit> {
    let client = client(&a.service)?;
    let wallet = Wallet::open(&a.wallet).with_context(|| "--wallet")?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    if a.count == 0 {
        bail!("COUNT must be at least 1");
    }
    let minter = pennyblack::Minter::new().threads(threads);
    crate::cmd::cancel_on_interrupt(&minter);
    let stop = minter.cancel_flag();
    let top_up = a.top_up || a.every.is_some();
    loop {
        let bought = match buy_once(&a, &client, &wallet, &minter, top_up) {
            Ok(n) => n,
            // In the background a failed round (the service down, a deadline) is reported and
            // tried again next round; interrupted, it stops.
            Err(e) if a.every.is_some() && !stop.load(Ordering::Relaxed) => {
                eprintln!(
                    "pennyblack: ticket buy: {e:#}; trying again in {:?}",
                    a.every.unwrap_or_default()
                );
                0
            }
            Err(e) => return Err(e),
        };
        let (held, soonest) = wallet.count(pennyblack::unix_now())?;
        let soonest = soonest
            .map(|t| format!(", the soonest expiring at {}", crate::cmd::utc(t)))
            .unwrap_or_default();
        // Running in the background, a line per purchase only.
        if bought > 0 || a.every.is_none() {
            println!("bought {bought} ticket(s); the wallet holds {held}{soonest}");
            std::io::stdout().flush()?;
        }
        let Some(every) = a.every else {
            return Ok(Exit::Ok);
        };
        let until = Instant::now() + every;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(Exit::Ok);
            }
            std::thread::sleep(Duration::from_millis(200).min(until - Instant::now()));
        }
    }
}

/// One purchase: what is asked (or what the wallet lacks), in batches, each put in the wallet
/// as soon as it is bought. Returns how many were bought.
fn buy_once(
    a: &TicketBuyArgs,
    client: &Client,
    wallet: &Wallet,
    minter: &pennyblack::Minter,
    top_up: bool,
) -> Result<u64> {
    let info = client.info().context("asking the ticket service")?;
    let trusted = info.trusted_keys().context("the service's key records")?;
    let account = client.balance().context("the account")?;
    if account.role != "sender" {
        bail!(
            "the token is {}'s, a {} account: buying needs a sender account",
            account.account,
            account.role
        );
    }
    let need = if top_up {
        let (held, _) = wallet.count(pennyblack::unix_now())?;
        a.count.saturating_sub(held as u64)
    } else {
        a.count
    };
    let resource = format!("{}@{}", account.account, info.issuer);
    let progress = !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = Instant::now();
    let mut bought = 0u64;
    while bought < need {
        let n = (need - bought).min(BATCH);
        let mut stamps = Vec::new();
        if !a.from_balance {
            for i in 0..n {
                let done = bought + i;
                if progress {
                    let per = started.elapsed().as_secs_f64() / done.max(1) as f64;
                    let eta = if done == 0 {
                        String::new()
                    } else {
                        format!(", about {:.0} s left", per * (need - done) as f64)
                    };
                    eprint!(
                        "\r\x1b[2Kbuying: minting stamp {}/{need} at {} bits{eta}",
                        done + 1,
                        info.price_bits
                    );
                }
                let req = pennyblack::MintRequest::new(resource.as_str()).bits(info.price_bits);
                let stamp = minter.mint(&req).map_err(|e| {
                    if progress {
                        eprint!("\r\x1b[2K");
                    }
                    anyhow::anyhow!("minting for {resource}: {e} ({bought} ticket(s) bought)")
                })?;
                stamps.push(stamp.to_string());
            }
        }
        let (tickets, _) = client
            .buy(n, &stamps, &trusted)
            .with_context(|| format!("buying ({bought} ticket(s) bought before)"))?;
        wallet
            .add(&tickets)
            .with_context(|| format!("--wallet {}", wallet.path().display()))?;
        bought += n;
        if progress {
            eprint!(
                "\r\x1b[2Kbuying: {bought}/{need} ticket(s) in the wallet after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    Ok(bought)
}

fn balance(a: TicketBalanceArgs) -> Result<Exit> {
    let client = client(&a.service)?;
    let b = client.balance().context("the account")?;
    let held = match &a.wallet {
        Some(w) => Some(Wallet::open(w)?.count(pennyblack::unix_now())?),
        None => None,
    };
    if a.json {
        let mut v = serde_json::json!({
            "account": b.account, "role": b.role, "balance": b.balance,
        });
        if let Some((n, soonest)) = held {
            v["wallet"] = serde_json::json!({ "tickets": n, "soonest_expiry": soonest });
        }
        println!("{v}");
    } else {
        println!("account {} ({}): balance {}", b.account, b.role, b.balance);
        if let Some((n, soonest)) = held {
            let s = soonest
                .map(|t| format!(", the soonest expiring at {}", crate::cmd::utc(t)))
                .unwrap_or_default();
            println!("wallet: {n} usable ticket(s){s}");
        }
    }
    Ok(Exit::Ok)
}

fn refund(a: TicketRefundArgs) -> Result<Exit> {
    let client = client(&a.service)?;
    let raw = crate::cmd::read_stdin(a.max_size)?;
    let msg = Message::parse(raw).context("reading the message")?;
    let mut seen = Vec::new();
    let (mut refunded, mut refused) = (0, 0);
    for f in msg
        .fields_named(TICKET_FIELD)
        .take(pennyblack::ticket::message::MAX_TICKET_FIELDS)
    {
        let Ok(c) = Carried::parse(&f.value()) else {
            continue;
        };
        if !a
            .rcpts
            .iter()
            .any(|r| pennyblack::bind::same_address(r, &c.rcpt))
        {
            continue;
        }
        // A ticket field pasted from another message is not this message's to refund.
        let view = pennyblack::postage::BindingView::new(&msg);
        if !pennyblack::bind::Binding::decode(&c.binding).is_some_and(|b| b.matches(&view)) {
            refused += 1;
            println!(
                "not refunded {} (for {}): bound to another message",
                c.ticket.serial_text(),
                c.rcpt
            );
            continue;
        }
        if seen.contains(&c.ticket.serial) {
            continue;
        }
        seen.push(c.ticket.serial);
        let serial = c.ticket.serial_text();
        match client.refund(&c.ticket) {
            Ok(()) => {
                refunded += 1;
                println!(
                    "refunded {serial} (for {}, from {})",
                    c.rcpt, c.ticket.issuer
                );
            }
            Err(ClientError::Refused { status, error, .. }) => {
                refused += 1;
                println!("not refunded {serial} (for {}): {status}: {error}", c.rcpt);
            }
            Err(e) => return Err(e).context("refunding"),
        }
    }
    if refunded + refused == 0 {
        eprintln!("pennyblack: no ticket in this message for the recipient(s) given");
    }
    Ok(if refunded > 0 {
        Exit::Ok
    } else {
        Exit::Invalid
    })
}

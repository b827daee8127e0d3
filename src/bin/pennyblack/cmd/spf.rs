//! `pennyblack spf`: one SPF check (RFC 7208), as `spfquery` does.

use std::io::Write;

use anyhow::Result;
use pennyblack::sender::{SpfRequest, SpfResult, check_spf};

use crate::Exit;
use crate::args::SpfArgs;

pub fn run(a: SpfArgs) -> Result<Exit> {
    let dns = crate::cmd::dns_lookup(a.dns_server, a.dns_timeout)?;
    let v = check_spf(
        &dns,
        &SpfRequest {
            client_ip: a.client_ip,
            helo: a.helo,
            mail_from: a.mail_from,
            receiver: a.receiver,
        },
    );
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    } else {
        let why = v.reason.as_deref().or(v.explanation.as_deref());
        writeln!(
            out,
            "{} ({} {}, domain {}){}",
            v.result.keyword(),
            match v.identity {
                pennyblack::sender::SpfIdentity::MailFrom => "mailfrom",
                pennyblack::sender::SpfIdentity::Helo => "helo",
            },
            v.sender,
            v.domain,
            why.map(|w| format!(": {w}")).unwrap_or_default()
        )?;
    }
    out.flush()?;
    Ok(match v.result {
        SpfResult::Pass => Exit::Ok,
        SpfResult::Fail | SpfResult::SoftFail => Exit::Invalid,
        _ => Exit::NotFullyChecked,
    })
}

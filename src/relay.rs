//! Handing a message to an SMTP server (cargo feature `milter`, through `lettre`): the
//! milter's postage challenges go to a relay, and `pennyblack answer` re-sends a message with
//! its stamps. Plain SMTP: meant for a relay on loopback or the local network, which takes the
//! message on (TLS to the world is the relay's job).

use std::time::Duration;

use lettre::Transport as _;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::extension::ClientId;

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// `HOST:PORT` was not that.
    #[error("{0:?} is not HOST:PORT")]
    BadAddress(String),
    /// An envelope address is not one.
    #[error("not a mail address: {0:?}")]
    BadMailbox(String),
    /// The server refused, or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// `HOST:PORT` split, the port checked.
pub fn parse_host_port(s: &str) -> Result<(String, u16), RelayError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| RelayError::BadAddress(s.to_owned()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .map_err(|_| RelayError::BadAddress(s.to_owned()))?;
    if host.is_empty() || port == 0 {
        return Err(RelayError::BadAddress(s.to_owned()));
    }
    Ok((host.to_owned(), port))
}

/// Sends `message` (header and body, CRLF line endings) to `relay` (`HOST:PORT`), with
/// `MAIL FROM:<from>` (empty: the null sender `<>`) and one `RCPT TO` per recipient, saying
/// `helo` in EHLO. Blocks for at most about `timeout` per command. Returns once the server
/// accepted the message (its 250 to the end of DATA).
pub fn send(
    relay: &str,
    helo: &str,
    from: &str,
    to: &[String],
    message: &[u8],
    timeout: Duration,
) -> Result<(), RelayError> {
    let (host, port) = parse_host_port(relay)?;
    let mailbox = |a: &str| {
        a.parse::<Address>()
            .map_err(|_| RelayError::BadMailbox(a.to_owned()))
    };
    let from = if from.is_empty() {
        None
    } else {
        Some(mailbox(from)?)
    };
    let to = to
        .iter()
        .map(|a| mailbox(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = Envelope::new(from, to).map_err(|e| RelayError::Smtp(e.to_string()))?;
    let transport = SmtpTransport::builder_dangerous(host)
        .port(port)
        .hello_name(ClientId::Domain(helo.to_owned()))
        .timeout(Some(timeout))
        .build();
    transport
        .send_raw(&envelope, message)
        .map(|_| ())
        .map_err(|e| RelayError::Smtp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("127.0.0.1:25").unwrap(),
            ("127.0.0.1".into(), 25)
        );
        assert_eq!(parse_host_port("[::1]:587").unwrap(), ("::1".into(), 587));
        for bad in ["127.0.0.1", ":25", "h:0", "h:x", "h:70000"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    /// A server that is not there: an error, not a hang or a panic.
    #[test]
    fn unreachable_relay_is_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = send(
            &format!("127.0.0.1:{port}"),
            "localhost",
            "",
            &["a@example.org".into()],
            b"Subject: x\r\n\r\nx\r\n",
            Duration::from_secs(2),
        );
        assert!(matches!(r, Err(RelayError::Smtp(_))), "{r:?}");
    }
}

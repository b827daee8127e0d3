//! The milter protocol's side of a [`Session`]: option negotiation, and the MTA's callbacks
//! (macros, connect, envelope, header, body, end of message, abort, QUIT_NC) that fill the
//! session's state and reset it at the boundaries of messages and SMTP sessions.

use async_trait::async_trait;
use miltr_common::actions::{Action, Continue};
use miltr_common::commands::{Body, Connect, Header, Helo, Macro, Mail, Recipient};
use miltr_common::modifications::ModificationResponse;
use miltr_common::optneg::{Capability, OptNeg, Protocol};

use super::session::{Msg, Session, SessionError};
use crate::authres::authserv_id as authserv_id_of;

/// Strips `<...>` and surrounding white space from an envelope address.
fn envelope_address(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
        .to_owned()
}

#[async_trait]
impl miltr_server::Milter for Session {
    type Error = SessionError;

    async fn option_negotiation(
        &mut self,
        theirs: OptNeg,
    ) -> Result<OptNeg, miltr_server::Error<Self::Error>> {
        let ours = OptNeg {
            capabilities: Capability::SMFIF_ADDHDRS
                | Capability::SMFIF_CHGHDRS
                | Capability::SMFIF_QUARANTINE
                | Capability::SMFIF_DELRCPT,
            protocol: Protocol::SMFIP_HDR_LEADSPC,
            ..OptNeg::default()
        };
        let agreed = ours
            .merge_compatible(&theirs)
            .map_err(miltr_common::ProtocolError::CompatibilityError)?;
        self.leading_space = agreed.protocol.contains(Protocol::SMFIP_HDR_LEADSPC);
        self.delete_rcpt = agreed.capabilities.contains(Capability::SMFIF_DELRCPT);
        Ok(agreed)
    }

    async fn macro_(&mut self, m: Macro) -> Result<(), Self::Error> {
        if m.code == b'C' {
            // The macros of a new SMTP session's connect: the earlier session's all go.
            self.reset_session();
            self.connect_macros = true;
        }
        for (k, v) in m.macros() {
            self.macros.insert(
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            );
        }
        Ok(())
    }

    async fn connect(&mut self, c: Connect) -> Result<Action, Self::Error> {
        // A new SMTP session: nothing of an earlier one on this milter connection survives.
        // The connect-stage macros came just before, and were kept only if they started
        // afresh (see `macro_`).
        if !std::mem::take(&mut self.connect_macros) {
            self.reset_session();
        }
        self.msg = Msg::default();
        self.client = c.address().trim_matches(['[', ']']).parse().ok();
        Ok(Continue.into())
    }

    async fn helo(&mut self, h: Helo) -> Result<Action, Self::Error> {
        // The HELO/EHLO name, for SPF; a second HELO in one session replaces the first.
        self.helo = h.helo().trim().to_owned();
        Ok(Continue.into())
    }

    async fn mail(&mut self, m: Mail) -> Result<Action, Self::Error> {
        self.msg = Msg {
            sender: envelope_address(&m.sender()),
            ..Msg::default()
        };
        Ok(Continue.into())
    }

    async fn rcpt(&mut self, r: Recipient) -> Result<Action, Self::Error> {
        let addr = envelope_address(&r.recipient());
        // Distinct texts are distinct recipients, each paid on its own (two spellings of one
        // mailbox that the MTA delivers twice need two stamps).
        if !addr.is_empty() && self.msg.rcpt_set.insert(addr.clone()) {
            self.msg.rcpts.push(addr);
        }
        Ok(Continue.into())
    }

    async fn header(&mut self, h: Header) -> Result<Action, Self::Error> {
        let (name, value) = (h.name().into_owned(), h.value().into_owned());
        if name.eq_ignore_ascii_case("Authentication-Results") {
            self.msg.authres_seen += 1;
            let ours = &self.shared.config.inbound.authserv_id;
            if authserv_id_of(&value).is_some_and(|id| id.eq_ignore_ascii_case(ours)) {
                self.msg.forged.push(self.msg.authres_seen);
            }
        }
        self.msg.size += name.len() + value.len() + 4;
        if self.msg.size > self.shared.config.max_size {
            self.msg.too_big = true;
        }
        if !self.msg.too_big {
            self.msg.headers.push((name, value));
        }
        Ok(Continue.into())
    }

    async fn body(&mut self, b: Body) -> Result<Action, Self::Error> {
        self.msg.size += b.as_bytes().len();
        if self.msg.size > self.shared.config.max_size {
            self.msg.too_big = true;
            self.msg.body = Vec::new();
        }
        if !self.msg.too_big {
            self.msg.body.extend_from_slice(b.as_bytes());
        }
        Ok(Continue.into())
    }

    async fn end_of_body(&mut self) -> Result<ModificationResponse, Self::Error> {
        let result = match self.is_outbound() {
            Some(_) if self.msg.too_big => {
                let qid = self.macro_value("i").to_owned();
                self.shared.log(
                    &qid,
                    format_args!("outbound: larger than --max-size, passed unstamped"),
                );
                Ok(ModificationResponse::empty_continue())
            }
            Some(why) => self.outbound(why).await,
            None => self.inbound().await,
        };
        self.reset_message();
        result
    }

    async fn abort(&mut self) -> Result<(), Self::Error> {
        // Message-scoped macros go; connection-scoped ones ({daemon_name}, j) stay.
        self.reset_message();
        Ok(())
    }

    async fn quit_nc(&mut self) -> Result<(), Self::Error> {
        // The MTA reuses this connection for another SMTP session: forget this one whole.
        self.reset_session();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_ids_and_envelope_addresses() {
        let id = |v: &str| authserv_id_of(v).unwrap_or_default();
        assert_eq!(id(" mx.example.net; dkim=pass"), "mx.example.net");
        assert_eq!(id("mx.example.net 1; none"), "mx.example.net");
        assert_eq!(id("mx(comment); none"), "mx");
        // RFC 8601 spellings of the same id: comments before it (nested, with quoted-pairs),
        // a quoted string.
        assert_eq!(id("(relayed) mx.example.org; x=pass"), "mx.example.org");
        assert_eq!(id(" (a (b) \\) c)\t MX.example.org ; x"), "MX.example.org");
        assert_eq!(id("\"mx.example.org\"; x=pass"), "mx.example.org");
        assert_eq!(id("\"mx.exa\\mple.org\"; x=pass"), "mx.example.org");
        assert_eq!(authserv_id_of("(unclosed mx.example.org; x"), None);
        assert_eq!(envelope_address(" <Bob@Example.org> "), "Bob@Example.org");
        assert_eq!(envelope_address("bob@example.org"), "bob@example.org");
        assert_eq!(envelope_address("<>"), "");
    }
}

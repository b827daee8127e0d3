//! A minimal milter-protocol client (the MTA's side, version 6), for tests that need exact
//! control over what the MTA sends: macros, reused connections (QUIT_NC), header values Postfix
//! would not send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What the filter answered at the end of a message.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// Fields inserted or added: (name, value).
    pub(crate) added: Vec<(String, String)>,
    /// Fields changed (an empty value deletes): (index, name, value).
    pub(crate) changed: Vec<(u32, String, String)>,
    /// The final action: `c` continue, `y` reply code (with its text), `r` reject, `t` tempfail.
    pub(crate) action: char,
    /// The reply text of a `y`.
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn added_named(&self, name: &str) -> Vec<&str> {
        self.added
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub(crate) struct Client {
    s: TcpStream,
}

impl Client {
    /// Connects and negotiates: add and change header fields, every step sent.
    pub(crate) fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut c = Client { s };
        let mut data = Vec::new();
        data.extend_from_slice(&6u32.to_be_bytes());
        data.extend_from_slice(&(0x01u32 | 0x10).to_be_bytes()); // ADDHDRS | CHGHDRS
        data.extend_from_slice(&0u32.to_be_bytes());
        c.send(b'O', &data);
        let (cmd, _) = c.read();
        assert_eq!(cmd, b'O', "option negotiation");
        c
    }

    fn send(&mut self, cmd: u8, data: &[u8]) {
        let len = (data.len() + 1) as u32;
        let mut p = len.to_be_bytes().to_vec();
        p.push(cmd);
        p.extend_from_slice(data);
        self.s.write_all(&p).unwrap();
    }

    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).unwrap();
        let mut p = vec![0u8; u32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut p).unwrap();
        (p[0], p[1..].to_vec())
    }

    fn expect_continue(&mut self, what: &str) {
        let (cmd, data) = self.read();
        assert_eq!(cmd, b'c', "{what}: {:?}", String::from_utf8_lossy(&data));
    }

    /// Macros for the stage of command `stage` (`C`, `M`, ...).
    pub(crate) fn macros(&mut self, stage: u8, pairs: &[(&str, &str)]) {
        let mut d = vec![stage];
        for (k, v) in pairs {
            d.extend_from_slice(k.as_bytes());
            d.push(0);
            d.extend_from_slice(v.as_bytes());
            d.push(0);
        }
        self.send(b'D', &d);
    }

    /// A new SMTP session from `ip` (IPv4).
    pub(crate) fn smtp_connect(&mut self, ip: &str) {
        let mut d = b"client.example\0".to_vec();
        d.push(b'4');
        d.extend_from_slice(&25000u16.to_be_bytes());
        d.extend_from_slice(ip.as_bytes());
        d.push(0);
        self.send(b'C', &d);
        self.expect_continue("connect");
    }

    /// One message: envelope, header fields, body; returns the filter's answer.
    pub(crate) fn message(
        &mut self,
        from: &str,
        rcpts: &[&str],
        header: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.send(b'M', format!("<{from}>\0").as_bytes());
        self.expect_continue("mail");
        for r in rcpts {
            self.send(b'R', format!("<{r}>\0").as_bytes());
            self.expect_continue("rcpt");
        }
        for (n, v) in header {
            self.send(b'L', format!("{n}\0{v}\0").as_bytes());
            self.expect_continue("header");
        }
        self.send(b'N', b"");
        self.expect_continue("end of header");
        for chunk in body.chunks(65535) {
            self.send(b'B', chunk);
            self.expect_continue("body");
        }
        self.send(b'E', b"");
        let mut reply = Reply::default();
        loop {
            let (cmd, data) = self.read();
            let strs = |d: &[u8]| -> Vec<String> {
                d.split(|&b| b == 0)
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            };
            match cmd {
                b'h' => {
                    let f = strs(&data);
                    reply.added.push((f[0].clone(), f[1].clone()));
                }
                b'i' => {
                    let f = strs(&data[4..]);
                    reply.added.push((f[0].clone(), f[1].clone()));
                }
                b'm' => {
                    let idx = u32::from_be_bytes(data[..4].try_into().unwrap());
                    let f = strs(&data[4..]);
                    reply.changed.push((idx, f[0].clone(), f[1].clone()));
                }
                b'y' => {
                    reply.action = 'y';
                    reply.text = String::from_utf8_lossy(&data).into_owned();
                    return reply;
                }
                b'c' | b'a' | b'r' | b't' | b'd' => {
                    reply.action = cmd as char;
                    return reply;
                }
                other => panic!("unexpected milter reply {:?}", other as char),
            }
        }
    }

    /// QUIT_NC: the connection is kept for another SMTP session.
    pub(crate) fn quit_nc(&mut self) {
        self.send(b'K', b"");
    }

    pub(crate) fn quit(mut self) {
        self.send(b'Q', b"");
    }
}

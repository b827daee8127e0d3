//! A DNS zone served by dnsmasq on a loopback port, for the tests that look up DKIM keys, SPF
//! and DMARC records through a real DNS server. It has no upstream: every name it does not
//! publish is NXDOMAIN (nothing leaves the machine, nothing waits), except the names given as
//! silent, which are forwarded to a socket that never answers (a DNS failure: temperror).
//! Missing dnsmasq is a failure, not a skip (`.ci/run` installs Debian's dnsmasq-base).

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dnsmasq, stopped by PID when dropped.
pub struct Zone {
    child: Child,
    /// The UDP (and TCP) port it answers on, at 127.0.0.1.
    pub port: u16,
    /// Where the silent names are forwarded: bound, never read.
    _silent: UdpSocket,
}

/// What the zone publishes.
#[derive(Default)]
pub struct Records {
    /// (name, text): one TXT record each (a name may have several). The text is split into
    /// character-strings of at most 200 octets; it must not hold a comma (dnsmasq's separator).
    pub txt: Vec<(String, String)>,
    /// (name, IPv4 address): A records, so that the name exists.
    pub a: Vec<(String, String)>,
    /// Names (and everything under them) whose queries are never answered.
    pub silent: Vec<String>,
}

impl Records {
    pub fn txt(&mut self, name: &str, text: &str) -> &mut Self {
        assert!(
            !text.contains(','),
            "dnsmasq splits TXT records at commas: {text}"
        );
        self.txt.push((name.to_owned(), text.to_owned()));
        self
    }
    pub fn a(&mut self, name: &str, ip: &str) -> &mut Self {
        self.a.push((name.to_owned(), ip.to_owned()));
        self
    }
    pub fn silent(&mut self, name: &str) -> &mut Self {
        self.silent.push(name.to_owned());
        self
    }
    /// Each line of a keys file (`NAME RECORD`, as `pennyblack keygen` prints) as a TXT record.
    pub fn keys(&mut self, keys_file: &str) -> &mut Self {
        for line in keys_file.lines().filter(|l| !l.trim().is_empty()) {
            let (name, record) = line.split_once(' ').unwrap();
            self.txt(name, record.trim());
        }
        self
    }
}

impl Zone {
    /// dnsmasq on a free loopback port serving `records`. The port is free for UDP when picked
    /// but dnsmasq binds TCP too, and another test may take it in between: then it exits at
    /// once, and another port is tried (five in all).
    pub fn start(records: &Records) -> Zone {
        for _ in 0..4 {
            if let Some(zone) = Zone::try_start(records) {
                return zone;
            }
        }
        Zone::try_start(records).expect("dnsmasq exited at start on five ports")
    }

    fn try_start(records: &Records) -> Option<Zone> {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = if Path::new("/usr/sbin/dnsmasq").exists() {
            "/usr/sbin/dnsmasq"
        } else {
            "dnsmasq"
        };
        let mut cmd = Command::new(bin);
        cmd.args([
            "-k",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            // every domain is local: what is not published does not exist
            "--local=/#/",
        ])
        .arg(format!("--port={port}"));
        for (name, text) in &records.txt {
            let parts: Vec<String> = text
                .as_bytes()
                .chunks(200)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            cmd.arg(format!("--txt-record={name},{}", parts.join(",")));
        }
        for (name, ip) in &records.a {
            cmd.arg(format!("--host-record={name},{ip}"));
        }
        for name in &records.silent {
            cmd.arg(format!("--server=/{name}/127.0.0.1#{silent_port}"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the DNS tests need dnsmasq (Debian dnsmasq-base; `bash .ci/run` installs it): {e}"
                )
            });
        let mut zone = Zone {
            child,
            port,
            _silent: silent,
        };
        zone.wait_until_answering().then_some(zone)
    }

    /// `127.0.0.1:PORT`, as `--dns-server` takes it.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Asks for a name until dnsmasq answers (any answer), for at most 10 seconds; `false` when
    /// dnsmasq exited instead (its port taken).
    fn wait_until_answering(&mut self) -> bool {
        // ID 0x7070, recursion desired, one question: ready.invalid TXT IN.
        let mut q = vec![0x70, 0x70, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["ready", "invalid"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 16, 0, 1]);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 512];
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                eprintln!("dnsmasq exited at start ({status}) on port {}", self.port);
                return false;
            }
            let _ = sock.send_to(&q, ("127.0.0.1", self.port));
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && n >= 2
                && buf[..2] == [0x70, 0x70]
            {
                return true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "dnsmasq did not answer on port {}",
                self.port
            );
        }
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

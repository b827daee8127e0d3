//! The harness of the milter test: a Postfix instance of its own, milter processes, an SMTP
//! client, and helpers to read the held messages.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{hashcash, pennyblack};
use crate::zone::{Records, Zone};

pub(super) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// `program` as root: directly when we are root, else through `sudo -n` (as `.ci/run`'s apt).
pub(super) fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(super) fn wait_for_port(port: u16, what: &str, log: &Path) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A `pennyblack milter` process, stopped by PID.
pub(super) struct Milter {
    pub(super) child: Child,
    /// Where it listens, in Postfix's notation.
    pub(super) addr: String,
    pub(super) log: PathBuf,
}

impl Milter {
    /// On a loopback TCP port. The port is free when picked, but another test's server may
    /// take it before the milter binds it: the milter then exits, and another port is tried.
    /// Ready once it says it listens (connecting could reach that other server).
    pub(super) fn start(dir: &Path, name: &str, args: &[&str]) -> Milter {
        for attempt in 0..5 {
            let port = free_port();
            let mut m = Milter::spawn(dir, name, format!("inet:127.0.0.1:{port}"), args);
            let started = Instant::now();
            loop {
                if m.log().contains("pennyblack milter: listening on") {
                    return m;
                }
                if m.child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "{name} did not listen on {port}; its log:\n{}",
                    m.log()
                );
                std::thread::sleep(Duration::from_millis(25));
            }
            assert!(
                attempt < 4,
                "{name} exited at start five times; its log:\n{}",
                m.log()
            );
        }
        unreachable!("returned or asserted above")
    }

    /// On a Unix socket in `dir`, writable by Postfix's `postfix` user.
    pub(super) fn start_unix(dir: &Path, name: &str, args: &[&str]) -> Milter {
        let sock = dir.join(format!("{name}.sock"));
        let args = [args, &["--socket-mode", "666"]].concat();
        let m = Milter::spawn(dir, name, format!("unix:{}", sock.display()), &args);
        let started = Instant::now();
        while !m.log().contains("listening") {
            assert!(started.elapsed() < Duration::from_secs(20), "{}", m.log());
            std::thread::sleep(Duration::from_millis(25));
        }
        m
    }

    pub(super) fn spawn(dir: &Path, name: &str, addr: String, args: &[&str]) -> Milter {
        let log = dir.join(format!("{name}.log"));
        let child = pennyblack()
            .args(["milter", "--listen", &addr])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Milter { child, addr, log }
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// SIGTERM by PID.
    pub(super) fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub(super) fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                started.elapsed() < within,
                "the milter did not stop within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Milter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Postfix instance of its own (config, queue and log under `dir`), loopback only, holding
/// every message it accepts.
pub(super) struct Postfix {
    pub(super) conf: PathBuf,
    pub(super) queue: PathBuf,
    pub(super) maillog: PathBuf,
    pub(super) running: bool,
}

impl Postfix {
    /// `services`: (port, milter address, extra `-o` options) per SMTP listener.
    pub(super) fn start(dir: &Path, services: &[(u16, &str, &str)]) -> Postfix {
        let ok = Command::new("postconf")
            .arg("-d")
            .arg("mail_version")
            .output();
        assert!(
            ok.is_ok_and(|o| o.status.success()),
            "the milter test needs Debian's postfix (run `bash .ci/run`, which installs it)"
        );
        let conf = dir.join("etc");
        let queue = dir.join("queue");
        let data = dir.join("data");
        let maillog = dir.join("maillog");
        for d in [&conf, &queue, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Postfix's daemons run as the postfix user: it must reach the queue and own `data`.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = as_root("chown")
            .args(["postfix:postfix", data.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
        let main_cf = format!(
            include_str!("../../data/postfix-main.cf"),
            queue = queue.display(),
            data = data.display(),
            maillog = maillog.display(),
            prefix = dir.display(),
            milter = services[0].1,
        );
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        let mut master_cf = String::new();
        for (port, milter, extra) in services {
            master_cf.push_str(&format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n  -o smtpd_milters={milter}\n"
            ));
            for o in extra.split_whitespace() {
                master_cf.push_str(&format!("  -o {o}\n"));
            }
        }
        master_cf.push_str(include_str!("../../data/postfix-master.cf"));
        std::fs::write(conf.join("master.cf"), master_cf).unwrap();
        let pf = Postfix {
            conf,
            queue,
            maillog,
            running: true,
        };
        let out = pf.postfix(&["start"]);
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&pf.maillog).unwrap_or_default()
        );
        for (port, _, _) in services {
            wait_for_port(*port, "postfix smtpd", &pf.maillog);
        }
        pf
    }

    pub(super) fn postfix(&self, args: &[&str]) -> std::process::Output {
        as_root("postfix")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    pub(super) fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.queue.join("pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every held message, as (queue id, header and body with CRLF line endings).
    pub(super) fn held(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        // The hold folder belongs to the postfix user (mode 0700): list it as root.
        let hold = self.queue.join("hold");
        let ls = as_root("ls").arg(&hold).output().unwrap();
        assert!(ls.status.success(), "cannot list {}", hold.display());
        for id in String::from_utf8(ls.stdout).unwrap().split_whitespace() {
            let o = as_root("postcat")
                .arg("-c")
                .arg(&self.conf)
                .args(["-b", "-h"])
                .arg(hold.join(id))
                .output()
                .unwrap();
            assert!(o.status.success(), "postcat failed");
            let crlf = String::from_utf8(o.stdout).unwrap().replace('\n', "\r\n");
            out.push((id.to_owned(), crlf.into_bytes()));
        }
        out
    }

    /// The envelope recipients of each held message `pick` says yes to (`postcat -e`).
    pub(super) fn held_recipients(&self, pick: impl Fn(&str) -> bool) -> Vec<Vec<String>> {
        let hold = self.queue.join("hold");
        self.held()
            .into_iter()
            .filter(|(_, m)| pick(&String::from_utf8_lossy(m)))
            .map(|(id, _)| {
                let o = as_root("postcat")
                    .arg("-c")
                    .arg(&self.conf)
                    .arg("-e")
                    .arg(hold.join(&id))
                    .output()
                    .unwrap();
                assert!(o.status.success(), "postcat -e failed");
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.strip_prefix("recipient: "))
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    /// Takes the held message whose Message-ID is `id` off the queue (waiting briefly for it)
    /// and returns it; a second copy held at the same time is an error.
    pub(super) fn take(&self, id: &str) -> Vec<u8> {
        let needle = format!("Message-ID: <{id}>");
        self.take_where(id, |m| m.contains(&needle))
    }

    /// Takes the one held message for which `pick` says yes off the queue (waiting up to 20 s
    /// for it) and returns it.
    pub(super) fn take_where(&self, what: &str, pick: impl Fn(&str) -> bool) -> Vec<u8> {
        let started = Instant::now();
        loop {
            let found: Vec<_> = self
                .held()
                .into_iter()
                .filter(|(_, m)| pick(&String::from_utf8_lossy(m)))
                .collect();
            assert!(found.len() < 2, "{what} held twice");
            if let Some((qid, m)) = found.into_iter().next() {
                let del = as_root("postsuper")
                    .arg("-c")
                    .arg(&self.conf)
                    .args(["-d", &qid, "hold"])
                    .output()
                    .unwrap();
                assert!(del.status.success(), "postsuper -d {qid}");
                return m;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what} is not on hold; maillog:\n{}",
                std::fs::read_to_string(&self.maillog).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many held messages `pick` says yes to.
    pub(super) fn count_where(&self, pick: impl Fn(&str) -> bool) -> usize {
        self.held()
            .iter()
            .filter(|(_, m)| pick(&String::from_utf8_lossy(m)))
            .count()
    }

    /// Stops the master by PID and waits until it is gone.
    pub(super) fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let Some(pid) = self.master_pid() else { return };
        let _ = as_root("kill").args(["-TERM", &pid.to_string()]).status();
        let started = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists()
            && started.elapsed() < Duration::from_secs(15)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "postfix master {pid} did not stop"
        );
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            if let Some(pid) = self.master_pid() {
                let _ = as_root("kill").args(["-KILL", &pid.to_string()]).status();
            }
            let _ = self.postfix(&["stop"]);
        }
    }
}

/// A minimal SMTP client: returns the reply to the end of DATA (or to the first command that
/// was refused), as "CODE text".
pub(super) fn send(port: u16, from: &str, rcpts: &[&str], message: &str) -> String {
    send_from("127.0.0.1", port, from, rcpts, message)
}

/// `send` from another loopback address (`127.0.0.2`: a client outside `--internal`).
pub(super) fn send_from(
    source: &str,
    port: u16,
    from: &str,
    rcpts: &[&str],
    message: &str,
) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&src.into()).unwrap();
    let dst: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&dst.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "connection closed; so far: {all}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all.trim_end().to_owned();
            }
        }
    };
    let greeting = reply();
    assert!(greeting.starts_with("220"), "{greeting}");
    let cmd = |w: &mut TcpStream, c: &str| w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
    cmd(&mut w, "EHLO client.test.example");
    let r1 = reply();
    assert!(r1.starts_with("250"), "{r1}");
    cmd(&mut w, &format!("MAIL FROM:<{from}>"));
    let r2 = reply();
    if !r2.starts_with("250") {
        return r2;
    }
    for rc in rcpts {
        cmd(&mut w, &format!("RCPT TO:<{rc}>"));
        let r3 = reply();
        if !r3.starts_with("250") {
            return r3;
        }
    }
    cmd(&mut w, "DATA");
    let r4 = reply();
    if !r4.starts_with("354") {
        return r4;
    }
    let mut body = String::new();
    for line in message.replace("\r\n", "\n").split_terminator('\n') {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    w.write_all(body.as_bytes()).unwrap();
    let end = reply();
    cmd(&mut w, "QUIT");
    let _ = r.read_to_end(&mut Vec::new());
    end
}

/// `send`, which must be accepted (250).
pub(super) fn send_ok(port: u16, from: &str, rcpts: &[&str], message: &str) {
    let r = send(port, from, rcpts, message);
    assert!(r.starts_with("250"), "{r}");
}

pub(super) fn message(id: &str, to: &str) -> String {
    format!(
        "From: Alice <alice@example.org>\r\nTo: {to}\r\nSubject: milter test {id}\r\n\
         Date: Fri, 27 Nov 2026 08:00:00 +0000\r\nMessage-ID: <{id}>\r\n\r\n\
         Hello,\r\n.a line that starts with a dot\r\n\r\nbye\r\n"
    )
}

/// The stamps of `msg`: its `X-Hashcash` values without white space (a stamp is folded where
/// the line is full; readers drop the white space).
pub(super) fn stamps_in(msg: &[u8]) -> Vec<String> {
    header_values(msg, "X-Hashcash")
        .into_iter()
        .map(|s| s.split_whitespace().collect())
        .collect()
}

pub(super) fn header_values(msg: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut out: Vec<String> = Vec::new();
    let mut current = false;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if current {
                // Unfold: the line break goes, its white space stays (as RFC 5322 says).
                out.last_mut().unwrap().push_str(&line.replace('\t', " "));
            }
        } else if let Some((n, v)) = line.split_once(':') {
            current = n.eq_ignore_ascii_case(name);
            if current {
                out.push(v.trim().to_owned());
            }
        }
    }
    out
}

/// `hashcash -c` with its own double-spend database: 0 valid, 1 invalid.
pub(super) fn hashcash_check(db: &Path, bits: u32, rcpt: &str, stamp: &str) -> i32 {
    hashcash()
        .args(["-c", "-q", "-d", "-f"])
        .arg(db)
        .args(["-b", &bits.to_string(), "-r", rcpt, stamp])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

/// The Postfix test's site, set up once: a signing key and its record, a DNS zone, four
/// milters, and one Postfix with an SMTP service for each role, all under a temporary folder.
///
/// Milter A stamps (SHA-1, 16 bits: hashcash version 1) and signs outbound mail, and adds
/// verdicts to inbound mail. Milter B stamps what cannot be minted in time (40 bits in 2 s) and
/// refuses inbound mail without a 16-bit stamp (`--reject-with reject`: 550). Milter C, on a
/// Unix socket, is inbound only and tempfails mail without a 16-bit stamp (the default, 451).
/// Milter D is inbound only, takes its keys from the DNS, and acts on DMARC policies
/// (`--dmarc-enforce`).
///
/// The postage challenge loop: milter S (the sender, example.org) stamps too little (8 bits)
/// and keeps what it sends (`--keep-sent`); milter R (the receiver, example.net) tempfails mail
/// without a 16-bit stamp and challenges authenticated senders, through the MX of milter A as
/// its relay, signing its challenges as example.net (whose key is in the keys file and the
/// zone).
///
/// Every milter checks SPF and DMARC (on by default) through the zone, a dnsmasq on loopback
/// (`zone.rs`): SPF for example.org and example.com authorises 127.0.0.1 (not 127.0.0.2, the
/// outsider's address), example.org's DMARC policy is reject, example.com's quarantine, the
/// signing key is published, and `_dmarc.tempfail.example.org` is never answered. Nothing is
/// asked of any other DNS server.
pub(super) struct Site {
    // Fields drop in order: Postfix first, then the milters, then the zone, then the folder.
    pub(super) postfix: Postfix,
    pub(super) a: Milter,
    pub(super) b: Milter,
    /// Kept running: milter C serves `mx_tempfail`.
    _c: Milter,
    /// Kept running: milter D serves `mx_dmarc`.
    _d: Milter,
    /// Kept running: milter S, the sender of the challenge loop (`sub_keep`).
    _s: Milter,
    /// The receiver of the challenge loop (`mx_challenge`).
    pub(super) r: Milter,
    /// Kept running: milter T, a sender paying with tickets from `wallet` (`sub_ticket`).
    _t: Milter,
    /// Milter V, a receiver cancelling tickets at `ticketd` (`mx_ticket`).
    pub(super) v: Milter,
    /// The ticket service of milters T and V, with accounts `alice` (sender) and `mx`
    /// (receiver) whose tokens are in `ticket_token(NAME)`.
    pub(super) ticketd: crate::ticketd::Ticketd,
    /// Milter T's wallet (empty at the start).
    pub(super) wallet: PathBuf,
    /// Submission through milter T.
    pub(super) sub_ticket: u16,
    /// MX through milter V: tempfails mail without a 16-bit stamp or a ticket.
    pub(super) mx_ticket: u16,
    _zone: Zone,
    /// Submission through milter A (an originating daemon).
    pub(super) sub: u16,
    /// MX through milter A.
    pub(super) mx: u16,
    /// Submission through milter B, which cannot mint in time.
    pub(super) sub_slow: u16,
    /// MX through milter B, which refuses (550 5.7.1, `--reject-with reject`).
    pub(super) mx_strict: u16,
    /// MX through milter C, which tempfails (451 4.7.1, the default).
    pub(super) mx_tempfail: u16,
    /// MX through milter D, which refuses a DMARC fail under p=reject (550 5.7.1) and
    /// quarantines one under p=quarantine.
    pub(super) mx_dmarc: u16,
    /// MX through milter D where Postfix holds nothing by itself: a message is held only when
    /// the milter quarantines it (every other service holds every message it accepts).
    pub(super) mx_dmarc_nohold: u16,
    /// Submission through milter S: 8-bit stamps, messages kept in `sent`.
    pub(super) sub_keep: u16,
    /// MX through milter R: tempfails mail without a 16-bit stamp, challenges.
    pub(super) mx_challenge: u16,
    /// The sent-message store of milter S.
    pub(super) sent: PathBuf,
    /// The example.org signing key (selector s1).
    pub(super) key: String,
    /// The keys file holding the signing keys' records (example.org s1, example.net s2).
    pub(super) keys: String,
    tmp: tempfile::TempDir,
}

impl Site {
    pub(super) fn start() -> Site {
        assert!(
            is_root()
                || Command::new("sudo")
                    .args(["-n", "true"])
                    .status()
                    .is_ok_and(|s| s.success()),
            "Postfix's master runs as root: run the suite as root, or with passwordless sudo"
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // A signing key and its record, as an operator would make them.
        let (key, keys) = signing_key(dir);
        // The receiver's own key (example.net, selector s2), for its challenges.
        let net_key = dir.join("s2.pem");
        let out = pennyblack()
            .args([
                "keygen",
                "--selector",
                "s2",
                "--domain",
                "example.net",
                "--out",
            ])
            .arg(&net_key)
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut all = std::fs::read(&keys).unwrap();
        all.extend_from_slice(&out.stdout);
        std::fs::write(&keys, all).unwrap();
        let mut records = Records::default();
        records
            .keys(&std::fs::read_to_string(&keys).unwrap())
            .txt("example.org", "v=spf1 ip4:127.0.0.1 -all")
            .txt("example.com", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.example.org", "v=DMARC1; p=reject")
            .txt("_dmarc.example.com", "v=DMARC1; p=quarantine")
            .silent("_dmarc.tempfail.example.org");
        let zone = Zone::start(&records);
        let dns = zone.server();
        let spent_a = dir.join("spent-a.redb");
        let spent_b = dir.join("spent-b.redb");
        let common = [
            "--keys",
            keys.as_str(),
            "--authserv-id",
            "mx.test.example",
            "--min-bits",
            "16",
            "--dns-server",
            &dns,
            "--dns-timeout",
            "1",
        ];
        let a = Milter::start(
            dir,
            "milter-a",
            &[
                &common[..],
                &["--alg", "sha1", "--bits", "16", "--domain", "example.org"],
                &["--internal", "127.0.0.1/32", "--originating", "ORIGINATING"],
                &[
                    "--sign",
                    &format!("s1:{key}"),
                    "--spent",
                    spent_a.to_str().unwrap(),
                ],
            ]
            .concat(),
        );
        let b = Milter::start(
            dir,
            "milter-b",
            &[
                &common[..],
                &["--alg", "sha256", "--bits", "40", "--mint-timeout", "2s"],
                &["--internal", "127.0.0.1/32", "--originating", "ORIGINATING"],
                &["--reject-below", "16", "--reject-with", "reject"],
                &["--spent", spent_b.to_str().unwrap()],
            ]
            .concat(),
        );
        let c = Milter::start_unix(
            dir,
            "milter-c",
            &[
                &common[..],
                &["--inbound-only", "--no-spent"],
                &["--reject-below", "16"],
            ]
            .concat(),
        );
        let d = Milter::start(
            dir,
            "milter-d",
            &[
                "--authserv-id",
                "mx.test.example",
                "--inbound-only",
                "--no-spent",
                "--dns-server",
                &dns,
                "--dns-timeout",
                "1",
                "--dmarc-enforce",
            ],
        );
        let sent = dir.join("sent");
        let s = Milter::start(
            dir,
            "milter-s",
            &[
                &common[..],
                &["--alg", "sha256", "--bits", "8", "--domain", "example.org"],
                &["--internal", "127.0.0.1/32", "--originating", "ORIGINATING"],
                &["--sign", &format!("s1:{key}"), "--no-spent"],
                &["--keep-sent", sent.to_str().unwrap()],
            ]
            .concat(),
        );
        // Milter R's relay is the MX of milter A: its port is chosen now.
        let mx = free_port();
        let spent_r = dir.join("spent-r.redb");
        let challenge_key = dir.join("challenge.key");
        let r = Milter::start(
            dir,
            "milter-r",
            &[
                &common[..],
                &["--inbound-only", "--reject-below", "16"],
                &["--spent", spent_r.to_str().unwrap()],
                &["--challenge-relay", &format!("127.0.0.1:{mx}")],
                &["--challenge-key", challenge_key.to_str().unwrap()],
                &["--sign", &format!("s2:{}", net_key.display())],
                &["--domain", "example.net"],
            ]
            .concat(),
        );
        // The ticket loop: ticketd, a sender paying with tickets (T), a receiver cancelling (V).
        let ticket_dir = dir.join("ticketd");
        std::fs::create_dir(&ticket_dir).unwrap();
        let ticketd = crate::ticketd::Ticketd::start(&ticket_dir, "30d");
        let tokens = [
            ("alice", ticketd.account("alice", "sender")),
            ("mx", ticketd.receiver("mx", &["example.net"])),
        ];
        for (name, token) in tokens {
            std::fs::write(ticket_dir.join(format!("{name}.token")), token).unwrap();
        }
        let wallet = dir.join("wallet");
        let t = Milter::start(
            dir,
            "milter-t",
            &[
                &common[..],
                &["--alg", "sha256", "--bits", "8", "--domain", "example.org"],
                &["--internal", "127.0.0.1/32", "--originating", "ORIGINATING"],
                &["--sign", &format!("s1:{key}"), "--no-spent"],
                &["--wallet", wallet.to_str().unwrap()],
            ]
            .concat(),
        );
        let spent_v = dir.join("spent-v.redb");
        let mx_token = ticket_dir.join("mx.token");
        let v = Milter::start(
            dir,
            "milter-v",
            &[
                &common[..],
                &["--inbound-only", "--reject-below", "16"],
                &["--spent", spent_v.to_str().unwrap()],
                &["--ticket-server", &ticketd.url],
                &["--ticket-token-file", mx_token.to_str().unwrap()],
            ]
            .concat(),
        );
        let (sub_ticket, mx_ticket) = (free_port(), free_port());
        let (sub, sub_slow, mx_strict) = (free_port(), free_port(), free_port());
        let (sub_keep, mx_challenge) = (free_port(), free_port());
        let (mx_tempfail, mx_dmarc, mx_dmarc_nohold) = (free_port(), free_port(), free_port());
        let originating = "milter_macro_daemon_name=ORIGINATING";
        let postfix = Postfix::start(
            dir,
            &[
                (sub, &a.addr, originating),
                (mx, &a.addr, ""),
                (sub_slow, &b.addr, originating),
                (mx_strict, &b.addr, ""),
                (mx_tempfail, &c.addr, ""),
                (mx_dmarc, &d.addr, ""),
                (mx_dmarc_nohold, &d.addr, "smtpd_end_of_data_restrictions="),
                (sub_keep, &s.addr, originating),
                (mx_challenge, &r.addr, ""),
                (sub_ticket, &t.addr, originating),
                (mx_ticket, &v.addr, ""),
            ],
        );
        Site {
            postfix,
            a,
            b,
            _c: c,
            _d: d,
            _s: s,
            r,
            _t: t,
            v,
            ticketd,
            wallet,
            sub_ticket,
            mx_ticket,
            _zone: zone,
            sub,
            mx,
            sub_slow,
            mx_strict,
            mx_tempfail,
            mx_dmarc,
            mx_dmarc_nohold,
            sub_keep,
            mx_challenge,
            sent,
            key,
            keys,
            tmp,
        }
    }

    /// The site's folder.
    pub(super) fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The token file of the ticket account `name` (`alice` or `mx`).
    pub(super) fn ticket_token(&self, name: &str) -> PathBuf {
        self.dir().join("ticketd").join(format!("{name}.token"))
    }
}

/// A signing key and its record in `dir`: (key path, keys file path).
pub(super) fn signing_key(dir: &Path) -> (String, String) {
    let key = dir.join("s1.pem");
    let out = pennyblack()
        .args([
            "keygen",
            "--selector",
            "s1",
            "--domain",
            "example.org",
            "--out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, &out.stdout).unwrap();
    (
        key.to_str().unwrap().to_owned(),
        keys.to_str().unwrap().to_owned(),
    )
}

//! A private PostgreSQL cluster on a loopback port for the ticket service's tests: made with
//! initdb in a temporary folder (as the `postgres` user when the tests run as root, since
//! PostgreSQL refuses to run as root), trust authentication, stopped and removed when dropped.
//! Missing PostgreSQL is a failure, not a skip (`.ci/run` installs Debian's postgresql).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    pub port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// The folder holding initdb and postgres: PATH, else Debian's versioned folder.
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Ok(real) = std::fs::canonicalize(&p) {
            return real.parent().unwrap().to_owned();
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect(
        "the ticket tests need PostgreSQL (Debian's postgresql; `bash .ci/run` installs it)",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` with `args`, as the postgres user when we are root.
fn as_owner(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let out = as_owner(&bin, "initdb")
            .args(["-A", "trust", "-U", "pennyblack", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = as_owner(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Postgres {
            child,
            port,
            data,
            _dir: dir,
        };
        let started = Instant::now();
        while postgres_ready(&pg.url()).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://pennyblack@127.0.0.1:{}/postgres", self.port)
    }
}

fn postgres_ready(url: &str) -> Result<(), postgres::Error> {
    postgres::Client::connect(url, postgres::NoTls).map(drop)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT to the postmaster (not to runuser): PostgreSQL's fast shutdown.
        if let Some(pid) = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
        {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

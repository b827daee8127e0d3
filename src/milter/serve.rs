//! Listening: TCP or Unix socket, one task per connection, graceful stop.

use std::sync::Arc;
use std::time::Duration;

use super::{Listen, Session, Shared};

/// Serves connections until `shutdown` completes, then stops accepting and waits up to
/// `grace` for the connections in progress (a message being minted or checked) to finish.
/// Connections still open after that are closed; the MTA then applies its default action
/// for them (Postfix: `milter_default_action`, tempfail unless configured otherwise), so no
/// message is lost. Returns when everything has stopped; a Unix socket file is removed.
pub async fn serve(
    listen: &Listen,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    ready: impl FnOnce(),
) -> std::io::Result<()> {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let mut tasks = tokio::task::JoinSet::new();
    enum L {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    let listener = match listen {
        Listen::Inet(a) => L::Tcp(tokio::net::TcpListener::bind(a).await?),
        Listen::Unix(p) => {
            remove_stale_socket(p)?;
            let l = tokio::net::UnixListener::bind(p)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                p,
                std::fs::Permissions::from_mode(shared.config.socket_mode),
            )?;
            L::Unix(l)
        }
    };
    ready();
    tokio::pin!(shutdown);
    loop {
        let accepted = match &listener {
            L::Tcp(l) => tokio::select! {
                () = &mut shutdown => break,
                r = l.accept() => r.map(|(s, _)| Conn::Tcp(no_delay(s))),
            },
            L::Unix(l) => tokio::select! {
                () = &mut shutdown => break,
                r = l.accept() => r.map(|(s, _)| Conn::Unix(s)),
            },
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: say so, breathe, go on.
                eprintln!("pennyblack milter: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            let mut session = Session::new(shared);
            let mut server = miltr_server::Server::default_postfix(&mut session);
            let r = match stream {
                Conn::Tcp(s) => server.handle_connection(&mut s.compat()).await,
                Conn::Unix(s) => server.handle_connection(&mut s.compat()).await,
            };
            if let Err(e) = r {
                eprintln!("pennyblack milter: connection ended: {e}");
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    if let Listen::Unix(p) = listen {
        let _ = std::fs::remove_file(p);
    }
    if !tasks.is_empty() {
        eprintln!(
            "pennyblack milter: stopping: waiting up to {}s for {} connection(s)",
            grace.as_secs(),
            tasks.len()
        );
    }
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if !tasks.is_empty() {
        eprintln!(
            "pennyblack milter: closing {} idle or slow connection(s)",
            tasks.len()
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// A TCP connection from the MTA with Nagle's algorithm off. At the end of a message the filter
/// writes its actions and its final reply as separate small packets: with Nagle's algorithm
/// each later one waits for the MTA's delayed ACK of the first (about 40 ms on Linux), so every
/// message over `inet:` stalled that long.
fn no_delay(s: tokio::net::TcpStream) -> tokio::net::TcpStream {
    if let Err(e) = s.set_nodelay(true) {
        eprintln!("pennyblack milter: TCP_NODELAY: {e}");
    }
    s
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Removes a socket file left by a process that is gone; refuses to touch anything else or a
/// socket someone still listens on.
fn remove_stale_socket(p: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(p).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{}: another process listens there", p.display()),
                ));
            }
            std::fs::remove_file(p)
        }
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{}: exists and is not a socket", p.display()),
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn connections_from_the_mta_have_nagle_off() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let client = tokio::net::TcpStream::connect(addr);
            let ((s, _), _c) = tokio::join!(async { l.accept().await.unwrap() }, client);
            assert!(!s.nodelay().unwrap(), "Linux starts with Nagle on");
            assert!(super::no_delay(s).nodelay().unwrap());
        });
    }
}

#[cfg(all(test, feature = "dns"))]
mod dns_in_runtime {
    /// The milter looks DKIM keys up from `spawn_blocking` threads of its own runtime, while
    /// `DnsLookup` drives a runtime of its own: that must answer (here: fail cleanly, no server),
    /// not panic with "cannot start a runtime from within a runtime".
    #[test]
    fn dns_lookup_works_from_a_blocking_thread_of_another_runtime() {
        use crate::dkim::{DnsLookup, KeyLookup};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap();
        let lookup = DnsLookup::with_server(server, std::time::Duration::from_millis(200)).unwrap();
        let answer = rt.block_on(async move {
            tokio::task::spawn_blocking(move || lookup.txt("s1._domainkey.example.org").is_err())
                .await
        });
        assert!(answer.unwrap(), "a silent server must give an error");
    }

    /// The milter stops by dropping its configuration, key lookup included, inside its runtime:
    /// that must not panic ("Cannot drop a runtime in a context where blocking is not allowed").
    #[test]
    fn dns_lookup_can_be_dropped_inside_a_runtime() {
        use crate::dkim::DnsLookup;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = "127.0.0.1:9".parse().unwrap();
        let lookup = DnsLookup::with_server(server, std::time::Duration::from_millis(200)).unwrap();
        rt.block_on(async move { drop(lookup) });
    }
}

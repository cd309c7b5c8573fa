//! Hostile endpoints for the security suite, on loopback: a listener that records every
//! connection attempt, a git "server" that answers 401 to collect whatever credentials a
//! client offers, and a redirector that sends every request to another base URL.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A TCP listener that accepts, records and closes every connection (it speaks no protocol:
/// a TLS hello, an SSH banner exchange or an HTTP request all end at once).
pub struct ConnectionRecorder {
    pub port: u16,
    count: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectionRecorder {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let count = Arc::new(Mutex::new(0));
        let seen = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *seen.lock().expect("lock") += 1;
                drop(stream);
            }
        });
        Self { port, count, task }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.count.lock().expect("lock")
    }
}

impl Drop for ConnectionRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The port of a `http://127.0.0.1:<port>` URL of [`crate::serve`].
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the URL")
}

/// An HTTP server that answers every request with 401 and `WWW-Authenticate: Basic`, and
/// records the `Authorization` header of each request (`None` when there was none).
pub struct CredentialTrap {
    pub url: String,
    pub port: u16,
    seen: Arc<Mutex<Vec<Option<String>>>>,
    server: tokio::task::JoinHandle<()>,
}

impl CredentialTrap {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().fallback(trap).with_state(seen.clone());
        let (url, server) = crate::serve(app).await;
        let port = port_of(&url);
        Self {
            url,
            port,
            seen,
            server,
        }
    }

    /// Every request's `Authorization` header, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for CredentialTrap {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn trap(State(seen): State<Arc<Mutex<Vec<Option<String>>>>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    seen.lock().expect("lock").push(auth);
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
    )
        .into_response()
}

/// An HTTP server that redirects every request (path and query kept) to `target`.
pub struct Redirector {
    pub url: String,
    pub port: u16,
    server: tokio::task::JoinHandle<()>,
}

impl Redirector {
    pub async fn start(target: &str) -> Self {
        let target = Arc::new(target.trim_end_matches('/').to_owned());
        let app = axum::Router::new().fallback(redirect).with_state(target);
        let (url, server) = crate::serve(app).await;
        let port = port_of(&url);
        Self { url, port, server }
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn redirect(State(target): State<Arc<String>>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{target}{path}"))],
    )
        .into_response()
}

/// A host name (not `localhost`) that resolves to a loopback address on this machine, from
/// /etc/hosts or the machine's own name: to show that the worker checks resolved addresses,
/// not only the names it is given. Fails loudly when there is none.
pub fn loopback_alias() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut candidates: Vec<String> = hosts
        .lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let ip: std::net::IpAddr = fields.next()?.parse().ok()?;
            ip.is_loopback()
                .then(|| fields.map(str::to_owned).collect::<Vec<_>>())
        })
        .flatten()
        .collect();
    if let Ok(out) = std::process::Command::new("hostname").output() {
        candidates.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    candidates
        .into_iter()
        .filter(|n| !n.is_empty() && n != "localhost" && !n.ends_with(".localhost"))
        .find(|n| {
            use std::net::ToSocketAddrs;
            (n.as_str(), 80)
                .to_socket_addrs()
                .is_ok_and(|mut addrs| addrs.any(|a| openclaw_common::egress::is_internal(a.ip())))
        })
        .expect(
            "no host name other than localhost resolves to an internal address here (add one \
             to /etc/hosts, e.g. `127.0.0.1 loopback-alias`)",
        )
}

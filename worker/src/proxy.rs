//! The egress proxy of sandboxed commands: the one door from the sandbox to the network.
//!
//! A command's sandbox lets it open TCP connections to this proxy's port only (Landlock; see
//! `openclaw_sandbox::Policy::connect_port`), and its environment names the proxy
//! (`HTTPS_PROXY`, `HTTP_PROXY`), which pip, npm, cargo, git and curl follow. The proxy takes
//! `CONNECT host:port` (HTTPS) and absolute-form `http://` requests; it admits a host when the
//! current phase's list allows it and the repositories' egress policy does (no internal
//! address unless `OPENCLAW_ALLOW_PRIVATE_REPOS`), judged on the addresses the name resolves
//! to now — and connects to exactly those addresses, so a second, different DNS answer cannot
//! redirect it. Each refused host is recorded for the task's events and the model.
//!
//! Nothing of a request but its host and port is recorded or logged: a URL's path and query
//! may hold a token.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openclaw_common::egress::{HostList, Remote, is_internal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read (request line and headers).
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// How long a client has to send its request head, and the proxy to connect upstream.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection the proxy refused: what a user would add to the allowed hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub host: String,
    pub port: u16,
    pub reason: String,
}

impl Refusal {
    /// `host:port` (`[v6]:port`).
    pub fn target(&self) -> String {
        Remote {
            host: self.host.clone(),
            port: self.port,
        }
        .to_string()
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.target(), self.reason)
    }
}

/// The proxy of one task, listening on 127.0.0.1 until dropped.
pub struct EgressProxy {
    port: u16,
    shared: Arc<Shared>,
    /// The accept loop; it owns the connections (aborted with it).
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// The hosts of the current phase (setup or agent).
    allowed: Mutex<HostList>,
    allow_private: bool,
    refused: Mutex<Vec<Refusal>>,
}

impl EgressProxy {
    /// Starts a proxy allowing nothing yet; `allow_private` as the repositories' policy.
    pub async fn start(allow_private: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            allowed: Mutex::new(HostList::default()),
            allow_private,
            refused: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            port,
            shared,
            accept,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The proxy's URL, as `HTTPS_PROXY` names it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes `hosts` the allowed ones from now on (a phase's list; entries without a port
    /// mean 443).
    pub fn allow(&self, hosts: &HostList) {
        if let Ok(mut allowed) = self.shared.allowed.lock() {
            *allowed = hosts.with_default_port(443);
        }
    }

    /// The connections refused since the last call, each host and port once.
    pub fn take_refused(&self) -> Vec<Refusal> {
        let mut taken = self
            .shared
            .refused
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        taken.retain(|r| seen.insert((r.host.clone(), r.port)));
        taken
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(serve(client, shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "egress proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What a client asked for.
enum Request {
    /// `CONNECT host:port`: a tunnel.
    Tunnel(Remote),
    /// An absolute-form `http://` request: forwarded with its head rewritten.
    Forward { remote: Remote, head: Vec<u8> },
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let (head, rest) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(read)) => read,
        Ok(Err(why)) => return respond(&mut client, 400, "Bad Request", &why).await,
        Err(_) => return,
    };
    let request = match parse(&head) {
        Ok(request) => request,
        Err(why) => return respond(&mut client, 400, "Bad Request", &why).await,
    };
    let remote = match &request {
        Request::Tunnel(remote) | Request::Forward { remote, .. } => remote.clone(),
    };
    let addrs = match shared.admit(&remote).await {
        Ok(addrs) => addrs,
        Err(reason) => {
            tracing::info!(host = %remote.host, port = remote.port, %reason, "egress proxy refused a host");
            let text = format!("openclaw: {remote} refused: {reason}");
            if let Ok(mut refused) = shared.refused.lock() {
                refused.push(Refusal {
                    host: remote.host.clone(),
                    port: remote.port,
                    reason,
                });
            }
            return respond(&mut client, 403, "Forbidden", &text).await;
        }
    };
    let mut upstream = match connect(&addrs).await {
        Ok(stream) => stream,
        Err(e) => {
            let text = format!("openclaw: cannot connect to {remote}: {e}");
            return respond(&mut client, 502, "Bad Gateway", &text).await;
        }
    };
    let opened = match &request {
        Request::Tunnel(_) => client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_ok(),
        Request::Forward { head, .. } => upstream.write_all(head).await.is_ok(),
    };
    if !opened || upstream.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

impl Shared {
    /// The addresses to connect to for `remote`, or why not.
    async fn admit(&self, remote: &Remote) -> Result<Vec<SocketAddr>, String> {
        let allowed = self
            .allowed
            .lock()
            .map(|a| a.clone())
            .map_err(|_| "the proxy's host list is unavailable".to_owned())?;
        if !allowed.allows(remote) {
            let now = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.to_string()
            };
            return Err(format!(
                "not an allowed host (allowed now: {now}; a profile's [agent.sandbox.network] or the repository's .openclaw.toml [network] lists hosts)"
            ));
        }
        if !self.allow_private
            && let Some(why) = remote.internal_by_name()
        {
            return Err(why);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((remote.host.as_str(), remote.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", remote.host))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{} resolves to no address", remote.host));
        }
        if !self.allow_private
            && let Some(internal) = addrs.iter().find(|a| is_internal(a.ip()))
        {
            return Err(format!(
                "{} resolves to an internal address ({})",
                remote.host,
                internal.ip()
            ));
        }
        Ok(addrs)
    }
}

async fn connect(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        }
    }
    Err(last)
}

/// Reads up to the end of the request head: (the head, what came after it).
async fn read_head(client: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("the request ended before its head did".into());
        }
        let searched_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf[searched_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            let end = searched_from + at + 4;
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(format!("a request head larger than {MAX_HEAD_BYTES} bytes"));
        }
    }
}

/// Headers that belong to the hop to the proxy, not to the request forwarded.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

fn parse(head: &[u8]) -> Result<Request, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("an incomplete request head".into()),
        Err(e) => return Err(format!("not an HTTP request: {e}")),
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err("no request line".into());
    };
    if method == "CONNECT" {
        // authority-form: host:port, [v6]:port.
        let (host, port) = target
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("CONNECT to {target:?}: not host:port"))?;
        let remote = Remote::new(host, port).ok_or("CONNECT names no host")?;
        return Ok(Request::Tunnel(remote));
    }
    let url = url::Url::parse(target).map_err(|_| {
        "only CONNECT and absolute http:// requests go through this proxy".to_owned()
    })?;
    if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
        return Err(
            "only http:// URLs without credentials are forwarded; https goes by CONNECT".into(),
        );
    }
    let remote = Remote::of_url(url.as_str()).ok_or("the URL names no host")?;
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let version = if req.version == Some(0) { "1.0" } else { "1.1" };
    // The Host the server sees is the URL's, the host admitted: a client's own Host header
    // would let it reach another site behind the same address (a CDN's).
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut out = format!("{method} {path} HTTP/{version}\r\nHost: {authority}\r\n").into_bytes();
    for header in req.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        if HOP_HEADERS.contains(&name.as_str()) || name == "host" {
            continue;
        }
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value);
        out.extend_from_slice(b"\r\n");
    }
    // One request per upstream connection: the client opens another for its next request.
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Request::Forward { remote, head: out })
}

async fn respond(client: &mut TcpStream, status: u16, phrase: &str, text: &str) {
    let body = format!("{text}\n");
    let response = format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

#[cfg(test)]
mod tests;

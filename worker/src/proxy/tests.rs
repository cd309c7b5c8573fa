//! The proxy against real sockets: an upstream server on 127.0.0.1 (private addresses
//! allowed, as in the suite) or refused (as on a cluster).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::*;

fn hosts(list: &[&str]) -> HostList {
    HostList::parse_patterns(list.iter().copied()).unwrap()
}

/// An upstream that answers each connection's request head with `seen:` and the head it got.
async fn upstream() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let _ = tx.send(head.clone());
                let body = format!("seen:{head}");
                let mut stream = reader.into_inner();
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (port, rx)
}

/// Sends `request` to the proxy and reads everything it answers.
async fn ask(proxy: &EgressProxy, request: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn a_tunnel_to_an_allowed_host_carries_bytes_both_ways() {
    let (port, mut seen) = upstream().await;
    let proxy = EgressProxy::start(true).await.unwrap();
    proxy.allow(&hosts(&[&format!("localhost:{port}")]));
    let answer = ask(
        &proxy,
        &format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\nGET /inside HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK"),
        "{answer}"
    );
    assert!(
        answer.ends_with("seen:GET /inside HTTP/1.1\r\nHost: x\r\n"),
        "{answer}"
    );
    assert_eq!(
        seen.recv().await.unwrap(),
        "GET /inside HTTP/1.1\r\nHost: x\r\n"
    );
    assert!(proxy.take_refused().is_empty());
}

/// The upstream sees the admitted host as Host, whatever the client sent (a CDN would route a
/// forged Host to another site).
#[tokio::test]
async fn a_plain_http_request_is_forwarded_in_origin_form_without_proxy_headers() {
    let (port, mut seen) = upstream().await;
    let proxy = EgressProxy::start(true).await.unwrap();
    proxy.allow(&hosts(&[&format!("localhost:{port}")]));
    let answer = ask(
        &proxy,
        &format!("GET http://localhost:{port}/simple/pkg/?q=1 HTTP/1.1\r\nHost: evil.example\r\nProxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let head = seen.recv().await.unwrap();
    assert_eq!(
        head,
        format!(
            "GET /simple/pkg/?q=1 HTTP/1.1\r\nHost: localhost:{port}\r\nAccept: */*\r\nConnection: close\r\n"
        )
    );
}

#[tokio::test]
async fn a_host_not_allowed_is_refused_recorded_once_and_never_connected() {
    let (port, mut seen) = upstream().await;
    let proxy = EgressProxy::start(true).await.unwrap();
    proxy.allow(&hosts(&["pypi.org"]));
    for _ in 0..2 {
        let answer = ask(
            &proxy,
            &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{answer}");
        assert!(
            answer.contains("not an allowed host (allowed now: pypi.org:443"),
            "{answer}"
        );
    }
    let answer = ask(
        &proxy,
        &format!("GET http://localhost:{port}/x HTTP/1.1\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // Another port of an allowed host is another host.
    let answer = ask(&proxy, "CONNECT pypi.org:8443 HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let refused: Vec<String> = proxy
        .take_refused()
        .iter()
        .map(|r| format!("{}:{}", r.host, r.port))
        .collect();
    assert_eq!(
        refused,
        [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            "pypi.org:8443".into()
        ]
    );
    assert!(proxy.take_refused().is_empty(), "taken once");
    // The upstream's first connection is the one allowed now: the refused never reached it.
    proxy.allow(&hosts(&[&format!("localhost:{port}")]));
    let answer = ask(
        &proxy,
        &format!("GET http://localhost:{port}/allowed HTTP/1.1\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(seen.recv().await.unwrap().starts_with("GET /allowed "));
}

#[tokio::test]
async fn internal_addresses_are_refused_by_name_and_by_what_a_name_resolves_to() {
    let (port, _seen) = upstream().await;
    // A name of this machine that resolves to loopback and is not "localhost": what a
    // rebinding or hostile DNS answer looks like.
    let hosts_file = std::fs::read_to_string("/etc/hosts").expect("/etc/hosts");
    let local_name = hosts_file
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let ip = f.next()?;
            ip.starts_with("127.").then(|| f.find(|n| !n.contains("localhost")))?
        })
        .next()
        .expect("/etc/hosts maps a name other than localhost to 127.x (the machine's name), which this test resolves");
    let proxy = EgressProxy::start(false).await.unwrap();
    proxy.allow(&hosts(&[
        "localhost",
        "127.0.0.1",
        "169.254.169.254",
        local_name,
    ]));
    for (target, why) in [
        ("localhost:443", "is the local machine"),
        ("127.0.0.1:443", "internal address"),
        ("169.254.169.254:443", "internal address"),
        (
            &format!("{local_name}:443") as &str,
            "resolves to an internal address (127.",
        ),
    ] {
        let answer = ask(&proxy, &format!("CONNECT {target} HTTP/1.1\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{target}: {answer}");
        assert!(answer.contains(why), "{target}: {answer}");
    }
    assert_eq!(proxy.take_refused().len(), 4);
    let _ = port;
}

#[tokio::test]
async fn what_is_not_a_proxy_request_is_a_bad_request() {
    let proxy = EgressProxy::start(true).await.unwrap();
    proxy.allow(&hosts(&["localhost"]));
    for (request, why) in [
        (
            "GET /relative HTTP/1.1\r\n\r\n",
            "only CONNECT and absolute http://",
        ),
        (
            "GET https://localhost/ HTTP/1.1\r\n\r\n",
            "https goes by CONNECT",
        ),
        (
            "GET http://user:pw@localhost/ HTTP/1.1\r\n\r\n",
            "without credentials",
        ),
        ("CONNECT localhost HTTP/1.1\r\n\r\n", "not host:port"),
        ("\x16\x03\x01 hello\r\n\r\n", "not an HTTP request"),
    ] {
        let answer = ask(&proxy, request).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request"),
            "{request:?}: {answer}"
        );
        assert!(answer.contains(why), "{request:?}: {answer}");
    }
    let huge = format!(
        "GET http://localhost/ HTTP/1.1\r\nX: {}\r\n",
        "a".repeat(MAX_HEAD_BYTES + 10)
    );
    let answer = ask(&proxy, &huge).await;
    assert!(answer.contains("larger than"), "{answer}");
    assert!(
        proxy.take_refused().is_empty(),
        "malformed requests name no host to allow"
    );
}

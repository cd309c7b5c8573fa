//! `TestApp`: one bridge per test, in-process on port 0, over its own nats-server.

use std::collections::HashMap;

use openclaw_bridge::{Application, BridgeConfig};
use openclaw_common::ids::TaskId;
use openclaw_common::store::{self, Stores};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::nats::{NatsCluster, NatsServer};
use crate::sse::SseReader;

/// Configures a [`TestApp`] before it starts.
pub struct TestAppBuilder {
    env: HashMap<String, String>,
    token: Option<String>,
    nats: Option<NatsServer>,
    cluster: Option<NatsCluster>,
}

impl TestAppBuilder {
    /// Requires this bearer token on the API.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self.env
            .insert("OPENCLAW_GATEWAY_TOKEN".into(), token.to_owned());
        self
    }

    /// Sets one bridge environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    /// Makes the bridge start workers itself (`OPENCLAW_DISPATCH=local`), running `worker_bin`
    /// with the test worker settings ([`crate::worker::worker_env`]) reaching the model at
    /// `llm_url`. The settings go through the bridge's environment, as in production.
    pub fn local_dispatch(mut self, worker_bin: &str, llm_url: &str) -> Self {
        self = self
            .env("OPENCLAW_DISPATCH", "local")
            .env("OPENCLAW_WORKER_BIN", worker_bin)
            .env("OPENCLAW_DISPATCH_POLL_SECS", "0.3");
        for (k, v) in crate::worker::worker_env("unused", llm_url) {
            if k != "NATS_URL" {
                self = self.env(&k, v);
            }
        }
        // The children log to the test's stderr, which cargo does not capture: keep them quiet.
        self.env("RUST_LOG", "warn")
    }

    /// Runs over an existing server instead of a new one.
    pub fn nats(mut self, nats: NatsServer) -> Self {
        self.nats = Some(nats);
        self
    }

    /// Runs over a three-node cluster, with every stream and bucket replicated on all three
    /// (`OPENCLAW_STREAM_REPLICAS=3`) and `NATS_URL` naming all three.
    pub fn cluster(mut self, cluster: NatsCluster) -> Self {
        self.cluster = Some(cluster);
        self.env("OPENCLAW_STREAM_REPLICAS", "3")
    }

    /// Starts the bridge and waits until it reports ready.
    pub async fn spawn(self) -> TestApp {
        let mut app = self.spawn_unready().await;
        app.wait_ready().await;
        app
    }

    /// Starts the bridge without waiting for NATS (which may be down).
    pub async fn spawn_unready(mut self) -> TestApp {
        crate::init();
        let cluster = self.cluster.take();
        let nats = match &cluster {
            // The test's single-server handles point at node 0; the bridge gets all three.
            Some(c) => c.nodes[0].alias(),
            None => self.nats.take().unwrap_or_else(NatsServer::start),
        };
        let url = cluster
            .as_ref()
            .map_or_else(|| nats.url(), NatsCluster::url);
        self.env.insert("NATS_URL".into(), url);
        let mut app = TestApp {
            base: String::new(),
            port: 0,
            token: self.token,
            http: reqwest::Client::new(),
            stores: None,
            js: None,
            nats,
            cluster,
            env: self.env,
            stop: None,
            handle: None,
        };
        app.start_bridge().await;
        app
    }
}

/// A running bridge and the handles a test needs to look behind it.
pub struct TestApp {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
    /// Direct access to the stores, to check what the bridge stored; open once ready.
    stores: Option<Stores>,
    /// The test's own JetStream handle (the stores keep theirs to themselves).
    js: Option<async_nats::jetstream::Context>,
    pub nats: NatsServer,
    /// The cluster, for a bridge started with [`TestAppBuilder::cluster`].
    pub cluster: Option<NatsCluster>,
    /// The bridge's environment, kept to start it again.
    env: HashMap<String, String>,
    /// The bridge's port, kept across restarts (0 before the first start).
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Bridge defaults for tests: loopback, no dispatch, file://, http:// and loopback repos allowed,
    /// fast keep-alives.
    pub fn builder() -> TestAppBuilder {
        let env = [
            ("OPENCLAW_LISTEN", "127.0.0.1:0"),
            ("OPENCLAW_DISPATCH", "none"),
            ("OPENCLAW_ALLOW_FILE_REPOS", "true"),
            ("OPENCLAW_ALLOW_HTTP_REPOS", "true"),
            ("OPENCLAW_ALLOW_PRIVATE_REPOS", "true"),
            ("OPENCLAW_SSE_KEEPALIVE_SECS", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        TestAppBuilder {
            env,
            token: None,
            nats: None,
            cluster: None,
        }
    }

    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn stores(&self) -> &Stores {
        self.stores
            .as_ref()
            .expect("stores are open once the app is ready")
    }

    /// The task's first event, as its first writer stores it (for tests that play a worker).
    pub async fn queued_event(&self, id: &TaskId) -> openclaw_common::event::TaskEvent {
        self.stores()
            .record_of(id)
            .await
            .expect("read the task's record")
            .expect("the task exists")
            .queued_event()
    }

    /// Writes task `id`'s status record as `change` leaves it (created from the task's message
    /// when it has none), as a worker or the bridge would: for tests that play one of them.
    pub async fn set_record(
        &self,
        id: &TaskId,
        mut change: impl FnMut(&mut openclaw_common::status::TaskStatus),
    ) -> openclaw_common::status::TaskStatus {
        let stores = self.stores();
        let current = stores
            .record_of(id)
            .await
            .expect("read the task's record")
            .expect("the task exists");
        stores
            .status
            .update_or_create(&current, |s| {
                change(s);
                openclaw_common::lifecycle::Update::Write(())
            })
            .await
            .expect("write the task's record")
            .0
    }

    /// JetStream, to look at what the bridge stored.
    pub fn js(&self) -> &async_nats::jetstream::Context {
        self.js.as_ref().expect("the app is ready (wait_ready)")
    }

    /// Waits for `/ready`, then opens the test's own handles on the stores.
    pub async fn wait_ready(&mut self) {
        crate::eventually(15, "the bridge to report ready", || async {
            let r = self.get("/ready").await;
            (r.status() == 200).then_some(())
        })
        .await;
        let client = match &self.cluster {
            Some(c) => c.client().await,
            None => self.nats.client().await,
        };
        let js = store::context(client);
        self.stores = Some(Stores::open(js.clone()).await.expect("open stores"));
        self.js = Some(js);
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.authed(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("GET reaches the bridge")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.authed(self.http.post(format!("{}{path}", self.base)).json(body))
            .send()
            .await
            .expect("POST reaches the bridge")
    }

    /// Submits a task and returns its id, asserting the 202.
    pub async fn submit(&self, body: &Value) -> TaskId {
        let r = self.post_json("/v1/tasks", body).await;
        let status = r.status();
        let json: Value = r.json().await.expect("JSON body");
        assert_eq!(status, 202, "submit failed: {json}");
        TaskId::parse(json["id"].as_str().expect("id in 202")).expect("a task id")
    }

    pub async fn status(&self, id: &TaskId) -> Value {
        let r = self.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(r.status(), 200);
        r.json().await.expect("status JSON")
    }

    /// Submits a task on a public example repository no worker will reach (for tests of what
    /// happens around a task rather than its work).
    pub async fn submit_example(&self) -> TaskId {
        self.submit(&serde_json::json!({"repo": "https://example.com/o/r.git", "prompt": "p"}))
            .await
    }

    /// The task's first waiting reason (why no worker has started it), waited for up to `secs`.
    pub async fn waiting_reason(&self, id: &TaskId, secs: u64) -> String {
        crate::eventually(secs, &format!("a waiting reason on task {id}"), || async {
            self.status(id).await["waiting_reason"]
                .as_str()
                .map(str::to_owned)
        })
        .await
    }

    /// Opens the task's SSE stream, optionally resuming after `last_event_id`.
    pub async fn events(&self, id: &TaskId, last_event_id: Option<u64>) -> SseReader {
        let mut req = self.authed(self.http.get(format!("{}/v1/tasks/{id}/events", self.base)));
        if let Some(last) = last_event_id {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let r = req.send().await.expect("events request");
        assert_eq!(r.status(), 200, "events: {:?}", r.text().await);
        SseReader::new(r)
    }

    /// Starts the bridge (again) on its port.
    async fn start_bridge(&mut self) {
        let config = BridgeConfig::from_env(&self.env).expect("valid test bridge config");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the bridge port");
        let app = Application::build(config, listener)
            .await
            .expect("build the bridge");
        self.port = app.port();
        self.base = format!("http://127.0.0.1:{}", self.port);
        let (stop, stopped) = oneshot::channel::<()>();
        self.handle = Some(tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        })));
        self.stop = Some(stop);
    }

    /// Stops the bridge gracefully and starts a new one on the same port and NATS server.
    pub async fn restart_bridge(&mut self) {
        self.stop_bridge().await;
        self.start_bridge_again().await;
    }

    /// Starts a new bridge after [`TestApp::stop_bridge`], on the same port and NATS server,
    /// and waits until it is ready.
    pub async fn start_bridge_again(&mut self) {
        self.start_bridge().await;
        self.wait_ready().await;
    }

    /// Stops the bridge gracefully; NATS and the test's own stores stay.
    /// [`TestApp::start_bridge_again`] starts a new one.
    pub async fn stop_bridge(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            crate::within(30, "the bridge to shut down", handle)
                .await
                .expect("bridge task")
                .expect("bridge served without error");
        }
    }

    /// Stops the bridge gracefully and waits for it.
    pub async fn shutdown(mut self) {
        self.stop_bridge().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

//! Start-up, the router, and graceful shutdown.

use openclaw_common::backoff::Backoff;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use openclaw_common::store::{self, Stores};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::require_bearer;
use crate::config::{BridgeConfig, DispatchMode};
use crate::dispatch::{KubernetesLauncher, LocalLauncher, Reconciler};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::routes::{compat, events, health, openai, tasks};
use crate::state::{AppState, Shared};

/// How long shutdown waits for in-flight requests and worker processes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// How often the tokens file is checked for a change (a mounted Secret is updated in place
/// within a minute or so of its change).
const TOKENS_RELOAD_EVERY: Duration = Duration::from_secs(2);

/// A bridge bound to its listener, ready to serve.
pub struct Application {
    /// The listener, bound by the caller (tests bind port 0).
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// Background work (JetStream setup, dispatcher) that shutdown waits for.
    tasks: tokio::task::JoinSet<()>,
    /// Exports the submit spans; flushed at shutdown.
    trace_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Nats(#[from] openclaw_common::store::StoreError),
    #[error(transparent)]
    Forge(#[from] openclaw_common::forge::ForgeError),
    #[error("OPENCLAW_TOKENS_FILE: {0}")]
    Tokens(#[from] crate::principals::TokensError),
}

impl Application {
    /// Connects to NATS (retrying in the background if it is not up yet), starts JetStream
    /// setup and the dispatcher, and builds the router. Does not serve until [`run_until`].
    ///
    /// [`run_until`]: Application::run_until
    pub async fn build(config: BridgeConfig, listener: TcpListener) -> Result<Self, BuildError> {
        let client = store::connect(
            &config.nats,
            "openclaw-bridge",
            openclaw_common::names::BRIDGE_USER,
            true,
        )
        .await?;
        let trace_provider = config.tracing.provider("openclaw-bridge");
        let (config_github, config_gitlab) = (config.github.clone(), config.gitlab.clone());
        let gateway = config.auth_token.as_ref().map(|t| t.expose().to_owned());
        let principals = Arc::new(match &config.tokens_file {
            Some(path) => crate::principals::Principals::with_file(gateway.as_deref(), path)?,
            None => crate::principals::Principals::gateway(gateway.as_deref()),
        });
        let state = AppState::new(Shared {
            tracer: trace_provider
                .as_ref()
                .map(|p| opentelemetry::trace::TracerProvider::tracer(p, "openclaw-bridge")),
            config: Arc::new(config),
            client,
            stores: Arc::new(OnceLock::new()),
            dispatch_wakeup: Arc::new(Notify::new()),
            setup_wakeup: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
            metrics: Arc::default(),
            started: std::time::Instant::now(),
            started_unix: openclaw_common::now().unix_timestamp(),
            last_activity: Arc::new(std::sync::Mutex::new(openclaw_common::now())),
            dispatch_waiting: Arc::default(),
            principals: principals.clone(),
            github: match &config_github {
                Some(github) => Some(Arc::new(crate::webhooks::door::Door::github(
                    github.clone(),
                )?)),
                None => None,
            },
            gitlab: match &config_gitlab {
                Some(gitlab) => Some(Arc::new(crate::webhooks::door::Door::gitlab(
                    gitlab.clone(),
                )?)),
                None => None,
            },
        });
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(set_up_jetstream(state.clone()));
        if state.config.over_limit_queue {
            tasks.spawn(crate::intake::release_parked(state.clone()));
        }
        tasks.spawn(principals.watch(
            TOKENS_RELOAD_EVERY,
            state.shutdown.clone(),
            crate::audit::token_reload(state.clone()),
        ));
        tasks.spawn(crate::advisories::watch(state.clone()));
        if let Some(callout) = state.config.callout.clone() {
            let context = crate::callout::CalloutContext {
                client: state.client.clone(),
                stores: state.stores.clone(),
                shutdown: state.shutdown.clone(),
            };
            tasks.spawn(crate::callout::serve(context, callout));
        }
        tasks.spawn({
            let (client, stop) = (state.client.clone(), state.shutdown.clone());
            async move {
                tokio::select! {
                    () = store::log_server_moves(client) => {}
                    () = stop.cancelled() => {}
                }
            }
        });
        let dispatch = crate::dispatch::DispatchContext {
            config: state.config.clone(),
            client: state.client.clone(),
            stores: state.stores.clone(),
            dispatch_wakeup: state.dispatch_wakeup.clone(),
            dispatch_waiting: state.dispatch_waiting.clone(),
            metrics: state.metrics.clone(),
            shutdown: state.shutdown.clone(),
        };
        match state.config.dispatch {
            DispatchMode::Local => {
                let cfg = &state.config.local;
                let launcher = LocalLauncher::new(state.config.clone());
                let reconciler =
                    Reconciler::new(dispatch, launcher, cfg.max_workers, cfg.poll_interval);
                tasks.spawn(reconciler.run());
            }
            DispatchMode::Kubernetes => {
                let cfg = &state.config.kubernetes;
                match KubernetesLauncher::new(state.config.clone(), state.metrics.clone()) {
                    Ok(launcher) => {
                        let reconciler =
                            Reconciler::new(dispatch, launcher, cfg.max_jobs, cfg.poll_interval);
                        tasks.spawn(reconciler.run());
                    }
                    Err(e) => tracing::error!(error = %e, "kubernetes dispatch is off"),
                }
            }
            DispatchMode::None => {}
        }
        Ok(Self {
            trace_provider,
            router: router(state.clone()),
            listener,
            state,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` resolves, then stops accepting, ends open event streams, and
    /// waits (bounded) for in-flight requests and background work.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let token = self.state.shutdown.clone();
        let signal = {
            let token = token.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down");
                token.cancel();
            }
        };
        let limits = self.state.config.connections;
        crate::serve::serve(self.listener, self.router, limits, signal, SHUTDOWN_GRACE).await?;
        token.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("background work did not stop in time; abandoning it");
            self.tasks.abort_all();
        }
        if let Some(provider) = self.trace_provider.take() {
            let flushed = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            });
            let _ = tokio::time::timeout(Duration::from_secs(10), flushed).await;
        }
        Ok(())
    }
}

/// Creates the streams, consumers and buckets, retrying with backoff while NATS is down, then
/// publishes the stores to the handlers. Keeps reconciling afterwards — every
/// `jetstream_recheck`, and at once when `/ready` finds a stream missing — so a NATS server
/// that came back empty gets its streams again without a bridge restart.
async fn set_up_jetstream(state: AppState) {
    let js = store::context(state.client.clone());
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let attempt = async {
            store::ensure_all(&js, &state.config.nats, &state.config.agents).await?;
            Stores::open(js.clone()).await
        };
        tracing::debug!("reconciling JetStream objects");
        let wait = match attempt.await {
            Ok(stores) => {
                if state.stores.get().is_none() {
                    // Subscribed before any handler sees the stores: no task ends unseen.
                    // (Failing that, the watcher subscribes on its own a second later.)
                    let changes = match stores.status.changes().await {
                        Ok(changes) => changes.boxed(),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot watch task statuses yet");
                            futures_util::stream::empty().boxed()
                        }
                    };
                    tokio::spawn(crate::outcomes::watch(state.clone(), changes));
                }
                if state.stores.set(stores).is_ok() {
                    tracing::info!("JetStream streams, consumers and buckets are ready");
                    state.dispatch_wakeup.notify_one();
                }
                backoff.succeeded();
                state.config.jetstream_recheck
            }
            Err(e) => {
                let wait = backoff.failed();
                tracing::warn!(error = %e, retry_in = ?wait, "JetStream setup failed");
                wait
            }
        };
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = state.setup_wakeup.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The HTTP API.
pub fn router(state: AppState) -> Router {
    // Routes that answer promptly get the request timeout; a non-streaming chat completion
    // waits for its whole task and does not.
    let prompt = Router::new()
        .route("/status", get(compat::status))
        .route("/message", post(compat::message))
        .route("/v1/models", get(openai::models))
        .route("/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::get))
        .route("/v1/tasks/{id}/events", get(events::stream))
        .route("/v1/tasks/{id}/diff", get(tasks::diff))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{id}/replay", post(tasks::replay))
        .route("/v1/audit", get(crate::routes::audit::list))
        .route("/v1/usage", get(crate::routes::usage::usage))
        .route_layer(RequestTimeout::layer(state.config.request_timeout));
    let protected = Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .merge(prompt)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), require_bearer));
    // Probes and scrapes come without the token (kubelet and Prometheus send none); they
    // reveal no secret and change nothing.
    let open = Router::new()
        .route("/v1/webhooks/github", post(crate::webhooks::github))
        .route("/v1/webhooks/gitlab", post(crate::webhooks::gitlab))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route_layer(RequestTimeout::layer(state.config.request_timeout));
    Router::new()
        .merge(open)
        .merge(protected)
        // Around both: webhooks are audited too, and refused tokens.
        .layer(from_fn_with_state(
            state.clone(),
            crate::audit::record_changes,
        ))
        // Where extractors can read the body limit, to name it in a 413.
        .layer(Extension(BodyLimit(state.config.body_limit)))
        .layer(from_fn_with_state(state.clone(), count_requests))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state)
}

/// Counts every request by method, matched route (not raw path: ids would explode the
/// label set) and status, and logs it (probes and scrapes at debug level only).
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let matched = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let route = matched.as_ref().map_or("unmatched", |p| p.as_str());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    state.metrics.request(method.as_str(), route, status);
    let ms = started.elapsed().as_millis() as u64;
    if matches!(route, "/health" | "/ready" | "/metrics") {
        tracing::debug!(%method, %route, status, ms, "request");
    } else {
        tracing::info!(%method, %route, status, ms, "request");
    }
    response
}

/// Bounds the time to a response (headers, for streams): a 504 `timeout` after `after`.
/// A tower layer rather than `from_fn`, whose per-request boxing and service clone showed in
/// every request's profile.
#[derive(Clone)]
struct RequestTimeout<S> {
    /// The route it bounds.
    inner: S,
    /// `OPENCLAW_REQUEST_TIMEOUT_SECS`.
    after: Duration,
}

impl RequestTimeout<()> {
    fn layer(
        after: Duration,
    ) -> impl tower_layer::Layer<
        axum::routing::Route,
        Service = RequestTimeout<axum::routing::Route>,
    > + Clone {
        tower_layer::layer_fn(move |inner| RequestTimeout { inner, after })
    }
}

type TimedOut = Result<Result<Response, Infallible>, tokio::time::error::Elapsed>;

fn answer_timed_out(result: TimedOut) -> Result<Response, Infallible> {
    result.unwrap_or_else(|_| Ok(ApiError::Timeout.into_response()))
}

impl<S> tower_service::Service<Request> for RequestTimeout<S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Map<
        tokio::time::Timeout<S::Future>,
        fn(TimedOut) -> Result<Response, Infallible>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use futures_util::FutureExt;
        tokio::time::timeout(self.after, self.inner.call(req)).map(answer_timed_out as fn(_) -> _)
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> Response {
    let mut r = ApiError::BadRequest {
        field: None,
        message: "method not allowed on this route".into(),
    }
    .into_response();
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

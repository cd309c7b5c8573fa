//! The OpenClaw bridge: an HTTP front door that turns requests into durable tasks in NATS
//! JetStream, relays their progress events as Server-Sent Events, and starts workers.
//!
//! Layout:
//! - [`config`]: [`BridgeConfig`], read from the environment.
//! - [`serve`]: the HTTP/1 accept loop with connection limits (count, header deadline).
//! - [`app`]: [`Application`]: binds the router to an injected listener, owns start-up
//!   (NATS connection, JetStream setup) and graceful shutdown.
//! - [`intake`]: the one way tasks enter and are canceled.
//! - [`conversation`], [`relay`]: chat input into tasks, task events into chat text.
//! - [`metrics`]: Prometheus counters, gauges and histograms at `/metrics`; [`outcomes`]
//!   feeds the task outcome metrics from the status records.
//! - [`routes`]: thin handlers, one module per resource.
//! - [`error`]: [`ApiError`], the one JSON error shape every handler returns.
//! - [`auth`]: the bearer-token middleware; [`principals`]: who a token names, and the user a
//!   trusted front end acts for; [`audit`]: the record of every state-changing request;
//!   [`quota`]: tasks in flight, submits per minute and budgets, enforced at submit.
//! - [`advisories`]: marks tasks failed that JetStream gave up on.
//! - [`callout`]: answers the NATS server's auth callout with a user for one task.
//! - [`dispatch`]: who starts workers (`local` child processes, or `none` for KEDA).

pub mod advisories;
pub mod app;
pub mod audit;
pub mod auth;
pub mod callout;
pub mod config;
pub mod conversation;
pub mod dispatch;
pub mod error;
pub mod extract;
pub mod intake;
pub mod metrics;
pub mod outcomes;
pub mod principals;
pub mod quota;
pub mod relay;
pub mod routes;
pub mod serve;
pub mod state;
pub mod webhooks;

pub use app::Application;
pub use config::BridgeConfig;
pub use error::ApiError;

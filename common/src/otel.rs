//! OpenTelemetry export shared by the bridge and the worker: where traces go (Langfuse v4's
//! OTLP endpoint and/or any OTLP collector), a tracer provider that exports over HTTP/protobuf
//! in batches with the binaries' own reqwest client, and the W3C `traceparent` that links the
//! bridge's submit span to the worker's spans across the task message.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

use crate::config::{ConfigError, EnvReader, Secret};

/// One place traces go.
#[derive(Clone)]
pub struct TraceTarget {
    /// For logs: `langfuse` or `otlp`.
    pub name: &'static str,
    /// The traces endpoint; `None`: the exporter's own `OTEL_EXPORTER_OTLP_*` settings.
    pub endpoint: Option<String>,
    /// Headers sent with every export (Langfuse: Basic auth and the ingestion version).
    pub headers: Vec<(String, Secret)>,
}

impl std::fmt::Debug for TraceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceTarget")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Where traces go: Langfuse (`LANGFUSE_HOST` and keys), any OTLP collector
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` / `_TRACES_ENDPOINT`, with `OTEL_EXPORTER_OTLP_HEADERS`), or
/// both; nowhere when none is configured.
#[derive(Debug, Clone, Default)]
pub struct TracingConfig {
    pub targets: Vec<TraceTarget>,
    /// `OPENCLAW_ENVIRONMENT` (Langfuse's environment), e.g. `production`.
    pub environment: Option<String>,
    /// Why a target that was half configured is off (say, the starter kit's placeholder
    /// Langfuse keys without a Langfuse host): the binaries log it once at start. Half a
    /// tracing configuration must not stop the work, so it is not an error.
    pub incomplete: Option<String>,
}

impl TracingConfig {
    /// Langfuse v4 takes OTLP at `/api/public/otel/v1/traces` with Basic auth (public:secret)
    /// and `x-langfuse-ingestion-version: 4`.
    pub fn langfuse(host: &str, public_key: &str, secret_key: &Secret) -> TraceTarget {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{public_key}:{}", secret_key.expose()));
        TraceTarget {
            name: "langfuse",
            endpoint: Some(format!(
                "{}/api/public/otel/v1/traces",
                host.trim_end_matches('/')
            )),
            headers: vec![
                (
                    "authorization".into(),
                    Secret::new(format!("Basic {basic}")),
                ),
                ("x-langfuse-ingestion-version".into(), Secret::new("4")),
            ],
        }
    }

    pub fn is_on(&self) -> bool {
        !self.targets.is_empty()
    }

    /// Logs, once, why a half-configured target is off.
    pub fn warn_if_incomplete(&self) {
        if let Some(why) = &self.incomplete {
            tracing::warn!("{why}");
        }
    }

    /// From the environment: Langfuse needs all three of its variables; a collector is
    /// configured the standard way (the exporter reads its `OTEL_EXPORTER_OTLP_*` itself).
    pub fn from_env(env: &EnvReader<'_>) -> Result<Self, ConfigError> {
        let mut config = Self {
            targets: Vec::new(),
            environment: env.string("OPENCLAW_ENVIRONMENT"),
            incomplete: None,
        };
        match (
            env.string("LANGFUSE_HOST"),
            env.string("LANGFUSE_PUBLIC_KEY"),
            env.secret("LANGFUSE_SECRET_KEY"),
        ) {
            (Some(host), Some(public_key), Some(secret_key)) => config
                .targets
                .push(Self::langfuse(&host, &public_key, &secret_key)),
            (None, None, None) => {}
            (host, public_key, secret_key) => {
                // Names only: the values may be secrets.
                let named = |set: bool| {
                    [
                        ("LANGFUSE_HOST", host.is_some()),
                        ("LANGFUSE_PUBLIC_KEY", public_key.is_some()),
                        ("LANGFUSE_SECRET_KEY", secret_key.is_some()),
                    ]
                    .into_iter()
                    .filter(|(_, is)| *is == set)
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>()
                    .join(" and ")
                };
                config.incomplete = Some(format!(
                    "Langfuse traces are off: {} set but {} not (Langfuse needs all three)",
                    named(true),
                    named(false)
                ));
            }
        }
        if env.string("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        {
            config.targets.push(TraceTarget {
                name: "otlp",
                endpoint: None,
                headers: Vec::new(),
            });
        }
        Ok(config)
    }

    /// A provider exporting to every target in batches every second (bounded queue), as
    /// `service`; `None` when tracing is off or there is no tokio runtime to send from.
    pub fn provider(&self, service: &'static str) -> Option<SdkTracerProvider> {
        if !self.is_on() {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        let mut builder = SdkTracerProvider::builder().with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        for target in &self.targets {
            let transport = Transport {
                client: client.clone(),
                runtime: runtime.clone(),
                target: target.name,
                reported: Arc::new(AtomicBool::new(false)),
                fixed_headers: (!target.headers.is_empty()).then(|| target.headers.clone()),
            };
            let headers: HashMap<String, String> = target
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect();
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(transport)
                .with_timeout(Duration::from_secs(10));
            if !headers.is_empty() {
                exporter = exporter.with_headers(headers);
            }
            if let Some(endpoint) = &target.endpoint {
                exporter = exporter.with_endpoint(endpoint.clone());
            }
            match exporter.build() {
                Ok(exporter) => {
                    let processor = BatchSpanProcessor::builder(exporter)
                        .with_batch_config(
                            BatchConfigBuilder::default()
                                .with_scheduled_delay(Duration::from_secs(1))
                                .with_max_queue_size(4096)
                                .build(),
                        )
                        .build();
                    builder = builder.with_span_processor(processor);
                }
                Err(e) => {
                    tracing::warn!(target_name = target.name, error = %e, "traces are off")
                }
            }
        }
        Some(builder.build())
    }
}

/// Sends the exporter's requests with the worker's reqwest client on the tokio runtime (the
/// batch processor exports from its own thread), and logs a refusing or unreachable endpoint
/// once per attempt, with its status code.
#[derive(Debug, Clone)]
struct Transport {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    target: &'static str,
    reported: Arc<AtomicBool>,
    /// The target's own headers, which replace all others but the content ones: the exporter
    /// adds `OTEL_EXPORTER_OTLP_HEADERS` to every target, and a collector's credentials must
    /// not travel to Langfuse.
    fixed_headers: Option<Vec<(String, Secret)>>,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Transport {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let fixed = self.fixed_headers.clone();
        let (parts, body) = request.into_parts();
        let sent = self
            .runtime
            .spawn(async move {
                let mut req = client
                    .request(parts.method, parts.uri.to_string())
                    .body(body);
                for (name, value) in &parts.headers {
                    if fixed.is_none() || name.as_str().starts_with("content-") {
                        req = req.header(name, value);
                    }
                }
                for (name, value) in fixed.iter().flatten() {
                    req = req.header(name.as_str(), value.expose());
                }
                let response = req.send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await;
        let once = |what: String| {
            if !self.reported.swap(true, Ordering::SeqCst) {
                tracing::warn!(target_name = self.target, "traces not delivered: {what}");
            }
        };
        match sent {
            Ok(Ok((status, body))) => {
                if !status.is_success() {
                    once(format!("HTTP {status}"));
                }
                let mut response = http::Response::new(body);
                *response.status_mut() = status;
                Ok(response)
            }
            Ok(Err(e)) => {
                once(format!("cannot reach the endpoint: {e}"));
                Err(Box::new(e))
            }
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// Reads a W3C `traceparent` header value: `00-<trace id>-<span id>-<flags>`.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// The W3C `traceparent` header value of `span`.
pub fn traceparent(span: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        span.trace_id(),
        span.span_id(),
        span.trace_flags().to_u8()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let span = SpanContext::new(
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes([9; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let header = traceparent(&span);
        assert_eq!(
            header,
            "00-07070707070707070707070707070707-0909090909090909-01"
        );
        let back = parse_traceparent(&header).unwrap();
        assert_eq!(
            (back.trace_id(), back.span_id()),
            (span.trace_id(), span.span_id())
        );
        assert!(parse_traceparent("01-xx").is_none());
    }
}

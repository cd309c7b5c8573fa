//! One `tracing` set-up for the binaries and the test suite. Filter from `RUST_LOG`
//! (default `info`); format from `OPENCLAW_LOG_FORMAT` (`json` or `text`; default JSON when
//! stderr is not a terminal, as in a pod, and never ANSI colours there); the tests stay quiet
//! unless `TEST_LOG` is set.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (timestamp, level, message, fields, spans): for log
    /// collectors.
    Json,
    /// Human-readable lines, coloured on a terminal.
    Text,
}

impl LogFormat {
    /// `OPENCLAW_LOG_FORMAT`, else JSON unless stderr is a terminal. An unknown value falls
    /// back to that default (logging must start before configuration errors can be reported).
    pub fn from_env() -> Self {
        match std::env::var("OPENCLAW_LOG_FORMAT")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "json" => Self::Json,
            "text" => Self::Text,
            _ if std::io::stderr().is_terminal() => Self::Text,
            _ => Self::Json,
        }
    }
}

/// Installs the global subscriber writing to stderr. Safe to call more than once.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match LogFormat::from_env() {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// For tests: logs only when `TEST_LOG` is set, so a passing suite prints nothing.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init("info,openclaw=debug");
    }
}

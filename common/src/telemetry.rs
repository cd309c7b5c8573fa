//! One `tracing` set-up for the binaries and the test suite. Filter from `RUST_LOG`
//! (default `info`); the tests stay quiet unless `TEST_LOG` is set.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber writing to stderr. Safe to call more than once.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// For tests: logs only when `TEST_LOG` is set, so a passing suite prints nothing.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init("info,openclaw=debug");
    }
}

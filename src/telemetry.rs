//! The tracing subscriber: text for people, JSON for log pipelines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber. Logs go to standard output, as containers expect.
pub fn init(log: &LogConfig) {
    // The filter was validated when the configuration was read.
    let filter = EnvFilter::builder()
        .parse(&log.filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if log.json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

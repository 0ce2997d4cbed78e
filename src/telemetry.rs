//! The tracing subscriber: text for people, JSON for log pipelines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// An error and its causes on one line, OpenSSL's stacks cut down to their reasons:
/// how start-up failures are printed and failed reloads logged.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        match cause.downcast_ref::<openssl::error::ErrorStack>() {
            Some(stack) => line.push_str(&crate::tls::describe(stack)),
            None => line.push_str(&cause.to_string()),
        }
        source = cause.source();
    }
    line.replace('\n', " ")
}

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

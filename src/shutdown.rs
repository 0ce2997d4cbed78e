//! Waiting for the operator's stop signal.

use tokio::signal::unix::{signal, SignalKind};

/// Resolves with the signal's name on the first SIGTERM (Kubernetes, Docker) or
/// SIGINT (Ctrl-C).
pub async fn signal_received() -> std::io::Result<&'static str> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

//! Waiting for the operator's stop signal.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM (Kubernetes, Docker) and SIGINT (Ctrl-C) handlers. Installed before the
/// node binds, so that a signal arriving just after the listeners are ready starts a
/// graceful shutdown instead of killing the process with the default action.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers; needs a tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves with the signal's name on the first SIGTERM or SIGINT.
    pub async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

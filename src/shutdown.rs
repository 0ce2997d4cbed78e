//! The operator's signals: stop (SIGTERM, SIGINT) and reload certificates (SIGHUP).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM (Kubernetes, Docker) and SIGINT (Ctrl-C) handlers. Installed before the
/// node binds, so that a signal arriving just after the listeners are ready starts a
/// graceful shutdown instead of killing the process with the default action.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Stop, named by the signal that asked.
    Stop(&'static str),
    /// Reload key material (SIGHUP).
    Reload,
}

impl Signals {
    /// Installs the handlers; needs a tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next request: stop on SIGTERM or SIGINT, reload on SIGHUP.
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.terminate.recv() => Request::Stop("SIGTERM"),
            _ = self.interrupt.recv() => Request::Stop("SIGINT"),
            _ = self.hangup.recv() => Request::Reload,
        }
    }
}

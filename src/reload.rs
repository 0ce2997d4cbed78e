//! Certificate rotation without a restart.
//!
//! Each TLS listener (and the cluster dialer) is rebuilt from its files with exactly
//! the checks start-up runs, then swapped in for new handshakes; connections already
//! open keep the context they started with. A rebuild is tried when SIGHUP arrives,
//! when the content of a watched file changes (read every reload interval, through the
//! path as configured, so Kubernetes' swap of a `..data` symlink counts as a change),
//! and every ticket-rotation period, which gives fresh session ticket keys. A rebuild
//! that fails leaves the previous material in service, logs one warn line naming the
//! file and the problem, and is counted; the same broken files are not retried until
//! they change again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{IdentitySource, PassphraseSource, TlsConfig};
use crate::metrics::Metrics;
use crate::telemetry;
use crate::tls::TlsError;

/// Rebuilds one listener's TLS contexts from its files and swaps them in.
pub type Rebuild = Box<dyn Fn() -> Result<(), TlsError> + Send + Sync>;

/// One listener whose key material is reloaded.
pub struct Watched {
    pub listener: &'static str,
    pub files: Vec<PathBuf>,
    pub rebuild: Rebuild,
}

/// The files a listener's TLS settings read: identity, CA, passphrase file.
pub fn files_of(tls: &TlsConfig) -> Vec<PathBuf> {
    let mut files = match &tls.identity {
        IdentitySource::Pem { cert, key } => vec![cert.path.clone(), key.path.clone()],
        IdentitySource::Pkcs12 { bundle } => vec![bundle.path.clone()],
    };
    files.extend(tls.ca.iter().map(|ca| ca.path.clone()));
    if let Some(PassphraseSource::File(file)) = &tls.passphrase {
        files.push(file.path.clone());
    }
    files
}

/// What a reload pass was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Rebuild listeners whose files changed.
    Changed,
    /// Rebuild every listener (SIGHUP, ticket key rotation).
    All,
}

/// Runs reloads until `shutdown`. `trigger` asks for a reload of everything (SIGHUP).
pub async fn run(
    watched: Vec<Watched>,
    interval: Option<Duration>,
    ticket_rotation: Option<Duration>,
    trigger: Arc<Notify>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    if watched.is_empty() {
        return;
    }
    let watched = Arc::new(watched);
    // What each listener's files held when it was last built (or last tried).
    let mut seen: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
    for entry in watched.iter() {
        seen.push(read_all(&entry.files).await);
    }
    let mut poll = ticker(interval);
    let mut rotate = ticker(ticket_rotation);

    loop {
        let pass = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = trigger.notified() => Pass::All,
            _ = next_tick(&mut poll) => Pass::Changed,
            _ = next_tick(&mut rotate) => Pass::All,
        };
        for (index, entry) in watched.iter().enumerate() {
            let now = read_all(&entry.files).await;
            if pass == Pass::Changed && now == seen[index] {
                continue;
            }
            seen[index] = now;
            let rebuilt = {
                let watched = watched.clone();
                tokio::task::spawn_blocking(move || (watched[index].rebuild)()).await
            };
            match rebuilt {
                Ok(Ok(())) => {
                    metrics.tls_reloaded(entry.listener, true);
                    info!(listener = entry.listener, "TLS key material reloaded");
                }
                Ok(Err(error)) => {
                    metrics.tls_reloaded(entry.listener, false);
                    warn!(
                        listener = entry.listener,
                        error = %telemetry::one_line(&error),
                        "TLS reload failed; the previous certificate stays in service"
                    );
                }
                Err(panicked) => {
                    metrics.tls_reloaded(entry.listener, false);
                    warn!(listener = entry.listener, error = %panicked, "TLS reload failed");
                }
            }
        }
    }
}

/// The content of each file, `None` where it cannot be read (mid-swap, removed).
async fn read_all(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    let files = files.to_vec();
    tokio::task::spawn_blocking(move || files.iter().map(|file| std::fs::read(file).ok()).collect())
        .await
        .unwrap_or_default()
}

fn ticker(period: Option<Duration>) -> Option<tokio::time::Interval> {
    period.map(|period| {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    })
}

async fn next_tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

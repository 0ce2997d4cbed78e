//! Items 1 and 2: new TCP + TLS 1.3 connection + one request (`GET /`, or a WebSocket
//! upgrade), full or resumed from the newest session ticket, at a given concurrency.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::conn::{self, BoxError, SessionSlot};
use crate::procstat::CpuMeter;
use crate::report::Row;
use crate::stats::Latencies;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Get,
    Upgrade,
}

/// One handshake case against one server.
pub struct Case<'a> {
    pub server: &'static str,
    pub pid: u32,
    pub addr: SocketAddr,
    pub ca: &'a Path,
    pub key_kind: &'static str,
    pub request: Request,
    pub resumed: bool,
    pub concurrency: usize,
    pub duration: Duration,
}

pub async fn run(case: &Case<'_>) -> Result<Row, BoxError> {
    let slot: SessionSlot = Arc::new(Mutex::new(None));
    let connector = conn::connector(case.ca, case.resumed.then(|| slot.clone()))?;
    if case.resumed {
        // One full handshake first, for a ticket to resume from.
        once(&connector, case.addr, None, case.request).await?;
    }

    let done = Arc::new(AtomicU64::new(0));
    let reused = Arc::new(AtomicU64::new(0));
    let meter = CpuMeter::start(case.pid);
    let started = Instant::now();
    let deadline = started + case.duration;
    let mut workers = Vec::new();
    for _ in 0..case.concurrency {
        let connector = connector.clone();
        let (slot, done, reused) = (slot.clone(), done.clone(), reused.clone());
        let (addr, request, resumed) = (case.addr, case.request, case.resumed);
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            while Instant::now() < deadline {
                let session = if resumed {
                    slot.lock().unwrap().clone()
                } else {
                    None
                };
                let t0 = Instant::now();
                let was_reused = once(&connector, addr, session.as_ref(), request).await?;
                latencies.push(t0.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
                if was_reused {
                    reused.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, BoxError>(latencies)
        }));
    }
    let mut latencies = Latencies::default();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = meter.seconds();

    let count = done.load(Ordering::Relaxed);
    let request = match case.request {
        Request::Get => "GET /",
        Request::Upgrade => "WS upgrade",
    };
    let mut note = String::new();
    if case.resumed {
        let share = reused.load(Ordering::Relaxed) as f64 / count.max(1) as f64;
        note = format!("{:.0}% resumed", share * 100.0);
    }
    Ok(Row {
        section: if case.resumed { "resumed" } else { "handshake" },
        server: case.server,
        case: format!("{} {request} c={}", case.key_kind, case.concurrency),
        count,
        rate: Some(count as f64 / elapsed),
        p50_us: Some(latencies.quantile(0.5)),
        p99_us: Some(latencies.quantile(0.99)),
        cpu_us: Some(cpu * 1e6 / count.max(1) as f64),
        note,
    })
}

/// One connection: handshake, request, close. Returns whether the session was resumed.
async fn once(
    connector: &openssl::ssl::SslConnector,
    addr: SocketAddr,
    session: Option<&openssl::ssl::SslSession>,
    request: Request,
) -> Result<bool, BoxError> {
    let mut stream = conn::tls_connect(connector, addr, session).await?;
    match request {
        Request::Get => conn::http_get_close(&mut stream).await?,
        Request::Upgrade => conn::ws_upgrade(&mut stream).await?,
    }
    let reused = stream.ssl().session_reused();
    // close_notify: OpenSSL marks the session of a connection dropped without it as
    // not resumable, and a well-behaved client sends it anyway.
    let _ = stream.shutdown().await;
    Ok(reused)
}

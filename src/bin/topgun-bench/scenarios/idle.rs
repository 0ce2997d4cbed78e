//! Item 5: resident memory per idle connection: authenticated `wss://` sessions on the
//! node, kept-alive HTTPS connections (after one request) on nginx.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::conn::{self, BoxError, Session, Tls};
use crate::procstat;
use crate::report::Row;

/// Connections opened at once while filling up.
const OPENING_CONCURRENCY: usize = 32;

/// How long memory is left to settle before it is read.
const SETTLE: Duration = Duration::from_millis(1500);

/// Opens connections up to each of `levels` in turn and reports RSS per connection
/// over the server's RSS before the first one.
pub async fn run(
    server: &'static str,
    pid: u32,
    addr: SocketAddr,
    ca: &Path,
    levels: &[usize],
) -> Result<Vec<Row>, BoxError> {
    let connector = Arc::new(conn::connector(ca, None)?);
    tokio::time::sleep(SETTLE).await;
    let baseline = procstat::rss_bytes(pid)?;
    let mut held: Vec<Held> = Vec::new();
    let mut rows = Vec::new();
    for &level in levels {
        let permits = Arc::new(Semaphore::new(OPENING_CONCURRENCY));
        let mut opening = Vec::new();
        for i in held.len()..level {
            let permit = permits.clone().acquire_owned().await?;
            let connector = connector.clone();
            opening.push(tokio::spawn(async move {
                let _permit = permit;
                open(server, &connector, addr, i).await
            }));
        }
        for task in opening {
            held.push(task.await??);
        }
        tokio::time::sleep(SETTLE).await;
        let rss = procstat::rss_bytes(pid)?;
        let per = rss.saturating_sub(baseline) as f64 / level as f64;
        rows.push(Row {
            section: "idle",
            server,
            case: format!("{level} idle connections"),
            count: level as u64,
            rate: None,
            p50_us: None,
            p99_us: None,
            cpu_us: None,
            note: format!(
                "{:.1} KiB RSS per connection (RSS {:.1} MiB over {:.1} MiB before)",
                per / 1024.0,
                rss as f64 / 1048576.0,
                baseline as f64 / 1048576.0
            ),
        });
    }
    drop(held);
    Ok(rows)
}

/// A connection kept open.
#[allow(dead_code)]
enum Held {
    Session(Box<Session>),
    Https(Box<Tls>),
}

async fn open(
    server: &'static str,
    connector: &openssl::ssl::SslConnector,
    addr: SocketAddr,
    i: usize,
) -> Result<Held, BoxError> {
    if server == "node" {
        let token = conn::token(&format!("idle{i}"), Vec::new());
        Ok(Held::Session(Box::new(
            Session::open(connector, addr, &token).await?,
        )))
    } else {
        let mut stream = conn::tls_connect(connector, addr, None).await?;
        conn::http_get_keepalive(&mut stream).await?;
        Ok(Held::Https(Box::new(stream)))
    }
}

/// The RSS per connection that [`run`] noted, for the targets.
pub fn kib_per_connection(row: &Row) -> Option<f64> {
    row.note.split(" KiB").next()?.parse().ok()
}

//! Item 3: acknowledged `OP_BATCH` writes over `wss://` from several connections, each
//! writing its own map (the policy lets each user read only its own, so no write is
//! broadcast to the other connections), closed-loop or paced to a fixed rate.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rmpv::Value;

use crate::conn::{self, BoxError, OpWriter, Session};
use crate::procstat::CpuMeter;
use crate::report::Row;
use crate::stats::Latencies;

/// The policy every write benchmark runs under: each user reads and writes its own
/// `bench-<user>` map, `fanout` and topics are open to all, `ADMIN` may do anything.
pub const POLICY: &str = r#"[
  {"role": "USER", "mapNamePattern": "bench-{userId}", "actions": ["ALL"]},
  {"role": "USER", "mapNamePattern": "fanout", "actions": ["ALL"]},
  {"role": "USER", "mapNamePattern": "topic:*", "actions": ["ALL"]}
]"#;

pub struct Case<'a> {
    pub pid: u32,
    pub addr: SocketAddr,
    pub ca: &'a Path,
    pub storage: &'static str,
    pub connections: usize,
    pub batch: usize,
    pub duration: Duration,
    /// Total ops per second to hold to; `None` writes as fast as acks come back.
    pub pace: Option<f64>,
}

/// Keys each connection cycles through, so the data set stays a fixed size.
const KEYS_PER_CONNECTION: usize = 1000;

pub fn small_value(n: usize) -> Value {
    conn::map(vec![
        ("title", format!("item {n}").into()),
        ("done", (n % 2 == 0).into()),
        ("n", (n as u64).into()),
    ])
}

pub async fn run(case: &Case<'_>) -> Result<Row, BoxError> {
    let connector = conn::connector(case.ca, None)?;
    let mut sessions = Vec::new();
    for i in 0..case.connections {
        let user = format!("w{i}");
        let token = conn::token(&user, Vec::new());
        sessions.push((user, Session::open(&connector, case.addr, &token).await?));
    }

    let interval = case
        .pace
        .map(|rate| Duration::from_secs_f64(case.batch as f64 * case.connections as f64 / rate));
    let meter = CpuMeter::start(case.pid);
    let started = Instant::now();
    let deadline = started + case.duration;
    let batch = case.batch;
    let mut workers = Vec::new();
    for (user, mut session) in sessions {
        workers.push(tokio::spawn(async move {
            let map_name = format!("bench-{user}");
            let mut writer = OpWriter::new(&user);
            let mut latencies = Latencies::default();
            let mut ops = 0u64;
            let mut next_slot = Instant::now();
            let mut n = 0usize;
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next_slot.into()).await;
                    next_slot += interval;
                }
                let keys: Vec<String> = (0..batch)
                    .map(|j| format!("k{}", (n + j) % KEYS_PER_CONNECTION))
                    .collect();
                let (message, last) = writer.batch(&map_name, &keys, &small_value(n));
                n += batch;
                let t0 = Instant::now();
                session.write_batch(message, &last).await?;
                latencies.push(t0.elapsed());
                ops += batch as u64;
            }
            session.ws.close(None).await.ok();
            Ok::<_, BoxError>((ops, latencies))
        }));
    }
    let mut ops = 0;
    let mut latencies = Latencies::default();
    for worker in workers {
        let (n, l) = worker.await??;
        ops += n;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = meter.seconds();

    let pace = match case.pace {
        Some(rate) => format!(" paced {rate:.0}/s"),
        None => String::new(),
    };
    Ok(Row {
        section: "writes",
        server: "node",
        case: format!(
            "{} batch={} conns={}{pace}",
            case.storage, case.batch, case.connections
        ),
        count: ops,
        rate: Some(ops as f64 / elapsed),
        p50_us: Some(latencies.quantile(0.5)),
        p99_us: Some(latencies.quantile(0.99)),
        cpu_us: Some(cpu * 1e6 / ops.max(1) as f64),
        note: "latency = OP_BATCH to its OP_ACK".into(),
    })
}

//! Item 4: one writer among N authenticated clients; every write reaches the N-1
//! others as `SERVER_EVENT`. Then the same with one client reading slowly, sampling
//! the node's RSS as it goes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::{self, BoxError, Incoming, OpWriter, Session};
use crate::procstat::{self, CpuMeter};
use crate::report::Row;
use crate::scenarios::writes::small_value;
use crate::stats::Latencies;

pub struct Case<'a> {
    pub pid: u32,
    pub addr: SocketAddr,
    pub ca: &'a Path,
    pub clients: usize,
    pub batch: usize,
    pub duration: Duration,
}

/// Delay per message of the slow reader: 200 messages a second.
const SLOW_READ_DELAY: Duration = Duration::from_millis(5);

pub async fn run(case: &Case<'_>) -> Result<Vec<Row>, BoxError> {
    let connector = conn::connector(case.ca, None)?;
    let mut writer = Session::open(&connector, case.addr, &conn::token("f0", Vec::new())).await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let slow = Arc::new(AtomicBool::new(false));
    let slow_closed = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for i in 1..case.clients {
        let token = conn::token(&format!("f{i}"), Vec::new());
        let mut session = Session::open(&connector, case.addr, &token).await?;
        let delivered = delivered.clone();
        // The last reader is the one that turns slow in the second phase.
        let slow = (i == case.clients - 1).then(|| slow.clone());
        let slow_closed = slow_closed.clone();
        readers.push(tokio::spawn(async move {
            loop {
                match session.next().await {
                    Ok(Incoming::ServerEvent(_)) => {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Incoming::Closed(code)) => {
                        if slow.is_some() {
                            slow_closed.store(u64::from(code.unwrap_or(1)), Ordering::Relaxed);
                        }
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
                if let Some(slow) = &slow {
                    if slow.load(Ordering::Relaxed) {
                        tokio::time::sleep(SLOW_READ_DELAY).await;
                    }
                }
            }
        }));
    }

    // Phase 1: everyone reads.
    let mut ops_writer = OpWriter::new("f0");
    let meter = CpuMeter::start(case.pid);
    let started = Instant::now();
    let (ops, mut latencies) = write_for(&mut writer, &mut ops_writer, case, None).await?;
    let expected = ops * (case.clients as u64 - 1);
    let wait_until = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = meter.seconds();
    let events = delivered.load(Ordering::Relaxed);
    let mut rows = vec![Row {
        section: "fanout",
        server: "node",
        case: format!("{} clients, 1 writer batch={}", case.clients, case.batch),
        count: events,
        rate: Some(events as f64 / elapsed),
        p50_us: Some(latencies.quantile(0.5)),
        p99_us: Some(latencies.quantile(0.99)),
        cpu_us: Some(cpu * 1e6 / events.max(1) as f64),
        note: format!(
            "per delivered SERVER_EVENT; {ops} writes ({:.0}/s), {events} of {expected} delivered",
            ops as f64 / elapsed
        ),
    }];

    // Phase 2: one reader slows down; the node's memory is sampled throughout.
    slow.store(true, Ordering::Relaxed);
    let rss_start = procstat::rss_bytes(case.pid)?;
    let mut samples = Vec::new();
    let (ops, mut latencies) = write_for(
        &mut writer,
        &mut ops_writer,
        case,
        Some((case.pid, &mut samples)),
    )
    .await?;
    let rss_max = samples.iter().copied().max().unwrap_or(rss_start);
    let rss_end = procstat::rss_bytes(case.pid)?;
    let closed = slow_closed.load(Ordering::Relaxed);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let trace: Vec<String> = samples.iter().map(|b| format!("{:.0}", mib(*b))).collect();
    rows.push(Row {
        section: "fanout",
        server: "node",
        case: format!("{} clients, one slow reader", case.clients),
        count: ops,
        rate: Some(ops as f64 / case.duration.as_secs_f64()),
        p50_us: Some(latencies.quantile(0.5)),
        p99_us: Some(latencies.quantile(0.99)),
        cpu_us: None,
        note: format!(
            "RSS MiB start {:.1} max {:.1} end {:.1}; slow reader {}; RSS trace MiB [{}]",
            mib(rss_start),
            mib(rss_max),
            mib(rss_end),
            if closed > 0 {
                format!("closed with {closed}")
            } else {
                "not closed by the end of the phase (still reading its backlog)".into()
            },
            trace.join(" ")
        ),
    });

    writer.ws.close(None).await.ok();
    for reader in readers {
        reader.abort();
    }
    Ok(rows)
}

/// Writes batches to `fanout` for the case's duration, sampling RSS every 250 ms
/// when asked; returns the ops written and the ack latencies.
async fn write_for(
    writer: &mut Session,
    ops_writer: &mut OpWriter,
    case: &Case<'_>,
    mut rss: Option<(u32, &mut Vec<u64>)>,
) -> Result<(u64, Latencies), BoxError> {
    let deadline = Instant::now() + case.duration;
    let mut next_sample = Instant::now();
    let mut latencies = Latencies::default();
    let mut ops = 0u64;
    let mut n = 0usize;
    while Instant::now() < deadline {
        if let Some((pid, samples)) = rss.as_mut() {
            if Instant::now() >= next_sample {
                samples.push(procstat::rss_bytes(*pid)?);
                next_sample += Duration::from_millis(250);
            }
        }
        let keys: Vec<String> = (0..case.batch)
            .map(|j| format!("k{}", (n + j) % 1000))
            .collect();
        let (message, last) = ops_writer.batch("fanout", &keys, &small_value(n));
        n += case.batch;
        let t0 = Instant::now();
        writer.write_batch(message, &last).await?;
        latencies.push(t0.elapsed());
        ops += case.batch as u64;
    }
    Ok((ops, latencies))
}

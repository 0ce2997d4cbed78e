//! Item 6: 1 MiB binary messages from client to server over TLS: `TOPIC_PUB` with a
//! 1 MiB `bin` payload over `wss://` to the node (every 8 messages an acknowledged
//! one-op `OP_BATCH` makes sure they were all read), `POST /upload` of 1 MiB on a
//! kept-alive HTTPS connection to nginx.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rmpv::Value;
use tokio::io::AsyncWriteExt;

use crate::conn::{self, BoxError, OpWriter, Session};
use crate::procstat::CpuMeter;
use crate::report::Row;

pub const MESSAGE_BYTES: usize = 1 << 20;
const WINDOW: usize = 8;

pub async fn run(
    server: &'static str,
    pid: u32,
    addr: SocketAddr,
    ca: &Path,
    duration: Duration,
) -> Result<Row, BoxError> {
    let connector = conn::connector(ca, None)?;
    let mut messages = 0usize;
    let payload: Vec<u8> = (0..MESSAGE_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let meter;
    let started;
    if server == "node" {
        let mut session = Session::open(&connector, addr, &conn::token("bulk", Vec::new())).await?;
        let message = conn::encode(&conn::map(vec![
            ("type", "TOPIC_PUB".into()),
            (
                "payload",
                conn::map(vec![
                    ("topic", "bulk".into()),
                    ("data", Value::Binary(payload)),
                ]),
            ),
        ]));
        let mut writer = OpWriter::new("bulk");
        meter = CpuMeter::start(pid);
        started = Instant::now();
        while started.elapsed() < duration {
            for _ in 0..WINDOW {
                session.send_bytes(message.clone()).await?;
                messages += 1;
            }
            let (barrier, last) = writer.batch("bench-bulk", &["barrier".into()], &Value::Nil);
            session.write_batch(barrier, &last).await?;
        }
    } else {
        let mut stream = conn::tls_connect(&connector, addr, None).await?;
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {MESSAGE_BYTES}\r\n\r\n"
        );
        meter = CpuMeter::start(pid);
        started = Instant::now();
        while started.elapsed() < duration {
            messages += 1;
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&payload).await?;
            let response = conn::read_head(&mut stream).await?;
            if !response.starts_with(b"HTTP/1.1 204") {
                return Err("nginx did not answer 204 to the upload".into());
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = meter.seconds();
    let mb = (messages * MESSAGE_BYTES) as f64 / 1e6;
    Ok(Row {
        section: "bulk",
        server,
        case: format!("{messages} × 1 MiB client→server"),
        count: messages as u64,
        rate: Some(messages as f64 / elapsed),
        p50_us: None,
        p99_us: None,
        cpu_us: Some(cpu * 1e6 / messages as f64),
        note: format!(
            "{:.0} MB/s wall, {:.0} MB per server CPU-second",
            mb / elapsed,
            mb / cpu.max(1e-9)
        ),
    })
}

/// The MB per server CPU-second that [`run`] noted, for the targets.
pub fn mb_per_cpu_second(row: &Row) -> Option<f64> {
    let (_, rest) = row.note.split_once("wall, ")?;
    rest.split(' ').next()?.parse().ok()
}

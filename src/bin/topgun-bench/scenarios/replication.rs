//! Item 7: two nodes joined over mutual TLS. Writers on node A write keys that node B
//! owns (A forwards them); a reader on node B times each write from its `OP_BATCH`
//! to B's `SERVER_EVENT` for it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use topgun_server::cluster::partition::{partition_of, PartitionTable};

use crate::conn::{self, BoxError, Incoming, OpWriter, Session};
use crate::procstat::CpuMeter;
use crate::report::Row;
use crate::scenarios::writes::{small_value, POLICY};
use crate::servers::{Certs, Node};
use crate::stats::Latencies;

pub struct Case<'a> {
    pub binary: &'a Path,
    pub certs: &'a Certs,
    pub connections: usize,
    pub batch: usize,
    pub duration: Duration,
}

fn cluster_vars(certs: &Certs, id: &str, peers: Option<String>) -> Vec<(&'static str, String)> {
    let policy = certs.dir.path().join("policy.json");
    let mut vars = vec![
        ("NODE_ID", id.to_owned()),
        ("TOPGUN_CLUSTER_ENABLED", "true".to_owned()),
        ("TOPGUN_CLUSTER_PORT", "0".to_owned()),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true".to_owned()),
        ("TOPGUN_CLUSTER_MTLS", "true".to_owned()),
        ("TOPGUN_CLUSTER_TLS_CA_PATH", certs.ca.display().to_string()),
        (
            "TOPGUN_CLUSTER_TLS_CERT_PATH",
            certs.cert(id).display().to_string(),
        ),
        (
            "TOPGUN_CLUSTER_TLS_KEY_PATH",
            certs.key(id).display().to_string(),
        ),
        ("TOPGUN_POLICIES_PATH", policy.display().to_string()),
    ];
    if let Some(peers) = peers {
        vars.push(("TOPGUN_PEERS", peers));
    }
    vars
}

/// Keys owned by node B of the pair `node-a`, `node-b`.
fn keys_owned_by_b(count: usize) -> Vec<String> {
    let table = PartitionTable::new(vec!["node-a".into(), "node-b".into()]);
    (0..)
        .map(|i| format!("r{i}"))
        .filter(|key| table.owner(partition_of(key)) == "node-b")
        .take(count)
        .collect()
}

pub async fn run(case: &Case<'_>) -> Result<Row, BoxError> {
    std::fs::write(case.certs.dir.path().join("policy.json"), POLICY)?;
    let (cert, key) = (case.certs.cert("ecdsa"), case.certs.key("ecdsa"));
    let a = Node::start(
        case.binary,
        &cert,
        &key,
        &cluster_vars(case.certs, "node-a", None),
    )?;
    let a_cluster = a.cluster_addr.ok_or("node A has no cluster listener")?;
    let b_vars = cluster_vars(case.certs, "node-b", Some(a_cluster.to_string()));
    let b = Node::start(case.binary, &cert, &key, &b_vars)?;
    let connector = conn::connector(&case.certs.ca, None)?;

    // The reader on B may read everything; it notes when each key's event arrives.
    let admin = conn::token("reader", vec!["ADMIN".into()]);
    let mut reader = Session::open(&connector, b.addr, &admin).await?;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Latencies>> = Arc::default();
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader_task = {
        let (sent, latencies, seen) = (sent.clone(), latencies.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok(message) = reader.next().await {
                match message {
                    Incoming::ServerEvent(Some(key)) => {
                        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Some(t0) = sent.lock().unwrap().remove(&key) {
                            latencies.lock().unwrap().push(t0.elapsed());
                        }
                    }
                    Incoming::Closed(_) => return,
                    _ => {}
                }
            }
        })
    };

    // Wait until the two nodes have joined: a write through A shows up on B.
    let probe_key = keys_owned_by_b(1).remove(0);
    let mut probe = Session::open(&connector, a.addr, &conn::token("probe", Vec::new())).await?;
    let mut probe_writer = OpWriter::new("probe");
    let joined_by = Instant::now() + Duration::from_secs(20);
    loop {
        let before = seen.load(std::sync::atomic::Ordering::Relaxed);
        let (m, last) = probe_writer.batch(
            "bench-probe",
            std::slice::from_ref(&probe_key),
            &small_value(0),
        );
        probe.write_batch(m, &last).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if seen.load(std::sync::atomic::Ordering::Relaxed) > before {
            break;
        }
        if Instant::now() > joined_by {
            return Err("node B never saw a write made through node A within 20 s".into());
        }
    }

    let meter_a = CpuMeter::start(a.pid());
    let meter_b = CpuMeter::start(b.pid());
    let started = Instant::now();
    let deadline = started + case.duration;
    let mut workers = Vec::new();
    for i in 0..case.connections {
        let user = format!("rw{i}");
        let mut session =
            Session::open(&connector, a.addr, &conn::token(&user, Vec::new())).await?;
        let keys = keys_owned_by_b(1000);
        let (sent, batch) = (sent.clone(), case.batch);
        workers.push(tokio::spawn(async move {
            let map_name = format!("bench-{user}");
            let mut writer = OpWriter::new(&user);
            let mut ops = 0u64;
            let mut n = 0usize;
            while Instant::now() < deadline {
                // Keys are unique per writer and per round, so each event is matched.
                let round: Vec<String> = (0..batch)
                    .map(|j| format!("{}-{user}-{}", keys[(n + j) % keys.len()], n + j))
                    .collect();
                let (message, last) = writer.batch(&map_name, &round, &small_value(n));
                let t0 = Instant::now();
                {
                    let mut sent = sent.lock().unwrap();
                    for key in &round {
                        sent.insert(key.clone(), t0);
                    }
                }
                n += batch;
                session.write_batch(message, &last).await?;
                ops += batch as u64;
            }
            Ok::<_, BoxError>(ops)
        }));
    }
    let mut ops = 0;
    for worker in workers {
        ops += worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let settle = Instant::now() + Duration::from_secs(5);
    while !sent.lock().unwrap().is_empty() && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (cpu_a, cpu_b) = (meter_a.seconds(), meter_b.seconds());
    let cpu = cpu_a + cpu_b;
    let missing = sent.lock().unwrap().len();
    reader_task.abort();
    let mut latencies = latencies.lock().unwrap().clone();
    Ok(Row {
        section: "replicate",
        server: "node",
        case: format!("A→owner B, batch={} conns={}", case.batch, case.connections),
        count: ops,
        rate: Some(ops as f64 / elapsed),
        p50_us: Some(latencies.quantile(0.5)),
        p99_us: Some(latencies.quantile(0.99)),
        cpu_us: Some(cpu * 1e6 / ops.max(1) as f64),
        note: format!(
            "latency = OP_BATCH on A to SERVER_EVENT on B; cpu = A {:.1} + B {:.1} µs/op; {missing} events not seen",
            cpu_a * 1e6 / ops.max(1) as f64,
            cpu_b * 1e6 / ops.max(1) as f64,
        ),
    })
}

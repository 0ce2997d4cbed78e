//! `topgun-bench`: issue 7's benchmark. Starts the node (and nginx, when installed)
//! as child processes with one generated PKI, drives them from this process with
//! tokio, reads each server's CPU and memory from `/proc`, prints a table and the
//! targets, and writes the same as JSON. `--smoke` runs every part briefly (CI).

mod conn;
mod procstat;
mod report;
mod scenarios;
mod scratch;
mod servers;
mod stats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use conn::BoxError;
use report::{Report, Row, Target};
use scenarios::handshakes::{self, Request};
use scenarios::{bound, bulk, fanout, idle, replication, writes};
use servers::{Certs, Nginx, Node};

#[derive(Parser, Debug)]
#[command(
    name = "topgun-bench",
    about = "Benchmarks the node against nginx and OpenSSL"
)]
struct Args {
    /// Run every part for a moment only (a check that the harness works, not figures).
    #[arg(long)]
    smoke: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "topgun-bench.json")]
    json: PathBuf,
    /// The node binary; default: `topgun-server` next to this one.
    #[arg(long)]
    server: Option<PathBuf>,
    /// The nginx binary; default: found in /usr/sbin and friends.
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// Leave nginx out even when it is installed.
    #[arg(long)]
    no_nginx: bool,
    /// Comma-separated parts to run: bound, handshakes, writes, fanout, idle, bulk,
    /// replication. Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// How much of each part to run.
struct Plan {
    handshake_concurrency: Vec<usize>,
    handshake_time: Duration,
    write_batches: Vec<usize>,
    write_connections: Vec<usize>,
    write_time: Duration,
    fanout_clients: usize,
    fanout_time: Duration,
    idle_levels: Vec<usize>,
    bulk_time: Duration,
    replication_time: Duration,
    speed_seconds: u32,
}

impl Plan {
    fn new(smoke: bool) -> Plan {
        if smoke {
            Plan {
                handshake_concurrency: vec![1, 10],
                handshake_time: Duration::from_millis(100),
                write_batches: vec![1, 100],
                write_connections: vec![1, 10],
                write_time: Duration::from_millis(150),
                fanout_clients: 10,
                fanout_time: Duration::from_millis(300),
                idle_levels: vec![100],
                bulk_time: Duration::from_millis(300),
                replication_time: Duration::from_millis(500),
                speed_seconds: 1,
            }
        } else {
            Plan {
                handshake_concurrency: vec![1, 10, 50],
                handshake_time: Duration::from_secs(2),
                write_batches: vec![1, 10, 100],
                write_connections: vec![1, 10, 100],
                write_time: Duration::from_secs(2),
                fanout_clients: 100,
                fanout_time: Duration::from_secs(3),
                idle_levels: vec![1000, 5000],
                bulk_time: Duration::from_secs(2),
                replication_time: Duration::from_secs(4),
                speed_seconds: 1,
            }
        }
    }
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => {}
        Err(error) => {
            eprintln!("topgun-bench: {error}");
            std::process::exit(1);
        }
    }
}

/// Everything collected so far.
struct Bench {
    rows: Vec<Row>,
    skipped: Vec<String>,
}

impl Bench {
    fn add(&mut self, row: Row) {
        report::print_row(&row);
        self.rows.push(row);
    }

    fn find(&self, section: &str, server: &str, case: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.section == section && r.server == server && r.case == case)
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let plan = Plan::new(args.smoke);
    let wants = |part: &str| args.only.is_empty() || args.only.iter().any(|p| p == part);
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("topgun-server"),
    };
    let nginx = if args.no_nginx {
        None
    } else {
        servers::find_nginx(args.nginx.as_deref())
    };
    let fds = procstat::raise_fd_limit();
    let certs = Certs::generate()?;
    std::fs::write(certs.dir.path().join("policy.json"), writes::POLICY)?;
    let openssl = openssl::version::version().to_owned();

    println!("topgun-bench: node {}, {openssl}", binary.display());
    println!("open-file limit {fds}; server CPU from /proc/<pid>/stat, RSS from VmRSS");
    let mut bench = Bench {
        rows: Vec::new(),
        skipped: Vec::new(),
    };
    match &nginx {
        Some(path) => println!("nginx: {}", path.display()),
        None => {
            bench.skip("nginx is not installed (apt-get install nginx-light): nginx rows left out")
        }
    }
    println!();
    report::print_header();

    let mut floor = None;
    if wants("bound") {
        let (bound, rows) = bound::measure(plan.speed_seconds, args.smoke)?;
        floor = Some(bound);
        for row in rows {
            bench.add(row);
        }
    }
    if wants("handshakes") {
        for key_kind in ["ecdsa", "rsa"] {
            handshake_part(
                &mut bench,
                &plan,
                &binary,
                nginx.as_deref(),
                &certs,
                key_kind,
            )
            .await?;
        }
        bench.skip("nginx WebSocket upgrade rows: nginx only proxies WebSockets, it has no endpoint of its own");
    }
    if wants("writes") {
        writes_part(&mut bench, &plan, &binary, &certs).await?;
    }
    if wants("fanout") {
        let node = start_node(&binary, &certs, "ecdsa")?;
        let case = fanout::Case {
            pid: node.pid(),
            addr: node.addr,
            ca: &certs.ca,
            clients: plan.fanout_clients,
            batch: 10,
            duration: plan.fanout_time,
        };
        for row in fanout::run(&case).await? {
            bench.add(row);
        }
    }
    if wants("idle") {
        let node = start_node(&binary, &certs, "ecdsa")?;
        for row in idle::run("node", node.pid(), node.addr, &certs.ca, &plan.idle_levels).await? {
            bench.add(row);
        }
        drop(node);
        if let Some(nginx) = &nginx {
            let server = Nginx::start(nginx, &certs.cert("ecdsa"), &certs.key("ecdsa"))?;
            let rows = idle::run(
                "nginx",
                server.pid(),
                server.addr,
                &certs.ca,
                &plan.idle_levels,
            );
            for row in rows.await? {
                bench.add(row);
            }
        }
    }
    if wants("bulk") {
        let node = start_node(&binary, &certs, "ecdsa")?;
        let row = bulk::run("node", node.pid(), node.addr, &certs.ca, plan.bulk_time);
        bench.add(row.await?);
        drop(node);
        if let Some(nginx) = &nginx {
            let server = Nginx::start(nginx, &certs.cert("ecdsa"), &certs.key("ecdsa"))?;
            let row = bulk::run(
                "nginx",
                server.pid(),
                server.addr,
                &certs.ca,
                plan.bulk_time,
            );
            bench.add(row.await?);
        }
    }
    if wants("replication") {
        let case = replication::Case {
            binary: &binary,
            certs: &certs,
            connections: 10,
            batch: 10,
            duration: plan.replication_time,
        };
        bench.add(replication::run(&case).await?);
    }

    let targets = targets(&bench, floor.as_ref());
    report::print_targets(&targets);
    for skipped in &bench.skipped {
        println!("skipped: {skipped}");
    }
    let report = Report {
        smoke: args.smoke,
        openssl,
        rows: bench.rows,
        targets,
        skipped: bench.skipped,
    };
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("results written to {}", args.json.display());
    Ok(())
}

impl Bench {
    fn skip(&mut self, why: &str) {
        println!("skipping: {why}");
        self.skipped.push(why.to_owned());
    }
}

fn start_node(binary: &Path, certs: &Certs, key_kind: &str) -> Result<Node, BoxError> {
    start_node_with(binary, certs, key_kind, &[])
}

fn start_node_with(
    binary: &Path,
    certs: &Certs,
    key_kind: &str,
    extra: &[(&str, String)],
) -> Result<Node, BoxError> {
    let policy = certs.dir.path().join("policy.json");
    let mut vars = vec![("TOPGUN_POLICIES_PATH", policy.display().to_string())];
    vars.extend(extra.iter().cloned());
    Node::start(binary, &certs.cert(key_kind), &certs.key(key_kind), &vars)
}

/// Items 1 and 2 for one certificate kind: the node and nginx side by side.
async fn handshake_part(
    bench: &mut Bench,
    plan: &Plan,
    binary: &Path,
    nginx: Option<&Path>,
    certs: &Certs,
    key_kind: &'static str,
) -> Result<(), BoxError> {
    let node = start_node(binary, certs, key_kind)?;
    let nginx = match nginx {
        Some(path) => Some(Nginx::start(
            path,
            &certs.cert(key_kind),
            &certs.key(key_kind),
        )?),
        None => None,
    };
    for resumed in [false, true] {
        for request in [Request::Get, Request::Upgrade] {
            for &concurrency in &plan.handshake_concurrency {
                let mut targets = vec![("node", node.pid(), node.addr)];
                if let (Some(nginx), Request::Get) = (&nginx, request) {
                    targets.push(("nginx", nginx.pid(), nginx.addr));
                }
                for (server, pid, addr) in targets {
                    let case = handshakes::Case {
                        server,
                        pid,
                        addr,
                        ca: &certs.ca,
                        key_kind,
                        request,
                        resumed,
                        concurrency,
                        duration: plan.handshake_time,
                    };
                    bench.add(handshakes::run(&case).await?);
                }
            }
        }
    }
    Ok(())
}

/// Item 3 on the embedded store and in memory (`TOPGUN_STORAGE=memory`), each with
/// one more run paced at half the peak rate of single-op batches.
async fn writes_part(
    bench: &mut Bench,
    plan: &Plan,
    binary: &Path,
    certs: &Certs,
) -> Result<(), BoxError> {
    for storage in ["embedded", "memory"] {
        let node = start_node_with(
            binary,
            certs,
            "ecdsa",
            &[("TOPGUN_STORAGE", storage.to_owned())],
        )?;
        let mut peak: f64 = 0.0;
        for &batch in &plan.write_batches {
            for &connections in &plan.write_connections {
                let case = writes::Case {
                    pid: node.pid(),
                    addr: node.addr,
                    ca: &certs.ca,
                    storage,
                    connections,
                    batch,
                    duration: plan.write_time,
                    pace: None,
                };
                let row = writes::run(&case).await?;
                if batch == 1 {
                    peak = peak.max(row.rate.unwrap_or_default());
                }
                bench.add(row);
            }
        }
        let case = writes::Case {
            pid: node.pid(),
            addr: node.addr,
            ca: &certs.ca,
            storage,
            connections: 10,
            batch: 1,
            duration: plan.write_time,
            pace: Some(peak / 2.0),
        };
        bench.add(writes::run(&case).await?);
    }
    Ok(())
}

/// The targets, from the rows of this run.
fn targets(bench: &Bench, floor: Option<&bound::Bound>) -> Vec<Target> {
    let cpu =
        |section, server, case: &str| bench.find(section, server, case).and_then(|r| r.cpu_us);
    let handshake = "ecdsa GET / c=10";
    let node_hs = cpu("handshake", "node", handshake);
    let nginx_hs = cpu("handshake", "nginx", handshake);
    let mut targets = vec![Target::new(
        "full ECDSA handshake + GET, c=10: node CPU / nginx CPU",
        node_hs.zip(nginx_hs).map(|(n, x)| n / x),
        1.0,
        "ratio",
        true,
    )];
    targets.push(Target::new(
        "full ECDSA handshake + GET, c=10: node CPU vs OpenSSL in-memory handshake ≈203 µs",
        node_hs,
        203.0,
        "µs",
        true,
    ));
    if let Some(floor) = floor {
        targets.push(Target::new(
            "full ECDSA handshake + GET, c=10: node CPU vs crypto-only floor of this run",
            node_hs,
            floor.floor_us("ecdsa"),
            "µs",
            true,
        ));
    }
    let idle_kib = bench
        .rows
        .iter()
        .rfind(|r| r.section == "idle" && r.server == "node")
        .and_then(idle::kib_per_connection);
    targets.push(Target::new(
        "RSS per idle wss:// connection (largest level)",
        idle_kib,
        24.0,
        "KiB",
        true,
    ));
    let write_cpu = |batch: usize| {
        bench
            .rows
            .iter()
            .filter(|r| {
                r.section == "writes" && r.case.starts_with(&format!("memory batch={batch} "))
            })
            .filter(|r| !r.case.contains("paced"))
            .filter_map(|r| r.cpu_us)
            .reduce(f64::min)
    };
    targets.push(Target::new(
        "acked writes in memory, batch=100, best CPU/op",
        write_cpu(100),
        1.4,
        "µs/op",
        true,
    ));
    targets.push(Target::new(
        "acked writes in memory, batch=1, best CPU/op",
        write_cpu(1),
        9.0,
        "µs/op",
        true,
    ));
    let embedded_peak = bench
        .rows
        .iter()
        .filter(|r| {
            r.section == "writes" && r.case.starts_with("embedded") && !r.case.contains("paced")
        })
        .filter_map(|r| r.rate)
        .reduce(f64::max);
    targets.push(Target::new(
        "acked writes, embedded durable store, peak",
        embedded_peak,
        50_000.0,
        "ops/s",
        false,
    ));
    for storage in ["memory", "embedded"] {
        let paced_p99 = bench
            .rows
            .iter()
            .find(|r| {
                r.section == "writes" && r.case.starts_with(storage) && r.case.contains("paced")
            })
            .and_then(|r| r.p99_us)
            .map(|us| us / 1000.0);
        targets.push(Target::new(
            if storage == "memory" {
                "p99 ack latency in memory at half the batch=1 peak (10 conns)"
            } else {
                "p99 ack latency, embedded, at half the batch=1 peak (10 conns)"
            },
            paced_p99,
            5.0,
            "ms",
            true,
        ));
    }
    let fan = bench
        .rows
        .iter()
        .find(|r| r.section == "fanout" && r.cpu_us.is_some())
        .and_then(|r| r.cpu_us);
    targets.push(Target::new(
        "fan-out: server CPU per delivered SERVER_EVENT",
        fan,
        1.0,
        "µs",
        true,
    ));
    let growth = bench
        .rows
        .iter()
        .find(|r| r.section == "fanout" && r.case.contains("slow"))
        .and_then(|r| {
            let start: f64 = r
                .note
                .split("start ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let max: f64 = r
                .note
                .split("max ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            Some(max - start)
        });
    targets.push(Target::new(
        "slow reader: RSS growth while it lags (bounded)",
        growth,
        32.0,
        "MiB",
        true,
    ));
    let node_bulk = bench
        .rows
        .iter()
        .find(|r| r.section == "bulk" && r.server == "node")
        .and_then(bulk::mb_per_cpu_second);
    let nginx_bulk = bench
        .rows
        .iter()
        .find(|r| r.section == "bulk" && r.server == "nginx")
        .and_then(bulk::mb_per_cpu_second);
    targets.push(Target::new(
        "bulk 1 MiB: node MB per CPU-second / nginx's",
        node_bulk.zip(nginx_bulk).map(|(n, x)| n / x),
        1.0,
        "ratio",
        false,
    ));
    let single = bench
        .find("writes", "node", "embedded batch=10 conns=10")
        .and_then(|r| r.rate);
    let replicated = bench
        .rows
        .iter()
        .find(|r| r.section == "replicate")
        .and_then(|r| r.rate);
    targets.push(Target::new(
        "replication ops/s / single-node (embedded, batch=10, conns=10)",
        replicated.zip(single).map(|(r, s)| r / s),
        0.5,
        "ratio",
        false,
    ));
    targets
}

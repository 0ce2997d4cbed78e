//! The results: one row per measured case, printed as a table and written as JSON,
//! and the targets checked against them.

use serde::Serialize;

/// One measured case.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    /// Which part of the benchmark: `handshake`, `resumed`, `writes`, ...
    pub section: &'static str,
    /// `node`, `nginx` or `openssl`.
    pub server: &'static str,
    /// What was measured, e.g. `ecdsa GET c=10`.
    pub case: String,
    /// Operations measured (handshakes, ops, events, messages, connections).
    pub count: u64,
    /// Operations per second of wall time.
    pub rate: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Server CPU (user + system) per operation, in microseconds.
    pub cpu_us: Option<f64>,
    /// Anything else: RSS, MB/s per CPU-second, resumption share, ...
    pub note: String,
}

/// One target of issue 7, as measured.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub measured: Option<f64>,
    pub limit: f64,
    pub unit: &'static str,
    /// `true` when a smaller measurement is better.
    pub at_most: bool,
    pub ratio: Option<f64>,
    pub met: Option<bool>,
}

impl Target {
    pub fn new(
        name: &'static str,
        measured: Option<f64>,
        limit: f64,
        unit: &'static str,
        at_most: bool,
    ) -> Target {
        let ratio = measured.filter(|_| limit > 0.0).map(|m| m / limit);
        let met = measured.map(|m| if at_most { m <= limit } else { m >= limit });
        Target {
            name,
            measured,
            limit,
            unit,
            at_most,
            ratio,
            met,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub smoke: bool,
    pub openssl: String,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub skipped: Vec<String>,
}

fn cell(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Prints one row as soon as it is measured, so a long run shows progress.
pub fn print_row(row: &Row) {
    println!(
        "{:<11} {:<7} {:<34} {:>8} {:>10} {:>9} {:>9} {:>9}  {}",
        row.section,
        row.server,
        row.case,
        row.count,
        cell(row.rate),
        cell(row.p50_us),
        cell(row.p99_us),
        cell(row.cpu_us),
        row.note
    );
}

pub fn print_header() {
    println!(
        "{:<11} {:<7} {:<34} {:>8} {:>10} {:>9} {:>9} {:>9}  note",
        "section", "server", "case", "count", "per s", "p50 µs", "p99 µs", "cpu µs/op"
    );
}

pub fn print_targets(targets: &[Target]) {
    println!();
    println!(
        "{:<58} {:>11} {:>11} {:>7}  met",
        "target", "measured", "limit", "ratio"
    );
    for t in targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not measured",
        };
        println!(
            "{:<58} {:>11} {:>11} {:>7}  {}",
            format!("{} ({})", t.name, t.unit),
            cell(t.measured),
            format!(
                "{}{}",
                if t.at_most { "≤ " } else { "≥ " },
                cell(Some(t.limit))
            ),
            t.ratio.map(|r| format!("{r:.2}×")).unwrap_or("-".into()),
            met
        );
    }
}

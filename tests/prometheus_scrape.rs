//! A real Prometheus (Debian's `prometheus` package) scrapes the node's HTTPS metrics
//! endpoint with the CA file and a client certificate, and loads the repository's alert
//! rules. Skipped with a message where `prometheus` is not installed.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{path, start_node, tls_vars, Pki};
use topgun_server::pki::LeafSpec;

/// Kills the Prometheus process when the test ends, however it ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on 127.0.0.1 for Prometheus's own web listener (it takes no port 0).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// `GET path` from Prometheus's HTTP API, as JSON. HTTP/1.0, so the body is never
/// chunked and ends when the connection closes.
async fn api(addr: SocketAddr, path: &str) -> Option<Value> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// Polls `path` until `check` finds what it wants in the answer, for up to a minute.
async fn wait_for<T>(addr: SocketAddr, path: &str, check: impl Fn(&Value) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        if let Some(answer) = api(addr, path).await {
            if let Some(found) = check(&answer) {
                return found;
            }
            last = Some(answer);
        }
        assert!(Instant::now() < deadline, "{path}: last answer {last:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_https_endpoint_with_a_client_certificate() {
    let Some(prometheus) = common::tool_or_skip(
        "prometheus",
        "prometheus_scrapes_the_https_endpoint_with_a_client_certificate",
    ) else {
        return;
    };
    let pki = Pki::new("ours");
    let mut scraper_spec = LeafSpec::new("prometheus");
    scraper_spec.usages = vec![topgun_server::pki::Usage::ClientAuth];
    let (_, scraper) = pki.write("prometheus", &scraper_spec);
    let mut vars = tls_vars(&pki.server());
    vars.extend([
        ("TOPGUN_TLS_CA_PATH".into(), path(&pki.ca_path)),
        ("TOPGUN_METRICS_TLS_ENABLED".into(), "true".into()),
        (
            "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT".into(),
            "true".into(),
        ),
    ]);
    let node = start_node(vars).await;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus/alerts.yaml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: topgun\n    scheme: https\n    tls_config:\n      \
         ca_file: {ca}\n      cert_file: {cert}\n      key_file: {key}\n      \
         server_name: localhost\n    static_configs:\n      - targets: ['{target}']\n",
        rules = rules.display(),
        ca = pki.ca_path.display(),
        cert = scraper.cert.display(),
        key = scraper.key.display(),
        target = node.metrics_addr(),
    );
    let config_path = pki.path("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    let _server = Prometheus(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                pki.path("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus starts"),
    );
    let health = wait_for(web, "/api/v1/targets", |answer| {
        let target = &answer["data"]["activeTargets"][0];
        (target["health"] == "up").then(|| target["scrapeUrl"].clone())
    })
    .await;
    let expiry = wait_for(
        web,
        "/api/v1/query?query=topgun_certificate_expiry_days",
        |answer| {
            let results = answer["data"]["result"].as_array()?;
            (!results.is_empty()).then(|| results.clone())
        },
    )
    .await;
    let rule_groups = wait_for(web, "/api/v1/rules", |answer| {
        answer["data"]["groups"].as_array().cloned()
    })
    .await;

    assert_eq!(
        health,
        format!("https://{}/metrics", node.metrics_addr()).as_str()
    );
    let server = expiry
        .iter()
        .find(|series| series["metric"]["cert_type"] == "server")
        .expect("the server certificate's expiry is scraped");
    let days: f64 = server["value"][1].as_str().unwrap().parse().unwrap();
    assert!(days > 300.0 && days <= 365.0, "{days}");
    let mut names: Vec<&str> = rule_groups
        .iter()
        .filter_map(|group| group["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["topgun-cluster", "topgun-tls"]);
}

//! The servers under test, each a child process so that its CPU and memory can be
//! read from `/proc`: the node (`topgun-server`) and, when installed, nginx.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::scratch::{tempdir, TempDir};
use topgun_server::pki::{CertificateAuthority, KeyKind, LeafSpec, Usage};

use crate::conn::BoxError;

/// Certificates for one run: a CA, server leaves of both key kinds, and two node
/// certificates for the cluster (serverAuth + clientAuth).
pub struct Certs {
    pub dir: TempDir,
    pub ca: PathBuf,
}

impl Certs {
    pub fn generate() -> Result<Certs, BoxError> {
        let dir = tempdir()?;
        let ca = CertificateAuthority::root("topgun-bench CA")?;
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, ca.cert().to_pem()?)?;
        for (name, key) in [("ecdsa", KeyKind::EcP256), ("rsa", KeyKind::Rsa2048)] {
            let mut spec = LeafSpec::new("localhost");
            spec.dns_names = vec!["localhost".into()];
            spec.ips = vec!["127.0.0.1".parse()?];
            spec.usages = vec![Usage::ServerAuth];
            spec.key = key;
            let issued = ca.issue(&spec)?;
            issued.write(
                &dir.path().join(format!("{name}.crt")),
                &dir.path().join(format!("{name}.key")),
            )?;
        }
        for name in ["node-a", "node-b"] {
            let mut spec = LeafSpec::new(name);
            spec.dns_names = vec![name.into(), "localhost".into()];
            spec.ips = vec!["127.0.0.1".parse()?];
            let issued = ca.issue(&spec)?;
            issued.write(
                &dir.path().join(format!("{name}.crt")),
                &dir.path().join(format!("{name}.key")),
            )?;
        }
        Ok(Certs { dir, ca: ca_path })
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.crt"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }
}

/// A running `topgun-server`, killed when dropped.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    pub cluster_addr: Option<SocketAddr>,
    _data: TempDir,
}

impl Node {
    /// Starts the node with client TLS from `cert`/`key` on 127.0.0.1 and free ports,
    /// plus `extra` variables; waits until it logs its listeners.
    pub fn start(
        binary: &Path,
        cert: &Path,
        key: &Path,
        extra: &[(&str, String)],
    ) -> Result<Node, BoxError> {
        let data = tempdir()?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TOPGUN_HOST", "127.0.0.1")
            .env("TOPGUN_PORT", "0")
            .env("TOPGUN_METRICS_HOST", "127.0.0.1")
            .env("TOPGUN_METRICS_PORT", "0")
            .env("TOPGUN_DATA_DIR", data.path())
            .env("TOPGUN_TLS_ENABLED", "true")
            .env("TOPGUN_TLS_CERT_PATH", cert)
            .env("TOPGUN_TLS_KEY_PATH", key)
            .env("TOPGUN_MAX_CONNECTIONS", "20000")
            .env("TOPGUN_LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info")
            .current_dir(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in extra {
            command.env(name, value);
        }
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "starting {}: {e} (build it with `cargo build --release --bins`)",
                binary.display()
            )
        })?;

        // A thread keeps draining the log so the node never blocks on a full pipe.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listener ready") || line.contains("ERROR") {
                    let _ = lines_tx.send(line);
                }
            }
        });
        let cluster = extra
            .iter()
            .any(|(name, value)| *name == "TOPGUN_CLUSTER_ENABLED" && value == "true");
        let mut node = Node {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cluster_addr: None,
            _data: data,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while node.addr.port() == 0 || (cluster && node.cluster_addr.is_none()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = lines_rx
                .recv_timeout(left)
                .map_err(|_| "the node did not report its listeners within 20 s")?;
            let addr = json_field(&line, "addr").and_then(|a| a.parse().ok());
            if line.contains("client listener ready") {
                node.addr = addr.ok_or("no addr in the client listener line")?;
            } else if line.contains("cluster listener ready") {
                node.cluster_addr = addr;
            }
        }
        Ok(node)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Has the kernel kill the child if this process dies first (killed, or a panic
/// that skips the `Drop`s), so no server outlives an interrupted run.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's state.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The string value of `"name":"..."` in a JSON log line.
fn json_field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// A free TCP port on 127.0.0.1 (for servers that cannot pick their own).
pub fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where nginx is, if installed.
pub fn find_nginx(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = given {
        return Some(path.to_owned());
    }
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// nginx in one process (no master), TLS 1.2/1.3 with the given certificate, the
/// same groups as the node, a session cache and tickets, `GET /` answered with a
/// short body and `POST /upload` discarding its body; killed when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Nginx {
    pub fn start(binary: &Path, cert: &Path, key: &Path) -> Result<Nginx, BoxError> {
        let dir = tempdir()?;
        let port = free_port()?;
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile 20000;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log error;\n\
             events {{ worker_connections 20000; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             keepalive_timeout 600s;\n keepalive_requests 1000000;\n\
             ssl_protocols TLSv1.2 TLSv1.3;\n ssl_ecdh_curve X25519:prime256v1:secp384r1;\n\
             ssl_session_cache shared:bench:10m;\n ssl_session_tickets on;\n\
             server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {cert};\n\
             ssl_certificate_key {key};\n  client_max_body_size 4m;\n\
             location = / {{ return 200 \"TopGun Server Running (Secure)\"; }}\n\
             location = /upload {{ return 204; }}\n }}\n}}\n",
            cert = cert.display(),
            key = key.display(),
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(binary);
        die_with_parent(&mut command);
        let child = command
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let nginx = Nginx {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(nginx);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("nginx did not start listening within 5 s".into())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

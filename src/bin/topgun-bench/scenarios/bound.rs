//! Item 8: what OpenSSL itself allows. `openssl speed` for the certificates'
//! signatures, the X25519 group and AES-128-GCM; X25519 key generation (which
//! `openssl speed` does not time) measured in this process with the same library.
//! The crypto-only floor of a TLS 1.3 full handshake is one signature, one key pair
//! and one derivation on the server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openssl::pkey::PKey;

use crate::conn::BoxError;
use crate::report::Row;

#[derive(Debug, Default, Clone, Copy)]
pub struct Bound {
    pub ecdsa_sign: f64,
    pub rsa_sign: f64,
    pub x25519_derive: f64,
    pub x25519_keygen: f64,
    pub aes_gcm_bytes: f64,
}

impl Bound {
    /// Server CPU µs of the crypto in one full handshake with an ECDSA P-256 or
    /// RSA-2048 certificate and X25519.
    pub fn floor_us(&self, key_kind: &str) -> f64 {
        let sign = if key_kind == "rsa" {
            self.rsa_sign
        } else {
            self.ecdsa_sign
        };
        1e6 / sign + 1e6 / self.x25519_derive + 1e6 / self.x25519_keygen
    }
}

/// Runs `openssl speed` for `seconds` per algorithm: one command after the other, or
/// (for `--smoke`, where the figures do not matter) all at once.
pub fn measure(seconds: u32, at_once: bool) -> Result<(Bound, Vec<Row>), BoxError> {
    let secs = seconds.to_string();
    let runs: [&[&str]; 4] = [
        &["ecdsap256"],
        &["rsa2048"],
        &["ecdhx25519"],
        &["-bytes", "16384", "-evp", "aes-128-gcm"],
    ];
    let start = |args: &[&str]| {
        Command::new("openssl")
            .args(["speed", "-seconds", &secs])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    };
    let mut text = String::new();
    if at_once {
        let children = runs
            .iter()
            .map(|args| start(args))
            .collect::<Result<Vec<_>, _>>()?;
        for child in children {
            text.push_str(&String::from_utf8_lossy(&child.wait_with_output()?.stdout));
        }
    } else {
        for args in runs {
            let output = start(args)?.wait_with_output()?;
            text.push_str(&String::from_utf8_lossy(&output.stdout));
        }
    }
    let mut bound = Bound::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |from_end: usize| {
            fields
                .len()
                .checked_sub(from_end)
                .and_then(|i| fields[i].parse::<f64>().ok())
        };
        if line.contains("ecdsa (nistp256)") {
            bound.ecdsa_sign = number(2).unwrap_or_default();
        } else if line.starts_with("rsa 2048 bits") {
            bound.rsa_sign = number(2).unwrap_or_default();
        } else if line.contains("ecdh (X25519)") {
            bound.x25519_derive = number(1).unwrap_or_default();
        } else if line.starts_with("AES-128-GCM") {
            let last = fields.last().copied().unwrap_or_default();
            let kilobytes: f64 = last.trim_end_matches('k').parse().unwrap_or_default();
            bound.aes_gcm_bytes = kilobytes * 1000.0;
        }
    }
    let keygen_time = if at_once {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(u64::from(seconds))
    };
    bound.x25519_keygen = x25519_keygen_rate(keygen_time)?;
    if bound.ecdsa_sign == 0.0 || bound.rsa_sign == 0.0 || bound.x25519_derive == 0.0 {
        return Err(format!("could not read `openssl speed` output:\n{text}").into());
    }

    let row = |case: &str, rate: f64, note: String| Row {
        section: "bound",
        server: "openssl",
        case: case.into(),
        count: 0,
        rate: Some(rate),
        p50_us: None,
        p99_us: None,
        cpu_us: Some(1e6 / rate),
        note,
    };
    let rows = vec![
        row("ECDSA P-256 sign", bound.ecdsa_sign, "openssl speed".into()),
        row("RSA-2048 sign", bound.rsa_sign, "openssl speed".into()),
        row("X25519 derive", bound.x25519_derive, "openssl speed".into()),
        row("X25519 keygen", bound.x25519_keygen, "in process".into()),
        Row {
            section: "bound",
            server: "openssl",
            case: "AES-128-GCM 16 KiB records".into(),
            note: format!("{:.0} MB/s on one core", bound.aes_gcm_bytes / 1e6),
            ..Row::default()
        },
        Row {
            cpu_us: Some(bound.floor_us("ecdsa")),
            note: "crypto floor: sign + keygen + derive".into(),
            ..row(
                "full handshake floor, ECDSA",
                1e6 / bound.floor_us("ecdsa"),
                String::new(),
            )
        },
        Row {
            cpu_us: Some(bound.floor_us("rsa")),
            note: "crypto floor: sign + keygen + derive".into(),
            ..row(
                "full handshake floor, RSA",
                1e6 / bound.floor_us("rsa"),
                String::new(),
            )
        },
    ];
    Ok((bound, rows))
}

fn x25519_keygen_rate(duration: Duration) -> Result<f64, BoxError> {
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        for _ in 0..100 {
            PKey::generate_x25519()?;
        }
        count += 100;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

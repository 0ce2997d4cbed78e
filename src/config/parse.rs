//! Parsers for single variables. Each error names its variable and says what it
//! takes, without repeating the value.

use std::net::IpAddr;
use std::time::Duration;

use super::{ConfigError, MinVersion, DEFAULT_CIPHERSUITES};

pub(super) fn text_or(value: Option<&str>, default: &str) -> String {
    value.unwrap_or(default).to_owned()
}

/// Two listeners on one port would fail at bind time with a less helpful message.
pub(super) fn check_distinct_ports(
    listeners: &[(&'static str, IpAddr, u16)],
) -> Result<(), ConfigError> {
    for (i, (var, host, port)) in listeners.iter().enumerate() {
        for (other_var, other_host, other_port) in &listeners[..i] {
            let hosts_overlap =
                host == other_host || host.is_unspecified() || other_host.is_unspecified();
            if *port != 0 && port == other_port && hosts_overlap {
                return Err(ConfigError::invalid(
                    var,
                    format!("is the same port as {other_var}; give each listener its own port"),
                ));
            }
        }
    }
    Ok(())
}

/// Strict booleans: a typo such as `TOPGUN_TLS_ENABLED=ture` stops the node instead of
/// silently leaving TLS off, as the reference server would.
pub(super) fn parse_bool(
    var: &'static str,
    value: Option<&str>,
    default: bool,
) -> Result<bool, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ConfigError::invalid(var, "must be `true` or `false`")),
    }
}

pub(super) fn parse_host(var: &'static str, value: Option<&str>) -> Result<IpAddr, ConfigError> {
    match value {
        None => Ok(IpAddr::from([0, 0, 0, 0])),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::invalid(
                var,
                "must be an IP address to bind, such as 0.0.0.0, 127.0.0.1 or ::",
            )
        }),
    }
}

pub(super) fn parse_port(
    var: &'static str,
    value: Option<&str>,
    default: u16,
) -> Result<u16, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::invalid(
                var,
                "must be a port number from 0 to 65535 (0 picks a free port)",
            )
        }),
    }
}

pub(super) fn parse_millis(
    var: &'static str,
    value: Option<&str>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let millis = match value {
        None => default,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=86_400_000).contains(ms))
            .ok_or_else(|| {
                ConfigError::invalid(
                    var,
                    "must be a whole number of milliseconds from 1 to 86400000",
                )
            })?,
    };
    Ok(Duration::from_millis(millis))
}

/// Like [`parse_millis`], with `0` meaning "never" (`None`).
pub(super) fn parse_optional_millis(
    var: &'static str,
    value: Option<&str>,
    default: u64,
) -> Result<Option<Duration>, ConfigError> {
    if value.map(str::trim) == Some("0") {
        return Ok(None);
    }
    parse_millis(var, value, default).map(Some)
}

pub(super) fn parse_count(
    var: &'static str,
    value: Option<&str>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::invalid(var, "must be a whole number greater than 0")),
    }
}

pub(super) fn parse_min_version(value: Option<&str>) -> Result<MinVersion, ConfigError> {
    const VAR: &str = "TOPGUN_TLS_MIN_VERSION";
    let Some(value) = value else {
        return Ok(MinVersion::Tls12);
    };
    match value.to_ascii_lowercase().as_str() {
        "tlsv1.2" => Ok(MinVersion::Tls12),
        "tlsv1.3" => Ok(MinVersion::Tls13),
        "tlsv1" | "tlsv1.0" | "tlsv1.1" | "sslv3" => Err(ConfigError::invalid(
            VAR,
            "TLS versions before 1.2 are not supported; use TLSv1.2 or TLSv1.3",
        )),
        _ => Err(ConfigError::invalid(VAR, "must be TLSv1.2 or TLSv1.3")),
    }
}

/// TLS 1.3 suites OpenSSL 3 implements. OpenSSL skips unknown names silently, which
/// could leave TLS 1.3 with no suite at all, so they are checked here.
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
];

pub(super) fn parse_ciphersuites(value: Option<&str>) -> Result<String, ConfigError> {
    const VAR: &str = "TOPGUN_TLS_CIPHERSUITES";
    let Some(value) = value else {
        return Ok(DEFAULT_CIPHERSUITES.to_owned());
    };
    if !value.split(':').all(|suite| TLS13_SUITES.contains(&suite)) {
        return Err(ConfigError::invalid(
            VAR,
            format!(
                "names something that is not a TLS 1.3 ciphersuite; use a colon-separated list of {}",
                TLS13_SUITES.join(", ")
            ),
        ));
    }
    Ok(value.to_owned())
}

/// `LOG_LEVEL` takes the reference server's pino levels, or a `tracing` filter.
pub(super) fn parse_log_level(value: Option<&str>) -> Result<String, ConfigError> {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let filter = match value.unwrap_or("info") {
        "fatal" => "error",
        "silent" => "off",
        other => other,
    };
    // A bare word that is no level would be read as a target name and silence every
    // log line, so only directives (with `=` or `,`) may be anything else.
    let bare_unknown = !filter.contains(['=', ','])
        && !LEVELS
            .iter()
            .any(|level| filter.eq_ignore_ascii_case(level));
    if bare_unknown
        || tracing_subscriber::EnvFilter::builder()
            .parse(filter)
            .is_err()
    {
        return Err(ConfigError::invalid(
            "LOG_LEVEL",
            "must be trace, debug, info, warn, error, fatal or silent (or a tracing filter)",
        ));
    }
    Ok(filter.to_owned())
}

pub(super) fn parse_log_format(value: Option<&str>, production: bool) -> Result<bool, ConfigError> {
    match value {
        None => Ok(production),
        Some("json") => Ok(true),
        Some("text") => Ok(false),
        Some(_) => Err(ConfigError::invalid(
            "TOPGUN_LOG_FORMAT",
            "must be `json` or `text`",
        )),
    }
}

pub(super) fn parse_peers(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut peers = Vec::new();
    for (index, peer) in value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let valid = peer.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            return Err(ConfigError::invalid(
                "TOPGUN_PEERS",
                format!(
                    "entry #{} is not host:port; list peers as host:port separated by commas",
                    index + 1
                ),
            ));
        }
        peers.push(peer.to_owned());
    }
    Ok(peers)
}

/// `TOPGUN_CLUSTER_ADVERTISE_HOST`: a host name or IP address peers can dial. Unset, a
/// specific listening address is advertised as is; a wildcard one (`0.0.0.0`, `::`)
/// leaves the choice to start-up, which uses the host name.
pub(super) fn parse_advertise_host(
    value: Option<&str>,
    bind: IpAddr,
) -> Result<Option<String>, ConfigError> {
    const VAR: &str = "TOPGUN_CLUSTER_ADVERTISE_HOST";
    let Some(value) = value.map(str::trim) else {
        return Ok((!bind.is_unspecified()).then(|| bind.to_string()));
    };
    if let Ok(ip) = value.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(ConfigError::invalid(
                VAR,
                "a wildcard address cannot be dialled; set the pod or host address peers reach",
            ));
        }
        return Ok(Some(ip.to_string()));
    }
    let valid_name = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid_name {
        return Err(ConfigError::invalid(
            VAR,
            "must be a host name or an IP address, without a port",
        ));
    }
    Ok(Some(value.to_owned()))
}

/// `TOPGUN_CLUSTER_ALLOWED_IDENTITIES`: peer identities (DNS or URI SANs, or the
/// subject CN) separated by commas; matched exactly, so entries are only trimmed.
pub(super) fn parse_identities(value: Option<&str>) -> Vec<String> {
    value
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|identity| !identity.is_empty())
        .map(str::to_owned)
        .collect()
}

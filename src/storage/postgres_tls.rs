//! `DATABASE_URL` to a tokio-postgres config and an OpenSSL connector.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require`; this module also
//! takes `verify-ca`, `verify-full` and `sslrootcert` out of a URL-form
//! `DATABASE_URL` and turns them into OpenSSL verification settings.

use std::path::{Path, PathBuf};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Config;

use super::StorageError;

/// What `sslmode` asks for, as libpq defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Everything needed to dial the database.
pub(super) struct Dial {
    /// Connection parameters, password included; never logged.
    pub config: Config,
    /// OpenSSL connector set up for the URL's `sslmode`.
    pub tls: MakeTlsConnector,
    /// `host:port/dbname`, safe for errors and logs.
    pub target: String,
}

/// Reads a `DATABASE_URL`.
///
/// As in libpq, `prefer` and `require` encrypt without verifying, except that
/// `require` with an `sslrootcert` verifies the chain like `verify-ca`;
/// `verify-ca` checks the chain and `verify-full` also the host name. The CA
/// is `sslrootcert` alone when given (`system` meaning the system store),
/// otherwise OpenSSL's default store (not libpq's `~/.postgresql/root.crt`). The
/// verify modes and `sslrootcert` are understood in URL form only
/// (`postgres://…?sslmode=verify-full`), not in `key=value` form.
pub(super) fn dial(url: &str) -> Result<Dial, StorageError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = Mode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();

    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "sslmode" => mode = parse_mode(&percent_decode(value, "sslmode")?)?,
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value, name)?)),
            _ => kept.push(pair),
        }
    }
    if mode == Mode::Require && root_cert.is_some() {
        mode = Mode::VerifyCa;
    }

    let rest = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    let mut config: Config = rest.parse().map_err(StorageError::DatabaseUrlSyntax)?;
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });

    let tls = connector(mode, root_cert.as_deref())?;
    let target = target(&config);
    Ok(Dial {
        config,
        tls,
        target,
    })
}

fn parse_mode(value: &str) -> Result<Mode, StorageError> {
    match value {
        "disable" => Ok(Mode::Disable),
        "allow" | "prefer" => Ok(Mode::Prefer),
        "require" => Ok(Mode::Require),
        "verify-ca" => Ok(Mode::VerifyCa),
        "verify-full" => Ok(Mode::VerifyFull),
        other => Err(StorageError::DatabaseUrl {
            reason: format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ),
        }),
    }
}

fn connector(mode: Mode, root_cert: Option<&Path>) -> Result<MakeTlsConnector, StorageError> {
    let mut builder = SslConnector::builder(SslMethod::tls()).map_err(StorageError::PostgresTls)?;

    // Like libpq, a CA file replaces the system store rather than adding to it.
    if let Some(path) = root_cert.filter(|path| *path != Path::new("system")) {
        let ca_error = |source| StorageError::PostgresCa {
            path: path.to_owned(),
            source,
        };
        let mut store = X509StoreBuilder::new().map_err(ca_error)?;
        store
            .add_lookup(X509Lookup::file())
            .and_then(|lookup| lookup.load_cert_file(path, SslFiletype::PEM))
            .map_err(ca_error)?;
        builder.set_cert_store(store.build());
    }
    let verify = matches!(mode, Mode::VerifyCa | Mode::VerifyFull);
    if !verify {
        builder.set_verify(SslVerifyMode::NONE);
    }

    let mut tls = MakeTlsConnector::new(builder.build());
    if mode != Mode::VerifyFull {
        tls.set_callback(|config, _domain| {
            config.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(tls)
}

/// `host:port/dbname` of the first host, for messages.
fn target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("{host}:{port}/{dbname}")
}

/// Decodes `%XX` escapes of a query value.
fn percent_decode(value: &str, name: &str) -> Result<String, StorageError> {
    let bad = || StorageError::DatabaseUrl {
        reason: format!("{name} is not valid percent-encoded UTF-8"),
    };
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_full_with_root_cert_is_taken_out_of_the_url() {
        let url = "postgres://u:secret@db.example:6543/app?sslmode=verify-full&sslrootcert=%2Fnone";

        let err = dial(url).err().map(|err| err.to_string());

        assert_eq!(err.as_deref(), Some("loading sslrootcert /none"));
    }

    #[test]
    fn require_without_root_cert_dials_with_tls_required() {
        let dial =
            dial("postgres://u:secret@db.example:6543/app?sslmode=require&connect_timeout=3")
                .unwrap();

        assert_eq!(dial.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(dial.target, "db.example:6543/app");
    }

    #[test]
    fn unknown_sslmode_is_refused_without_echoing_the_password() {
        let err = dial("postgres://u:hunter2@h/app?sslmode=sometimes")
            .err()
            .unwrap();

        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }
}

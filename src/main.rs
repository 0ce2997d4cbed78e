//! `topgun-server`: run the node, check its configuration, or make a development PKI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};

use topgun_server::{check, config, node, pki, shutdown, telemetry, tls};

/// Exit status for a configuration the node refuses.
const EXIT_CONFIG: u8 = 1;

#[derive(Parser)]
#[command(
    name = "topgun-server",
    version,
    long_version = long_version(),
    about = "TopGun server node (OpenSSL)",
    after_help = "Configuration comes from environment variables (TOPGUN_*, NODE_ID, JWT_SECRET, \
                  LOG_LEVEL, NODE_ENV, ...); README.md lists every one with its default."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node (the default). Configuration comes from the environment.
    Serve,
    /// Load the configuration and key material as start-up would, print a report, and exit.
    CheckConfig,
    /// Write a development CA, a localhost server certificate and node-1..3 certificates.
    Certs {
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// The crate version and the OpenSSL the binary runs with, as security reports need both.
fn long_version() -> String {
    format!(
        "{} ({})",
        env!("CARGO_PKG_VERSION"),
        openssl::version::version()
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::CheckConfig => check_config(),
        Command::Certs { out, force } => certs(&out, force),
    }
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("topgun-server: {}", telemetry::one_line(error));
    ExitCode::from(EXIT_CONFIG)
}

/// Puts FIPS mode in force when the configuration asks for it. Runs before anything
/// builds an SSL context, so that every context fetches from the FIPS provider.
fn enable_fips(config: &config::Config) -> Result<(), tls::fips::FipsError> {
    if config.fips {
        let provider = tls::fips::enable()?;
        info!(
            provider = %provider.name,
            version = %provider.version,
            "FIPS mode on: OpenSSL fetches only from the FIPS provider"
        );
    }
    Ok(())
}

fn check_config() -> ExitCode {
    let config = match config::from_env() {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    if let Err(error) = enable_fips(&config) {
        return fail(&error);
    }
    let prepared = node::prepare(config);
    match prepared {
        Ok(prepared) => {
            print!("{}", check::report(&prepared));
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn certs(out: &std::path::Path, force: bool) -> ExitCode {
    match pki::write_dev_pki(out, force) {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
            println!("development certificates only: never use them in production");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn serve() -> ExitCode {
    let config = match config::from_env() {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    telemetry::init(&config.log);
    if let Err(error) = enable_fips(&config) {
        return fail(&error);
    }

    let prepared = match node::prepare(config) {
        Ok(prepared) => prepared,
        Err(error) => return fail(&error),
    };
    prepared.log_warnings();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    runtime.block_on(async move {
        let drain = prepared.config.limits.shutdown_timeout;
        let mut signals = match shutdown::Signals::install() {
            Ok(signals) => signals,
            Err(error) => {
                error!(%error, "cannot listen for signals");
                return ExitCode::FAILURE;
            }
        };
        let running = match prepared.start().await {
            Ok(running) => running,
            Err(error) => return fail(&error),
        };

        let signal = loop {
            match signals.next().await {
                shutdown::Request::Stop(signal) => break signal,
                shutdown::Request::Reload => {
                    info!("SIGHUP: reloading TLS key material");
                    running.reload_tls();
                }
            }
        };
        info!(signal, "shutting down");

        if running.shutdown(drain).await {
            info!("all connections closed; bye");
        } else {
            warn!(
                drain_ms = drain.as_millis() as u64,
                "drain time ran out; closing the rest"
            );
        }
        ExitCode::SUCCESS
    })
}

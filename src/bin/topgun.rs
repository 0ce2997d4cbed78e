//! `topgun`: a command-line client for a TopGun node, built on `topgun_server::client`.
//!
//! Results go to standard output as JSON lines; an error is one line on standard
//! error and exit status 1. `get` of a missing key prints nothing and exits 2.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use topgun_server::client::{
    chain, mint_hs256, Client, ClientConfig, ClientError, QueryEvent, TokenClaims,
};

/// Exit status of `get` when the key has no value.
const NOT_FOUND: u8 = 2;

/// Command-line client for a TopGun node.
#[derive(Debug, Parser)]
#[command(name = "topgun", version, about)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

/// Where the node is and how to authenticate.
#[derive(Debug, Args)]
struct Connection {
    /// Node URL, ws:// or wss://
    #[arg(long, global = true, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// PEM file of CAs to trust for wss:// (added to the system's)
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// PEM client certificate chain
    #[arg(
        long = "cert",
        id = "client_cert",
        global = true,
        requires = "client_key"
    )]
    cert: Option<PathBuf>,
    /// PEM private key of --cert
    #[arg(
        long = "key",
        id = "client_key",
        global = true,
        requires = "client_cert"
    )]
    key: Option<PathBuf>,
    /// File holding the passphrase of an encrypted --key (first line)
    #[arg(long, global = true, requires = "client_key")]
    key_passphrase_file: Option<PathBuf>,
    /// JWT for AUTH (see `topgun token`)
    #[arg(long, global = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write JSON under KEY in map MAP
    Put {
        map: String,
        key: String,
        json: String,
    },
    /// Print {"key","value"} for KEY in MAP; exit 2 when there is no value
    Get { map: String, key: String },
    /// Remove KEY from MAP
    Rm { map: String, key: String },
    /// Print one {"key","value"} line per record of MAP matching --where
    Query {
        map: String,
        /// JSON object, e.g. '{"status":"open","n":{"$gt":3}}'
        #[arg(long = "where")]
        where_clause: Option<String>,
    },
    /// Print the results, then one line per change, until Ctrl-C or --count lines
    Watch {
        map: String,
        #[arg(long = "where")]
        where_clause: Option<String>,
        #[arg(long)]
        count: Option<u64>,
    },
    /// Publish JSON on TOPIC
    Pub { topic: String, json: String },
    /// Print messages published on TOPIC until Ctrl-C or --count messages
    Sub {
        topic: String,
        #[arg(long)]
        count: Option<u64>,
    },
    /// Mint a development HS256 token (never for production)
    Token {
        /// The node's JWT_SECRET
        #[arg(long)]
        secret: String,
        /// Subject (becomes userId)
        #[arg(long)]
        sub: Option<String>,
        /// Role; repeat for several (the node assumes USER when none)
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Lifetime in seconds
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

/// A failure to report: one line on stderr, then the exit status.
enum Failure {
    Error(String),
    NotFound(String),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::Error(chain(&error))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => {
            eprintln!("topgun: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::NotFound(message)) => {
            eprintln!("topgun: {message}");
            ExitCode::from(NOT_FOUND)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Token {
        secret,
        sub,
        roles,
        ttl,
    } = cli.command
    {
        return mint(&secret, sub, roles, ttl);
    }

    let client = Client::connect(config(&cli.connection)?).await?;
    let result = command(&client, cli.command).await;
    client.close().await;
    result
}

async fn command(client: &Client, command: Command) -> Result<(), Failure> {
    match command {
        Command::Put { map, key, json } => {
            let value = parse_json("the value", &json)?;
            client.put(&map, &key, &value).await?;
            print(&json!({"map": map, "key": key, "value": value}));
        }
        Command::Get { map, key } => match client.get(&map, &key).await? {
            Some(value) => print(&json!({"key": key, "value": value})),
            None => {
                return Err(Failure::NotFound(format!(
                    "not found: {key:?} in map {map:?}"
                )))
            }
        },
        Command::Rm { map, key } => {
            client.remove(&map, &key).await?;
            print(&json!({"map": map, "key": key, "removed": true}));
        }
        Command::Query { map, where_clause } => {
            let where_clause = parse_where(where_clause.as_deref())?;
            for entry in client.query(&map, where_clause.as_ref()).await? {
                print(&json!({"key": entry.key, "value": entry.value}));
            }
        }
        Command::Watch {
            map,
            where_clause,
            count,
        } => {
            let where_clause = parse_where(where_clause.as_deref())?;
            let mut watch = client.watch(&map, where_clause.as_ref()).await?;
            let mut printed = 0;
            while count.map_or(true, |count| printed < count) {
                let event = tokio::select! {
                    event = watch.next() => event,
                    _ = tokio::signal::ctrl_c() => break,
                };
                print(&watch_line(event.ok_or(ClientError::Disconnected)??));
                printed += 1;
            }
        }
        Command::Pub { topic, json } => {
            let data = parse_json("the message", &json)?;
            client.publish(&topic, &data).await?;
            print(&json!({"topic": topic, "published": true}));
        }
        Command::Sub { topic, count } => {
            let mut subscription = client.subscribe(&topic).await?;
            let mut printed = 0;
            while count.map_or(true, |count| printed < count) {
                let message = tokio::select! {
                    message = subscription.next() => message,
                    _ = tokio::signal::ctrl_c() => break,
                };
                let message = message.ok_or(ClientError::Disconnected)??;
                print(&json!({
                    "topic": message.topic,
                    "data": message.data,
                    "publisherId": message.publisher_id,
                    "timestamp": message.timestamp,
                }));
                printed += 1;
            }
        }
        Command::Token {
            secret,
            sub,
            roles,
            ttl,
        } => mint(&secret, sub, roles, ttl)?,
    }
    Ok(())
}

/// Prints `{"token", "exp"}` for a development token; needs no connection.
fn mint(secret: &str, sub: Option<String>, roles: Vec<String>, ttl: u64) -> Result<(), Failure> {
    let claims = TokenClaims::expiring_in(sub, roles, ttl);
    let token = mint_hs256(secret.as_bytes(), &claims)?;
    print(&json!({"token": token, "exp": claims.exp}));
    Ok(())
}

/// `{"event":"results","results":[..]}`, `{"event":"update","key","value"}` or
/// `{"event":"remove","key"}`.
fn watch_line(event: QueryEvent) -> Value {
    match event {
        QueryEvent::Results(results) => {
            let results: Vec<Value> = results
                .into_iter()
                .map(|entry| json!({"key": entry.key, "value": entry.value}))
                .collect();
            json!({"event": "results", "results": results})
        }
        QueryEvent::Updated(entry) => {
            json!({"event": "update", "key": entry.key, "value": entry.value})
        }
        QueryEvent::Removed { key } => json!({"event": "remove", "key": key}),
    }
}

fn config(connection: &Connection) -> Result<ClientConfig, Failure> {
    let token = connection.token.clone().ok_or_else(|| {
        Failure::Error("--token is required (mint a development one with `topgun token`)".into())
    })?;
    let mut config = ClientConfig::new(connection.url.clone(), token);
    config.ca_file = connection.ca.clone();
    config.cert_file = connection.cert.clone();
    config.key_file = connection.key.clone();
    if let Some(path) = &connection.key_passphrase_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            Failure::Error(format!(
                "reading passphrase file {}: {error}",
                path.display()
            ))
        })?;
        let passphrase = text.lines().next().unwrap_or_default();
        config.key_passphrase = Some(passphrase.as_bytes().to_vec());
    }
    Ok(config)
}

fn parse_json(what: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|error| Failure::Error(format!("{what} is not valid JSON: {error}")))
}

fn parse_where(text: Option<&str>) -> Result<Option<Value>, Failure> {
    text.map(|text| parse_json("--where", text)).transpose()
}

fn print(line: &Value) {
    println!("{line}");
}

//! `TOPGUN_CLUSTER_PINS`, through the configuration loader as the node reads it.
//!
//! What parses must print as text that parses to the same pins.

#![no_main]

use libfuzzer_sys::fuzz_target;
use topgun_server::config::{self, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(pins) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = load(pins) else {
        return;
    };
    let parsed = pins_of(&config);
    let printed: Vec<String> = parsed.iter().map(ToString::to_string).collect();
    let again = load(&printed.join(",")).expect("printed pins parse again");
    assert_eq!(pins_of(&again), parsed);
});

fn load(pins: &str) -> Result<Config, config::ConfigError> {
    // Paths only: loading configuration reads no files.
    config::from_vars([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH", "/nonexistent/node.crt"),
        ("TOPGUN_CLUSTER_TLS_KEY_PATH", "/nonexistent/node.key"),
        ("TOPGUN_CLUSTER_PINS", pins),
    ])
}

fn pins_of(config: &Config) -> Vec<config::Pin> {
    config.cluster.pins.clone()
}

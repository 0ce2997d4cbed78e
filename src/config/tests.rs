use super::*;

const PASSPHRASE: &str = "s3cret-Passphrase-42";

/// A configuration the node accepts.
fn config(vars: Vec<(&str, &str)>) -> Config {
    from_vars(vars).expect("the configuration is accepted")
}

/// Asserts that `vars` are refused with an error naming `var`, and returns the message.
fn refused_naming(vars: Vec<(&str, &str)>, var: &str) -> String {
    let message = from_vars(vars)
        .expect_err("the configuration is refused")
        .to_string();

    assert!(message.contains(var), "{message:?} does not name {var}");
    message
}

/// Asserts that `vars` are refused with an error naming `var` and not repeating `value`.
fn refused(vars: Vec<(&str, &str)>, var: &str, value: &str) -> String {
    let message = refused_naming(vars, var);

    assert!(
        !message.contains(value),
        "{message:?} repeats the value {value:?}"
    );
    message
}

/// Client TLS with PEM files.
fn client_tls() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TOPGUN_TLS_ENABLED", "true"),
        ("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
        ("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
    ]
}

fn var_path(var: &'static str, path: &str) -> VarPath {
    VarPath {
        var,
        path: PathBuf::from(path),
    }
}

fn pem(cert: VarPath, key: VarPath) -> IdentitySource {
    IdentitySource::Pem { cert, key }
}

#[test]
fn an_empty_environment_gives_the_documented_defaults() {
    let config = config(vec![]);

    assert_eq!(config.client.bind, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.cluster.bind, "0.0.0.0:9080".parse().unwrap());
    assert_eq!(config.metrics.bind, "0.0.0.0:9090".parse().unwrap());
    assert_eq!(config.client.tls, None);
    assert_eq!(config.cluster.tls, None);
    assert!(!config.cluster.mtls);
    assert!(config.cluster.reject_unauthorized);
    assert!(config.cluster.peers.is_empty());
    assert_eq!(config.cluster.discovery, Discovery::Manual);
    assert_eq!(config.limits.handshake_timeout, Duration::from_secs(10));
    assert_eq!(config.jwt_secret.expose(), DEFAULT_JWT_SECRET);
    assert!(config.jwt_secret_is_default);
    assert!(!config.production);
    assert!(config.unknown_vars.is_empty());
}

#[test]
fn tls_defaults_to_tls12_with_the_default_ciphers_and_groups() {
    let config = config(client_tls());

    let profile = config.client.tls.expect("client TLS is on").profile;
    assert_eq!(profile.min_version, MinVersion::Tls12);
    assert_eq!(profile.ciphers, DEFAULT_CIPHERS);
    assert_eq!(profile.ciphersuites, DEFAULT_CIPHERSUITES);
    assert_eq!(profile.groups, DEFAULT_GROUPS);
}

#[test]
fn host_and_ports_come_from_their_variables() {
    let config = config(vec![
        ("TOPGUN_HOST", "127.0.0.1"),
        ("TOPGUN_PORT", "1"),
        ("TOPGUN_CLUSTER_PORT", "65535"),
        ("TOPGUN_METRICS_HOST", "::1"),
        ("TOPGUN_METRICS_PORT", "0"),
    ]);

    assert_eq!(config.client.bind, "127.0.0.1:1".parse().unwrap());
    assert_eq!(config.cluster.bind, "127.0.0.1:65535".parse().unwrap());
    assert_eq!(config.metrics.bind, "[::1]:0".parse().unwrap());
}

#[test]
fn node_id_defaults_to_node_and_six_random_characters() {
    let first = config(vec![]).node_id;
    let second = config(vec![]).node_id;

    for id in [&first, &second] {
        let suffix = id.strip_prefix("node-").expect("starts with node-");
        assert_eq!(suffix.len(), 6, "{id}");
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
            "{id}"
        );
    }
    assert_ne!(first, second);
}

#[test]
fn node_id_is_taken_from_node_id_when_set() {
    let config = config(vec![("NODE_ID", "node-a")]);

    assert_eq!(config.node_id, "node-a");
}

#[test]
fn a_jwt_secret_that_is_set_is_not_flagged_as_default() {
    let config = config(vec![("JWT_SECRET", "jwt-Secret-Value-99")]);

    assert_eq!(config.jwt_secret.expose(), "jwt-Secret-Value-99");
    assert!(!config.jwt_secret_is_default);
}

#[test]
fn a_discovery_service_selects_kubernetes_polled_every_ten_seconds_by_default() {
    let config = config(vec![("TOPGUN_DISCOVERY_SERVICE", "topgun-headless")]);

    assert_eq!(
        config.cluster.discovery,
        Discovery::Kubernetes {
            service: "topgun-headless".into(),
            interval: Duration::from_millis(10_000),
        }
    );
}

#[test]
fn the_discovery_interval_is_read_in_milliseconds() {
    let config = config(vec![
        ("TOPGUN_DISCOVERY_SERVICE", "topgun-headless"),
        ("TOPGUN_DISCOVERY_INTERVAL", "2500"),
    ]);

    assert_eq!(
        config.cluster.discovery,
        Discovery::Kubernetes {
            service: "topgun-headless".into(),
            interval: Duration::from_millis(2500),
        }
    );
}

#[test]
fn a_discovery_interval_alone_leaves_discovery_manual() {
    let config = config(vec![("TOPGUN_DISCOVERY_INTERVAL", "2500")]);

    assert_eq!(config.cluster.discovery, Discovery::Manual);
}

#[test]
fn peers_are_read_as_a_comma_separated_list_of_host_port() {
    let config = config(vec![("TOPGUN_PEERS", "node-1:9080, 10.0.0.2:9081,")]);

    assert_eq!(config.cluster.peers, ["node-1:9080", "10.0.0.2:9081"]);
}

#[test]
fn cluster_tls_without_its_own_files_uses_the_client_certificate_key_and_ca() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
    ]);

    let tls = config(vars).cluster.tls.expect("cluster TLS is on");

    assert_eq!(
        tls.identity,
        pem(
            var_path("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
            var_path("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        )
    );
    assert_eq!(tls.ca, Some(var_path("TOPGUN_TLS_CA_PATH", "/tls/ca.crt")));
}

#[test]
fn cluster_tls_works_with_client_files_while_client_tls_is_off() {
    let config = config(vec![
        ("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
        ("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
    ]);

    assert_eq!(config.client.tls, None);
    assert_eq!(
        config.cluster.tls.expect("cluster TLS is on").identity,
        pem(
            var_path("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
            var_path("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        )
    );
}

#[test]
fn a_cluster_certificate_alone_falls_back_to_the_client_key() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH", "/tls/cluster.crt"),
    ]);

    let tls = config(vars).cluster.tls.expect("cluster TLS is on");

    assert_eq!(
        tls.identity,
        pem(
            var_path("TOPGUN_CLUSTER_TLS_CERT_PATH", "/tls/cluster.crt"),
            var_path("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        )
    );
}

#[test]
fn a_cluster_key_alone_falls_back_to_the_client_certificate() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_KEY_PATH", "/tls/cluster.key"),
    ]);

    let tls = config(vars).cluster.tls.expect("cluster TLS is on");

    assert_eq!(
        tls.identity,
        pem(
            var_path("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
            var_path("TOPGUN_CLUSTER_TLS_KEY_PATH", "/tls/cluster.key"),
        )
    );
}

#[test]
fn a_cluster_ca_wins_over_the_client_ca() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_CA_PATH", "/tls/cluster-ca.crt"),
    ]);

    let config = config(vars);

    assert_eq!(
        config.cluster.tls.expect("cluster TLS is on").ca,
        Some(var_path(
            "TOPGUN_CLUSTER_TLS_CA_PATH",
            "/tls/cluster-ca.crt"
        ))
    );
    assert_eq!(
        config.client.tls.expect("client TLS is on").ca,
        Some(var_path("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"))
    );
}

#[test]
fn a_cluster_pem_pair_wins_over_a_client_pkcs12_bundle() {
    let config = config(vec![
        ("TOPGUN_TLS_ENABLED", "true"),
        ("TOPGUN_TLS_PKCS12_PATH", "/tls/client.p12"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH", "/tls/cluster.crt"),
        ("TOPGUN_CLUSTER_TLS_KEY_PATH", "/tls/cluster.key"),
    ]);

    assert_eq!(
        config.cluster.tls.expect("cluster TLS is on").identity,
        pem(
            var_path("TOPGUN_CLUSTER_TLS_CERT_PATH", "/tls/cluster.crt"),
            var_path("TOPGUN_CLUSTER_TLS_KEY_PATH", "/tls/cluster.key"),
        )
    );
}

#[test]
fn a_cluster_pkcs12_bundle_wins_over_a_client_pkcs12_bundle() {
    let config = config(vec![
        ("TOPGUN_TLS_ENABLED", "true"),
        ("TOPGUN_TLS_PKCS12_PATH", "/tls/client.p12"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_PKCS12_PATH", "/tls/cluster.p12"),
    ]);

    assert_eq!(
        config.cluster.tls.expect("cluster TLS is on").identity,
        IdentitySource::Pkcs12 {
            bundle: var_path("TOPGUN_CLUSTER_TLS_PKCS12_PATH", "/tls/cluster.p12"),
        }
    );
}

/// The doc comment of `Raw::cluster_tls` promises that an explicit cluster bundle wins
/// over any client setting; today the inherited client PEM paths conflict with it.
#[test]
fn a_cluster_pkcs12_bundle_wins_over_client_pem_files() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_PKCS12_PATH", "/tls/cluster.p12"),
    ]);

    let tls = config(vars).cluster.tls.expect("cluster TLS is on");

    assert_eq!(
        tls.identity,
        IdentitySource::Pkcs12 {
            bundle: var_path("TOPGUN_CLUSTER_TLS_PKCS12_PATH", "/tls/cluster.p12"),
        }
    );
}

#[test]
fn the_cluster_passphrase_falls_back_to_the_client_one_and_its_own_wins() {
    let mut inherited = client_tls();
    inherited.extend([
        ("TOPGUN_TLS_PASSPHRASE_FILE", "/secrets/pass"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
    ]);
    let mut own = inherited.clone();
    own.push(("TOPGUN_CLUSTER_TLS_PASSPHRASE", PASSPHRASE));

    let inherited = config(inherited).cluster.tls.expect("cluster TLS is on");
    let own = config(own).cluster.tls.expect("cluster TLS is on");

    assert_eq!(
        inherited.passphrase,
        Some(PassphraseSource::File(var_path(
            "TOPGUN_TLS_PASSPHRASE_FILE",
            "/secrets/pass"
        )))
    );
    assert_eq!(
        own.passphrase,
        Some(PassphraseSource::Value {
            var: "TOPGUN_CLUSTER_TLS_PASSPHRASE",
            value: Secret::new(PASSPHRASE),
        })
    );
}

#[test]
fn the_min_version_applies_to_both_listeners() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_TLS_MIN_VERSION", "TLSv1.3"),
    ]);

    let config = config(vars);

    let client = config.client.tls.expect("client TLS is on");
    let cluster = config.cluster.tls.expect("cluster TLS is on");
    assert_eq!(client.profile.min_version, MinVersion::Tls13);
    assert_eq!(cluster.profile.min_version, MinVersion::Tls13);
}

#[test]
fn empty_values_count_as_unset() {
    let config = config(vec![
        ("TOPGUN_PORT", ""),
        ("TOPGUN_HOST", ""),
        ("TOPGUN_TLS_ENABLED", ""),
        ("TOPGUN_TLS_MIN_VERSION", ""),
        ("TOPGUN_TLS_CIPHERSUITES", ""),
        ("TOPGUN_CLUSTER_MTLS", ""),
        ("TOPGUN_DISCOVERY_SERVICE", ""),
        ("NODE_ID", ""),
        ("JWT_SECRET", ""),
    ]);

    assert_eq!(config.client.bind, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.client.tls, None);
    assert!(!config.cluster.mtls);
    assert_eq!(config.cluster.discovery, Discovery::Manual);
    assert!(config.node_id.starts_with("node-"));
    assert!(config.jwt_secret_is_default);
}

#[test]
fn an_empty_cluster_path_falls_back_to_the_client_one() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_CERT_PATH", ""),
    ]);

    let tls = config(vars).cluster.tls.expect("cluster TLS is on");

    assert_eq!(
        tls.identity,
        pem(
            var_path("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
            var_path("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        )
    );
}

#[test]
fn unknown_topgun_variables_are_listed_in_order_and_others_are_ignored() {
    let config = config(vec![
        ("TOPGUN_TLS_ENABLE", "true"),
        ("HOME", "/root"),
        ("TOPGUN_PROT", "8081"),
        ("TOPGUN_PORT", "8082"),
    ]);

    assert_eq!(config.unknown_vars, ["TOPGUN_PROT", "TOPGUN_TLS_ENABLE"]);
    assert_eq!(config.client.tls, None);
}

/// Every malformed value is refused with a message that names the variable and says
/// what it takes, and that never repeats the value (it might be a secret).
#[test]
fn each_malformed_value_is_refused_naming_its_variable_and_what_it_takes() {
    let cases = [
        ("TOPGUN_PORT", "70000", "0 to 65535"),
        ("TOPGUN_PORT", "abc", "0 to 65535"),
        ("TOPGUN_CLUSTER_PORT", "-1", "0 to 65535"),
        ("TOPGUN_METRICS_PORT", "9o90", "0 to 65535"),
        ("TOPGUN_HOST", "localhost", "IP address"),
        ("TOPGUN_TLS_ENABLED", "yes", "`true` or `false`"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "ture", "`true` or `false`"),
        ("TOPGUN_TLS_MIN_VERSION", "TLSv1.1", "TLSv1.2 or TLSv1.3"),
        ("TOPGUN_TLS_MIN_VERSION", "foo", "TLSv1.2 or TLSv1.3"),
        ("TOPGUN_TLS_CIPHERSUITES", "TLS_FAKE", "TLS 1.3 ciphersuite"),
        ("TOPGUN_PEERS", "nohostport", "host:port"),
        ("TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS", "-5", "milliseconds"),
        ("TOPGUN_SHUTDOWN_TIMEOUT_MS", "10s", "milliseconds"),
        ("TOPGUN_DISCOVERY_INTERVAL", "abc", "milliseconds"),
        ("TOPGUN_MAX_CONNECTIONS", "many", "greater than 0"),
        ("TOPGUN_LOG_FORMAT", "yaml", "`json` or `text`"),
        ("TOPGUN_METRICS_TLS_ENABLED", "on", "`true` or `false`"),
        (
            "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT",
            "1",
            "`true` or `false`",
        ),
    ];

    for (var, value, takes) in cases {
        let message = refused(vec![(var, value)], var, value);

        assert!(message.contains(takes), "{var}={value}: {message}");
    }
}

#[test]
fn a_zero_timeout_is_refused() {
    refused_naming(
        vec![("TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS", "0")],
        "TOPGUN_TLS_HANDSHAKE_TIMEOUT_MS",
    );
}

#[test]
fn an_unknown_ciphersuite_is_refused_with_the_suites_to_choose_from() {
    let error = from_vars(vec![(
        "TOPGUN_TLS_CIPHERSUITES",
        "TLS_AES_128_GCM_SHA256:TLS_FAKE",
    )])
    .expect_err("the configuration is refused");

    let message = error.to_string();
    assert!(
        message.starts_with("TOPGUN_TLS_CIPHERSUITES: "),
        "{message}"
    );
    assert!(message.contains("TLS_AES_256_GCM_SHA384"), "{message}");
}

#[test]
fn a_peer_without_a_valid_port_is_refused_with_the_expected_form() {
    for peers in ["nohostport", "node-1:0", ":9080", "node-1:http"] {
        let error = from_vars(vec![("TOPGUN_PEERS", peers)]).expect_err(peers);

        let message = error.to_string();
        assert!(message.starts_with("TOPGUN_PEERS: "), "{message}");
        assert!(message.contains("host:port"), "{message}");
    }
}

#[test]
fn tls_enabled_without_any_certificate_says_which_variables_to_set() {
    let message = refused_naming(vec![("TOPGUN_TLS_ENABLED", "true")], "TOPGUN_TLS_ENABLED");

    assert!(message.contains("TOPGUN_TLS_CERT_PATH"), "{message}");
    assert!(message.contains("TOPGUN_TLS_KEY_PATH"), "{message}");
    assert!(message.contains("TOPGUN_TLS_PKCS12_PATH"), "{message}");
}

#[test]
fn tls_enabled_with_a_key_but_no_certificate_names_the_certificate_variable() {
    let message = refused(
        vec![
            ("TOPGUN_TLS_ENABLED", "true"),
            ("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        ],
        "TOPGUN_TLS_CERT_PATH",
        "/tls/client.key",
    );

    assert!(message.starts_with("TOPGUN_TLS_CERT_PATH: "), "{message}");
}

#[test]
fn tls_enabled_with_a_certificate_but_no_key_names_the_key_variable() {
    let message = refused(
        vec![
            ("TOPGUN_TLS_ENABLED", "true"),
            ("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
        ],
        "TOPGUN_TLS_KEY_PATH",
        "/tls/client.crt",
    );

    assert!(message.starts_with("TOPGUN_TLS_KEY_PATH: "), "{message}");
}

#[test]
fn cluster_tls_enabled_without_any_certificate_names_the_cluster_switch() {
    let message = refused_naming(
        vec![("TOPGUN_CLUSTER_TLS_ENABLED", "true")],
        "TOPGUN_CLUSTER_TLS_ENABLED",
    );

    assert!(message.contains("TOPGUN_TLS_CERT_PATH"), "{message}");
}

#[test]
fn a_pkcs12_bundle_and_a_certificate_together_are_refused() {
    let mut vars = client_tls();
    vars.push(("TOPGUN_TLS_PKCS12_PATH", "/tls/client.p12"));

    let message = refused(vars, "TOPGUN_TLS_PKCS12_PATH", "/tls/client.p12");

    assert!(message.contains("TOPGUN_TLS_CERT_PATH"), "{message}");
    assert!(message.contains("set only one"), "{message}");
}

#[test]
fn a_pkcs12_bundle_and_a_key_together_are_refused() {
    let message = refused(
        vec![
            ("TOPGUN_TLS_ENABLED", "true"),
            ("TOPGUN_TLS_PKCS12_PATH", "/tls/client.p12"),
            ("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        ],
        "TOPGUN_TLS_PKCS12_PATH",
        "/tls/client.key",
    );

    assert!(message.contains("TOPGUN_TLS_KEY_PATH"), "{message}");
}

#[test]
fn a_passphrase_and_a_passphrase_file_together_are_refused() {
    let mut client = client_tls();
    client.extend([
        ("TOPGUN_TLS_PASSPHRASE", PASSPHRASE),
        ("TOPGUN_TLS_PASSPHRASE_FILE", "/secrets/pass"),
    ]);
    let mut cluster = client_tls();
    cluster.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_PASSPHRASE", PASSPHRASE),
        ("TOPGUN_CLUSTER_TLS_PASSPHRASE_FILE", "/secrets/pass"),
    ]);

    let client = refused(client, "TOPGUN_TLS_PASSPHRASE", PASSPHRASE);
    let cluster = refused(cluster, "TOPGUN_CLUSTER_TLS_PASSPHRASE", PASSPHRASE);

    assert!(client.contains("TOPGUN_TLS_PASSPHRASE_FILE"), "{client}");
    assert!(
        cluster.contains("TOPGUN_CLUSTER_TLS_PASSPHRASE_FILE"),
        "{cluster}"
    );
}

#[test]
fn mtls_without_cluster_tls_is_refused() {
    let message = refused_naming(vec![("TOPGUN_CLUSTER_MTLS", "true")], "TOPGUN_CLUSTER_MTLS");

    assert!(
        message.contains("set TOPGUN_CLUSTER_TLS_ENABLED=true"),
        "{message}"
    );
}

#[test]
fn mtls_without_a_ca_is_refused() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_MTLS", "true"),
    ]);

    let message = refused_naming(vars, "TOPGUN_CLUSTER_MTLS");

    assert!(message.contains("TOPGUN_CLUSTER_TLS_CA_PATH"), "{message}");
}

#[test]
fn mtls_with_an_inherited_ca_is_accepted() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_MTLS", "true"),
    ]);

    let config = config(vars);

    assert!(config.cluster.mtls);
}

#[test]
fn the_debug_form_of_a_config_shows_no_secret() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_TLS_PASSPHRASE", PASSPHRASE),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_TLS_PASSPHRASE", "cluster-Passphrase-7"),
        ("JWT_SECRET", "jwt-Secret-Value-99"),
        ("DATABASE_URL", "postgres://topgun:db-Password-3@db/topgun"),
    ]);

    let debug = format!("{:?}", config(vars));

    assert!(debug.contains("TOPGUN_TLS_PASSPHRASE"), "{debug}");
    for secret in [
        PASSPHRASE,
        "cluster-Passphrase-7",
        "jwt-Secret-Value-99",
        "db-Password-3",
    ] {
        assert!(!debug.contains(secret), "{secret} appears in {debug}");
    }
}

#[test]
fn the_debug_form_of_the_default_config_hides_the_default_jwt_secret() {
    let debug = format!("{:?}", config(vec![]));

    assert!(!debug.contains(DEFAULT_JWT_SECRET), "{debug}");
}

#[test]
fn a_log_level_that_is_no_level_is_refused_instead_of_silencing_every_log() {
    refused_naming(vec![("LOG_LEVEL", "verbose")], "LOG_LEVEL");

    assert_eq!(config(vec![("LOG_LEVEL", "DEBUG")]).log.filter, "DEBUG");
    assert_eq!(config(vec![("LOG_LEVEL", "fatal")]).log.filter, "error");
    assert_eq!(
        config(vec![("LOG_LEVEL", "info,topgun_server=trace")])
            .log
            .filter,
        "info,topgun_server=trace"
    );
}

#[test]
fn two_listeners_on_one_port_are_refused() {
    let message = refused_naming(
        vec![("TOPGUN_PORT", "9000"), ("TOPGUN_CLUSTER_PORT", "9000")],
        "TOPGUN_CLUSTER_PORT",
    );
    refused_naming(
        vec![
            ("TOPGUN_METRICS_HOST", "127.0.0.1"),
            ("TOPGUN_METRICS_PORT", "8080"),
        ],
        "TOPGUN_METRICS_PORT",
    );

    assert!(message.contains("TOPGUN_PORT"), "{message}");
    config(vec![("TOPGUN_PORT", "0"), ("TOPGUN_CLUSTER_PORT", "0")]);
}

#[test]
fn the_min_version_is_read_in_any_case_and_the_message_size_is_bounded() {
    let config = config(vec![
        ("TOPGUN_TLS_MIN_VERSION", "tlsv1.3"),
        ("TOPGUN_MAX_MESSAGE_SIZE", "1073741824"),
    ]);

    assert_eq!(config.limits.max_message_size, 1 << 30);
    refused_naming(
        vec![("TOPGUN_MAX_MESSAGE_SIZE", "1073741825")],
        "TOPGUN_MAX_MESSAGE_SIZE",
    );
}

#[test]
fn certificate_files_set_while_tls_is_off_are_reported_as_ignored() {
    let tls_off = config(vec![
        ("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
        ("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        ("TOPGUN_CLUSTER_TLS_PKCS12_PATH", "/tls/node.p12"),
    ]);

    assert_eq!(
        tls_off.ignored,
        [
            Ignored {
                var: "TOPGUN_TLS_CERT_PATH",
                switch: "TOPGUN_TLS_ENABLED"
            },
            Ignored {
                var: "TOPGUN_CLUSTER_TLS_PKCS12_PATH",
                switch: "TOPGUN_CLUSTER_TLS_ENABLED"
            },
        ]
    );
    assert!(config(client_tls()).ignored.is_empty());
}

#[test]
fn client_certificate_files_that_cluster_tls_falls_back_to_are_not_reported_as_ignored() {
    let cluster_only = config(vec![
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_TLS_CERT_PATH", "/tls/node.crt"),
        ("TOPGUN_TLS_KEY_PATH", "/tls/node.key"),
        ("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"),
    ]);

    assert!(
        cluster_only.ignored.is_empty(),
        "{:?}",
        cluster_only.ignored
    );
    assert!(cluster_only.cluster.enabled);
}

/// Cluster TLS with the client files and a CA.
fn cluster_tls() -> Vec<(&'static str, &'static str)> {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"),
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
    ]);
    vars
}

const CERT_PIN: &str = "sha256 Fingerprint=3A:0B:5C:7D:9E:1F:20:31:42:53:64:75:86:97:A8:B9:CA:DB:EC:FD:0E:1F:20:31:42:53:64:75:86:97:A8:B9";
const KEY_PIN: &str = "sha256//C3CIWi1EYDUCU3C6A+Ljt0L/3Uk8X7fJVYSn0f/OBe0=";

#[test]
fn cluster_pins_are_read_in_both_forms_in_order() {
    let mut vars = cluster_tls();
    let pins = format!("{CERT_PIN}, {KEY_PIN}");
    vars.push(("TOPGUN_CLUSTER_PINS", &pins));

    let config = config(vars);

    assert_eq!(config.cluster.pins.len(), 2);
    assert!(matches!(config.cluster.pins[0], Pin::Certificate(_)));
    assert!(matches!(config.cluster.pins[1], Pin::PublicKey(_)));
    assert_eq!(config.cluster.pins[1].to_string(), KEY_PIN);
}

#[test]
fn a_malformed_cluster_pin_is_refused_naming_the_variable_and_its_position() {
    let mut vars = cluster_tls();
    let pins = format!("{KEY_PIN},sha256//not-base64");
    vars.push(("TOPGUN_CLUSTER_PINS", &pins));

    let message = refused(vars, "TOPGUN_CLUSTER_PINS", "not-base64");

    assert!(message.contains("entry #2"), "{message}");
}

#[test]
fn allowed_identities_are_trimmed_and_kept_exactly_as_written() {
    let mut vars = cluster_tls();
    vars.push((
        "TOPGUN_CLUSTER_ALLOWED_IDENTITIES",
        " node-1.topgun.svc , spiffe://cluster.local/ns/db/sa/Node,,",
    ));

    let config = config(vars);

    assert_eq!(
        config.cluster.allowed_identities,
        ["node-1.topgun.svc", "spiffe://cluster.local/ns/db/sa/Node"]
    );
}

#[test]
fn the_crl_path_is_kept_with_its_variable() {
    let mut vars = cluster_tls();
    vars.push(("TOPGUN_CLUSTER_CRL_PATH", "/tls/peers.crl"));

    let config = config(vars);

    assert_eq!(
        config.cluster.crl,
        Some(var_path("TOPGUN_CLUSTER_CRL_PATH", "/tls/peers.crl"))
    );
}

#[test]
fn a_crl_without_a_cluster_ca_is_refused() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
        ("TOPGUN_CLUSTER_CRL_PATH", "/tls/peers.crl"),
    ]);

    let message = refused_naming(vars, "TOPGUN_CLUSTER_CRL_PATH");

    assert!(message.contains("TOPGUN_CLUSTER_TLS_CA_PATH"), "{message}");
}

#[test]
fn peer_checks_set_while_cluster_tls_is_off_are_reported_as_ignored() {
    let vars = vec![
        ("TOPGUN_CLUSTER_PINS", KEY_PIN),
        ("TOPGUN_CLUSTER_ALLOWED_IDENTITIES", "node-1"),
        ("TOPGUN_CLUSTER_CRL_PATH", "/tls/peers.crl"),
    ];

    let config = config(vars);

    let ignored: Vec<_> = config.ignored.iter().map(|i| i.var).collect();
    assert_eq!(
        ignored,
        [
            "TOPGUN_CLUSTER_PINS",
            "TOPGUN_CLUSTER_ALLOWED_IDENTITIES",
            "TOPGUN_CLUSTER_CRL_PATH"
        ]
    );
    assert!(config
        .ignored
        .iter()
        .all(|i| i.switch == "TOPGUN_CLUSTER_TLS_ENABLED"));
}

#[test]
fn the_cluster_is_off_alone_and_on_with_peers_discovery_or_the_switch() {
    assert!(!config(vec![]).cluster.enabled);
    assert!(
        config(vec![("TOPGUN_PEERS", "node-2:9080")])
            .cluster
            .enabled
    );
    assert!(
        config(vec![("TOPGUN_DISCOVERY_SERVICE", "topgun-headless")])
            .cluster
            .enabled
    );
    assert!(
        config(vec![("TOPGUN_CLUSTER_ENABLED", "true")])
            .cluster
            .enabled
    );
    let off = config(vec![
        ("TOPGUN_PEERS", "a:1"),
        ("TOPGUN_CLUSTER_ENABLED", "false"),
    ]);
    assert!(!off.cluster.enabled);
}

#[test]
fn a_specific_listening_address_is_advertised_and_a_wildcard_one_is_not() {
    let specific = config(vec![("TOPGUN_HOST", "10.1.2.3")]);
    assert_eq!(specific.cluster.advertise_host.as_deref(), Some("10.1.2.3"));
    assert_eq!(config(vec![]).cluster.advertise_host, None);
    let named = config(vec![("TOPGUN_CLUSTER_ADVERTISE_HOST", "topgun-0.topgun")]);
    assert_eq!(
        named.cluster.advertise_host.as_deref(),
        Some("topgun-0.topgun")
    );
}

#[test]
fn the_metrics_endpoint_is_plain_http_by_default() {
    let config = config(client_tls());

    assert_eq!(config.metrics.tls, None);
    assert!(!config.metrics.require_client_cert);
}

#[test]
fn metrics_tls_without_its_own_files_presents_the_client_certificate() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"),
        ("TOPGUN_METRICS_TLS_ENABLED", "true"),
    ]);

    let tls = config(vars).metrics.tls.expect("metrics TLS is on");

    assert_eq!(
        tls.identity,
        pem(
            var_path("TOPGUN_TLS_CERT_PATH", "/tls/client.crt"),
            var_path("TOPGUN_TLS_KEY_PATH", "/tls/client.key"),
        )
    );
    assert_eq!(tls.ca, Some(var_path("TOPGUN_TLS_CA_PATH", "/tls/ca.crt")));
}

#[test]
fn metrics_tls_files_and_ca_win_over_the_client_ones() {
    let mut vars = client_tls();
    vars.extend([
        ("TOPGUN_TLS_CA_PATH", "/tls/ca.crt"),
        ("TOPGUN_METRICS_TLS_ENABLED", "true"),
        ("TOPGUN_METRICS_TLS_CERT_PATH", "/tls/metrics.crt"),
        ("TOPGUN_METRICS_TLS_KEY_PATH", "/tls/metrics.key"),
        ("TOPGUN_METRICS_TLS_CA_PATH", "/tls/scrapers.crt"),
        ("TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT", "true"),
    ]);

    let metrics = config(vars).metrics;
    let tls = metrics.tls.expect("metrics TLS is on");

    assert_eq!(
        tls.identity,
        pem(
            var_path("TOPGUN_METRICS_TLS_CERT_PATH", "/tls/metrics.crt"),
            var_path("TOPGUN_METRICS_TLS_KEY_PATH", "/tls/metrics.key"),
        )
    );
    assert_eq!(
        tls.ca,
        Some(var_path("TOPGUN_METRICS_TLS_CA_PATH", "/tls/scrapers.crt"))
    );
    assert!(metrics.require_client_cert);
}

#[test]
fn metrics_tls_without_any_certificate_names_the_metrics_switch() {
    refused_naming(
        vec![("TOPGUN_METRICS_TLS_ENABLED", "true")],
        "TOPGUN_METRICS_TLS_ENABLED",
    );
}

#[test]
fn an_advertised_wildcard_or_host_with_port_is_refused() {
    for value in ["0.0.0.0", "::", "node-1:9080", "bad host"] {
        refused(
            vec![("TOPGUN_CLUSTER_ADVERTISE_HOST", value)],
            "TOPGUN_CLUSTER_ADVERTISE_HOST",
            value,
        );
    }
}

#[test]
fn a_peer_timeout_not_longer_than_the_ping_interval_is_refused() {
    let message = refused_naming(
        vec![
            ("TOPGUN_CLUSTER_PING_INTERVAL_MS", "2000"),
            ("TOPGUN_CLUSTER_PEER_TIMEOUT_MS", "2000"),
        ],
        "TOPGUN_CLUSTER_PEER_TIMEOUT_MS",
    );
    assert!(
        message.contains("TOPGUN_CLUSTER_PING_INTERVAL_MS"),
        "{message}"
    );
    let timing = config(vec![]).cluster;
    assert_eq!(timing.ping_interval, Duration::from_millis(1_000));
    assert_eq!(timing.peer_timeout, Duration::from_millis(5_000));
    assert_eq!(timing.anti_entropy_interval, Duration::from_millis(10_000));
}

#[test]
fn scraper_certificates_without_metrics_tls_or_without_a_ca_are_refused() {
    let message = refused_naming(
        vec![("TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT", "true")],
        "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT",
    );
    let mut no_ca = client_tls();
    no_ca.extend([
        ("TOPGUN_METRICS_TLS_ENABLED", "true"),
        ("TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT", "true"),
    ]);
    let no_ca_message = refused_naming(no_ca, "TOPGUN_METRICS_TLS_REQUIRE_CLIENT_CERT");

    assert!(message.contains("TOPGUN_METRICS_TLS_ENABLED"), "{message}");
    assert!(
        no_ca_message.contains("TOPGUN_METRICS_TLS_CA_PATH"),
        "{no_ca_message}"
    );
}

#[test]
fn a_metrics_certificate_set_while_metrics_tls_is_off_is_reported_as_ignored() {
    let config = config(vec![("TOPGUN_METRICS_TLS_CERT_PATH", "/tls/metrics.crt")]);

    assert_eq!(
        config.ignored,
        [Ignored {
            var: "TOPGUN_METRICS_TLS_CERT_PATH",
            switch: "TOPGUN_METRICS_TLS_ENABLED"
        }]
    );
}

#[test]
fn logs_are_json_in_production_or_when_asked_and_text_otherwise() {
    assert!(!config(vec![]).log.json);
    assert!(config(vec![("NODE_ENV", "production")]).log.json);
    assert!(config(vec![("TOPGUN_LOG_FORMAT", "json")]).log.json);
    assert!(
        !config(vec![
            ("NODE_ENV", "production"),
            ("TOPGUN_LOG_FORMAT", "text")
        ])
        .log
        .json
    );
    assert_eq!(config(vec![("LOG_LEVEL", "debug")]).log.filter, "debug");
}

#[test]
fn reloads_poll_every_ten_seconds_and_rotate_tickets_twice_a_day_unless_set_to_zero() {
    let defaults = config(vec![]);
    assert_eq!(defaults.reload.interval, Some(Duration::from_secs(10)));
    assert_eq!(
        defaults.reload.ticket_rotation,
        Some(Duration::from_secs(43_200))
    );
    let off = config(vec![
        ("TOPGUN_TLS_RELOAD_INTERVAL_MS", "0"),
        ("TOPGUN_TLS_TICKET_ROTATION_MS", "0"),
        ("TOPGUN_TLS_SESSION_TICKETS", "false"),
    ]);
    assert_eq!(off.reload.interval, None);
    assert_eq!(off.reload.ticket_rotation, None);
    refused(
        vec![("TOPGUN_TLS_RELOAD_INTERVAL_MS", "soon")],
        "TOPGUN_TLS_RELOAD_INTERVAL_MS",
        "soon",
    );
}

#[test]
fn fips_mode_is_off_unless_asked_for_and_then_defaults_to_aes_gcm_and_nist_curves() {
    assert!(!config(vec![]).fips);

    let config = config([client_tls(), vec![("TOPGUN_FIPS", "true")]].concat());

    assert!(config.fips);
    let profile = &config.client.tls.as_ref().unwrap().profile;
    assert_eq!(profile.ciphers, FIPS_CIPHERS);
    assert_eq!(profile.ciphersuites, FIPS_CIPHERSUITES);
    assert_eq!(profile.groups, FIPS_GROUPS);
    assert!(!profile.ciphers.contains("CHACHA20"));
}

#[test]
fn fips_mode_keeps_tls_settings_that_stay_inside_aes_gcm_and_nist_curves() {
    let config = config(vec![
        ("TOPGUN_FIPS", "true"),
        ("TOPGUN_TLS_GROUPS", "P-384:secp256r1"),
        ("TOPGUN_TLS_CIPHERSUITES", "TLS_AES_256_GCM_SHA384"),
        ("TOPGUN_TLS_CIPHERS", "ECDHE+AESGCM:!aNULL"),
    ]);

    assert!(config.fips);
}

#[test]
fn fips_mode_refuses_x25519_chacha20_and_cbc_naming_the_variable() {
    let cases = [
        ("TOPGUN_TLS_GROUPS", "X25519:P-256"),
        ("TOPGUN_TLS_CIPHERSUITES", "TLS_CHACHA20_POLY1305_SHA256"),
        ("TOPGUN_TLS_CIPHERS", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("TOPGUN_TLS_CIPHERS", "ECDHE-RSA-AES128-SHA256"),
    ];
    for (var, value) in cases {
        let message = refused(vec![("TOPGUN_FIPS", "true"), (var, value)], var, value);

        assert!(message.contains("TOPGUN_FIPS=true"), "{message}");
    }
}

#[test]
fn fips_mode_refuses_a_pkcs12_bundle_and_asks_for_pem() {
    for var in ["TOPGUN_TLS_PKCS12_PATH", "TOPGUN_CLUSTER_TLS_PKCS12_PATH"] {
        let switch = if var.starts_with("TOPGUN_CLUSTER") {
            "TOPGUN_CLUSTER_TLS_ENABLED"
        } else {
            "TOPGUN_TLS_ENABLED"
        };
        let vars = vec![
            ("TOPGUN_FIPS", "true"),
            (switch, "true"),
            (var, "/tls/node.p12"),
        ];

        let message = refused_naming(vars, var);

        assert!(message.contains("PKCS#12"), "{message}");
        assert!(message.contains("PEM"), "{message}");
    }
}

#[test]
fn fips_mode_must_be_true_or_false() {
    refused(vec![("TOPGUN_FIPS", "1")], "TOPGUN_FIPS", "1");
}

#[test]
fn storage_is_embedded_unless_memory_is_asked_for() {
    assert!(!config(vec![]).memory_storage);
    assert!(!config(vec![("TOPGUN_STORAGE", "embedded")]).memory_storage);
    assert!(config(vec![("TOPGUN_STORAGE", "memory")]).memory_storage);
}

#[test]
fn an_unknown_storage_or_memory_with_a_database_is_refused() {
    refused_naming(vec![("TOPGUN_STORAGE", "disk")], "TOPGUN_STORAGE");
    refused_naming(
        vec![
            ("TOPGUN_STORAGE", "memory"),
            ("DATABASE_URL", "postgres://u:p@db/topgun"),
        ],
        "TOPGUN_STORAGE",
    );
}

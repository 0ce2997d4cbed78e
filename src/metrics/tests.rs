use super::*;
use crate::pki::{CertificateAuthority, LeafSpec};

/// The value of the one sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a sample value is a number"))
}

#[test]
fn every_listener_and_error_type_is_exported_at_zero_before_any_handshake() {
    let text = Metrics::new().render();

    for listener in LISTENERS {
        for error_type in HANDSHAKE_ERROR_TYPES {
            let series = format!(
                "topgun_tls_handshake_errors_total{{error_type=\"{error_type}\",listener=\"{listener}\"}}"
            );
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
    }
    assert_eq!(sample(&text, "topgun_fips_mode"), Some(0.0));
    assert_eq!(sample(&text, "topgun_cluster_members"), Some(1.0));
    assert_eq!(sample(&text, "topgun_connected_clients"), Some(0.0));
}

#[test]
fn the_error_types_include_those_the_cluster_and_pinning_will_report() {
    for kind in [
        "pin_mismatch",
        "identity_rejected",
        "cert_not_yet_valid",
        "cert_revoked",
    ] {
        assert!(HANDSHAKE_ERROR_TYPES.contains(&kind), "{kind}");
    }
}

#[test]
fn an_unknown_error_type_is_counted_as_other() {
    let metrics = Metrics::new();

    metrics.handshake_failed("client", "something new");
    metrics.dial_failed("connect");
    metrics.dial_failed("10.0.0.1 refused");
    let text = metrics.render();

    let other = "topgun_tls_handshake_errors_total{error_type=\"other\",listener=\"client\"}";
    assert_eq!(sample(&text, other), Some(1.0));
    let connect = "topgun_cluster_dial_errors_total{error_type=\"connect\"}";
    assert_eq!(sample(&text, connect), Some(1.0));
    let dial_other = "topgun_cluster_dial_errors_total{error_type=\"other\"}";
    assert_eq!(sample(&text, dial_other), Some(1.0));
    assert!(!text.contains("10.0.0.1"));
}

#[test]
fn the_expiry_of_each_certificate_type_is_the_earliest_and_falls_between_scrapes() {
    let ca = CertificateAuthority::root("metrics test CA").unwrap();
    let mut soon = LeafSpec::new("soon");
    soon.valid_days = -1..3;
    let mut later = LeafSpec::new("later");
    later.valid_days = -1..30;
    let metrics = Metrics::new();

    metrics.track_certificate("server", ca.issue(&later).unwrap().cert);
    metrics.track_certificate("ca", ca.issue(&later).unwrap().cert);
    metrics.track_certificate("ca", ca.issue(&soon).unwrap().cert);
    let first = metrics.render();
    std::thread::sleep(Duration::from_millis(1100));
    let second = metrics.render();

    let days = |text: &str, cert_type: &str| {
        sample(
            text,
            &format!("topgun_certificate_expiry_days{{cert_type=\"{cert_type}\"}}"),
        )
        .unwrap()
    };
    assert!((29.0..=30.0).contains(&days(&first, "server")));
    assert!((2.0..=3.0).contains(&days(&first, "ca")));
    assert!(days(&second, "ca") < days(&first, "ca"));
    assert_ne!(days(&second, "ca").fract(), 0.0);
}

#[test]
fn replacing_certificates_changes_the_exported_expiry() {
    let ca = CertificateAuthority::root("metrics test CA").unwrap();
    let mut old = LeafSpec::new("old");
    old.valid_days = -1..2;
    let metrics = Metrics::new();
    metrics.track_certificate("server", ca.issue(&old).unwrap().cert);

    metrics.replace_certificates(
        "server",
        vec![ca.issue(&LeafSpec::new("new")).unwrap().cert],
    );
    let text = metrics.render();

    let days = sample(
        &text,
        "topgun_certificate_expiry_days{cert_type=\"server\"}",
    )
    .unwrap();
    assert!(days > 300.0, "{days}");
}

#[test]
fn ops_are_counted_by_type_and_map() {
    let metrics = Metrics::new();

    metrics.count_op(Op::write(false), "todos");
    metrics.count_op(Op::write(false), "todos");
    metrics.count_op(Op::write(true), "todos");
    metrics.count_op(Op::Get, "todos");
    metrics.count_op(Op::Subscribe, "notes");
    let text = metrics.render();

    for (series, count) in [
        ("topgun_ops_total{map=\"todos\",type=\"PUT\"}", 2.0),
        ("topgun_ops_total{map=\"todos\",type=\"DELETE\"}", 1.0),
        ("topgun_ops_total{map=\"todos\",type=\"GET\"}", 1.0),
        ("topgun_ops_total{map=\"notes\",type=\"SUBSCRIBE\"}", 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(count), "{series}");
    }
}

#[test]
fn map_names_beyond_the_cap_share_one_label() {
    let metrics = Metrics::new();

    for i in 0..MAX_MAP_LABELS + 5 {
        metrics.count_op(Op::Put, &format!("map-{i}"));
    }
    let text = metrics.render();

    let overflow = format!("topgun_ops_total{{map=\"{OVERFLOW_MAP}\",type=\"PUT\"}}");
    assert_eq!(sample(&text, &overflow), Some(5.0));
    assert_eq!(
        sample(&text, "topgun_ops_total{map=\"map-0\",type=\"PUT\"}"),
        Some(1.0)
    );
}

#[test]
fn map_sizes_are_sampled_at_each_scrape_and_vanish_with_their_source() {
    let metrics = Metrics::new();
    let sizes = std::sync::Arc::new(Mutex::new(vec![("todos".to_owned(), 3)]));
    metrics.set_map_sizes(weak_map_sizes(std::sync::Arc::downgrade(&sizes), |sizes| {
        sizes.lock().unwrap().clone()
    }));

    let first = metrics.render();
    sizes.lock().unwrap()[0].1 = 4;
    let second = metrics.render();
    drop(sizes);
    let third = metrics.render();

    let series = "topgun_map_size_items{map=\"todos\"}";
    assert_eq!(sample(&first, series), Some(3.0));
    assert_eq!(sample(&second, series), Some(4.0));
    assert_eq!(sample(&third, series), None);
}

#[test]
fn connected_clients_fall_when_their_guard_is_dropped() {
    let metrics = Metrics::new();

    let first = metrics.client_connected();
    let second = metrics.client_connected();
    let both = metrics.render();
    drop(first);
    let one = metrics.render();
    drop(second);

    assert_eq!(sample(&both, "topgun_connected_clients"), Some(2.0));
    assert_eq!(sample(&one, "topgun_connected_clients"), Some(1.0));
}

#[test]
fn cluster_peers_are_labelled_by_id_and_can_be_forgotten() {
    let metrics = Metrics::new();

    metrics.set_cluster_members(3);
    metrics.peer_up("node-b", true);
    metrics.peer_up("node-c", false);
    metrics.replication_queue_depth("node-c", 12);
    metrics.forwarded_ops(7);
    let text = metrics.render();
    metrics.forget_peer("node-c");
    let after = metrics.render();

    assert_eq!(sample(&text, "topgun_cluster_members"), Some(3.0));
    assert_eq!(
        sample(&text, "topgun_cluster_peer_up{peer=\"node-b\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "topgun_cluster_peer_up{peer=\"node-c\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "topgun_cluster_replication_queue_depth{peer=\"node-c\"}"
        ),
        Some(12.0)
    );
    assert_eq!(
        sample(&text, "topgun_cluster_forwarded_ops_total"),
        Some(7.0)
    );
    assert_eq!(
        sample(&after, "topgun_cluster_peer_up{peer=\"node-c\"}"),
        None
    );
}

#[test]
fn process_metrics_carry_the_topgun_prefix() {
    let text = Metrics::new().render();

    assert!(text.contains("topgun_process_cpu_seconds_total"), "{text}");
    assert!(text.contains("topgun_process_resident_memory_bytes"));
}

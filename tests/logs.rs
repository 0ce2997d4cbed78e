//! Structured logs: JSON in production, fields rather than formatted text, a span per
//! connection, failed client handshakes at debug, and no secrets.

mod common;

use std::io::{Read, Write};

use common::{tls_vars, NodeProcess, Pki};

fn var(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

#[test]
fn a_failed_client_handshake_is_a_debug_event_with_its_error_type_inside_the_connection_span() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.extend([
        var("NODE_ENV", "production"),
        var("LOG_LEVEL", "debug"),
        var("JWT_SECRET", "a-long-random-production-secret-0123456789"),
    ]);
    let node = NodeProcess::start(&vars);

    let mut plain = std::net::TcpStream::connect(node.addr).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let _ = plain.read_to_end(&mut Vec::new());
    let event = node.wait_for_event("tls handshake failed");

    assert_eq!(event["level"], "DEBUG", "{event}");
    assert_eq!(event["error_type"], "not_tls", "{event}");
    assert_eq!(event["span"]["name"], "conn", "{event}");
    assert_eq!(event["span"]["listener"], "client", "{event}");
    assert!(event["span"]["conn.id"].is_u64(), "{event}");
    let metrics_ready = node
        .startup_log
        .iter()
        .find(|event| event["message"] == "metrics endpoint ready")
        .expect("the metrics endpoint logs its address");
    assert_eq!(metrics_ready["level"], "INFO");
    assert_eq!(metrics_ready["tls"], false);
    assert!(node.metrics_addr.is_some());
    let everything = format!("{:?}{:?}", node.startup_log, node.later_log.lock().unwrap());
    assert!(!everything.contains("PRIVATE KEY"));
    assert!(!everything.contains("a-long-random-production-secret"));
}

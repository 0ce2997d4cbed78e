//! A handshake of each listener with itself, in memory, before the node binds.
//!
//! OpenSSL accepts settings that can never complete a handshake, such as TLS 1.2
//! ciphers that all need an RSA key while the certificate has an EC key. Such a listener
//! would start and then fail every client of that version; this check finds out first.

use std::os::unix::net::UnixStream;
use std::thread;

use openssl::ssl::{
    HandshakeError, SslAcceptor, SslConnector, SslMethod, SslVerifyMode, SslVersion,
};

/// Completes one handshake at exactly `version` between `acceptor` and a client that
/// offers every cipher and group OpenSSL has. Returns OpenSSL's reason on failure.
pub fn handshake(acceptor: &SslAcceptor, version: SslVersion) -> Result<(), String> {
    let (server_end, client_end) = UnixStream::pair().map_err(|e| e.to_string())?;

    let acceptor = acceptor.clone();
    let server = thread::spawn(move || acceptor.accept(server_end).map(drop));

    let client = (|| {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.set_verify(SslVerifyMode::NONE);
        builder.set_min_proto_version(Some(version))?;
        builder.set_max_proto_version(Some(version))?;
        builder.set_cipher_list("ALL")?;
        Ok::<_, openssl::error::ErrorStack>(builder.build())
    })()
    .map_err(|e| e.to_string())?;
    let result = client
        .configure()
        .map_err(|e| e.to_string())?
        .verify_hostname(false)
        .connect("localhost", client_end)
        .map(drop)
        .map_err(|error| match &error {
            HandshakeError::Failure(mid) | HandshakeError::WouldBlock(mid) => {
                match mid.error().ssl_error() {
                    Some(stack) => super::describe(stack),
                    None => mid.error().to_string(),
                }
            }
            HandshakeError::SetupFailure(stack) => super::describe(stack),
        });

    // The server side ends as soon as the client's side has: success, or a closed pipe.
    let _ = server.join();
    result
}

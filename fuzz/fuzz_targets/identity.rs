//! Loading a listener's identity: a PEM chain and key, or a PKCS#12 bundle, with a
//! passphrase, through the same function start-up calls.
//!
//! Input: one flag byte (bit 0: PKCS#12; bits 1-5: passphrase length), the
//! passphrase, then the file. A PEM file is given as both the certificate and the
//! key file, so one input can hold a chain and its key.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::{env, fs, process};

use libfuzzer_sys::fuzz_target;
use topgun_server::config;
use topgun_server::tls::identity;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let pkcs12 = flags & 1 == 1;
    let length = usize::from(flags >> 1 & 0x1f).min(rest.len());
    let (passphrase, file) = rest.split_at(length);

    let path = scratch_file();
    fs::write(&path, file).expect("writing the fuzz input file");
    let path = path.to_str().expect("a UTF-8 temporary path");
    let passphrase = String::from_utf8_lossy(passphrase);

    // The listener's settings as the node reads them from its environment.
    let mut vars = vec![("TOPGUN_TLS_ENABLED", "true")];
    if pkcs12 {
        vars.push(("TOPGUN_TLS_PKCS12_PATH", path));
    } else {
        vars.push(("TOPGUN_TLS_CERT_PATH", path));
        vars.push(("TOPGUN_TLS_KEY_PATH", path));
    }
    vars.push(("TOPGUN_TLS_PASSPHRASE", &passphrase));
    let Ok(settings) = config::from_vars(vars) else {
        return;
    };
    let tls = settings.client.tls.expect("TLS is enabled");

    if let Ok(loaded) = identity::load(&tls) {
        // What loads is a key with the leaf it belongs to.
        let public = loaded
            .leaf
            .public_key()
            .expect("a loaded leaf has a public key");
        assert!(loaded.key.public_eq(&public));
    }
});

/// One file per fuzzing process, rewritten for each input.
fn scratch_file() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| env::temp_dir().join(format!("topgun-fuzz-identity-{}", process::id())))
        .clone()
}

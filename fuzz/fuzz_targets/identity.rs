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
use topgun_server::config::{
    IdentitySource, MinVersion, PassphraseSource, Secret, TlsConfig, TlsProfile, VarPath,
    DEFAULT_CIPHERS, DEFAULT_CIPHERSUITES, DEFAULT_GROUPS,
};
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
    let at = |var| VarPath {
        var,
        path: path.clone(),
    };
    let identity = if pkcs12 {
        IdentitySource::Pkcs12 {
            bundle: at("TOPGUN_TLS_PKCS12_PATH"),
        }
    } else {
        IdentitySource::Pem {
            cert: at("TOPGUN_TLS_CERT_PATH"),
            key: at("TOPGUN_TLS_KEY_PATH"),
        }
    };
    let passphrase = (!passphrase.is_empty()).then(|| PassphraseSource::Value {
        var: "TOPGUN_TLS_PASSPHRASE",
        value: Secret::new(String::from_utf8_lossy(passphrase)),
    });
    let tls = TlsConfig {
        identity,
        ca: None,
        passphrase,
        profile: TlsProfile {
            min_version: MinVersion::Tls12,
            ciphers: DEFAULT_CIPHERS.to_owned(),
            ciphersuites: DEFAULT_CIPHERSUITES.to_owned(),
            groups: DEFAULT_GROUPS.to_owned(),
        },
    };

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

//! Bad configuration and key material: `check-config` and `serve` both exit 1 with one
//! line on stderr that names the variable or file and says what to do, before binding,
//! without a secret in it and without ever waiting on a passphrase prompt.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

use common::{path, run_binary, tls_vars, Files, Pki};
use topgun_server::pki::{CertificateAuthority, Issued, KeyKind};

/// The passphrase key material is encrypted with; no output may ever contain it.
const PASSPHRASE: &str = "s3cret-Passphrase-42";
/// A passphrase that decrypts nothing; no output may contain it either.
const WRONG_PASSPHRASE: &str = "Wrong-Passphrase-17";
type Vars = Vec<(String, String)>;

fn var(name: &str, value: impl AsRef<str>) -> (String, String) {
    (name.to_owned(), value.as_ref().to_owned())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that one run failed with exit status 1 and exactly one line on stderr that
/// contains every fragment and no secret; returns that line.
fn one_line_failure(output: &Output, expected: &[&str]) -> String {
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);

    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr is not one line: {stderr:?}");
    let line = lines[0];
    assert!(line.starts_with("topgun-server: "), "{line}");
    for fragment in expected {
        assert!(line.contains(fragment), "{line:?} lacks {fragment:?}");
    }
    for secret in [PASSPHRASE, WRONG_PASSPHRASE] {
        assert!(!line.contains(secret), "{line:?} shows a passphrase");
        assert!(
            !stdout.contains(secret),
            "stdout shows a passphrase: {stdout}"
        );
    }
    line.to_owned()
}

/// Asserts that `check-config` and `serve` both refuse `vars` with the same single line
/// holding every expected fragment, and that `serve` failed before binding: it runs with
/// a client port this test holds, so reaching the bind would give a bind error instead.
fn refuses(vars: &[(String, String)], expected: &[&str]) -> String {
    let held = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let mut vars = vars.to_vec();
    if !vars.iter().any(|(name, _)| name == "TOPGUN_PORT") {
        let port = held.local_addr().expect("bound").port().to_string();
        vars.extend([var("TOPGUN_HOST", "127.0.0.1"), var("TOPGUN_PORT", port)]);
    }

    let checked = one_line_failure(&run_binary(&["check-config"], &vars), expected);
    let served = one_line_failure(&run_binary(&[], &vars), expected);

    assert_eq!(served, checked);
    assert!(!served.contains("cannot listen"), "{served}");
    served
}

/// Asserts that `check-config` accepts `vars`; returns its report.
fn passes(vars: &[(String, String)]) -> String {
    let output = run_binary(&["check-config"], vars);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);

    assert!(output.status.success(), "stderr: {stderr}");
    assert!(stdout.starts_with("configuration OK"), "{stdout}");
    assert!(!stdout.contains(PASSPHRASE), "{stdout}");
    stdout
}

/// The lines of the report about one listener: its title line and the indented ones.
fn section(report: &str, title: &str) -> String {
    let start = report
        .find(title)
        .unwrap_or_else(|| panic!("no {title} in {report}"));

    report[start..]
        .lines()
        .enumerate()
        .take_while(|(index, line)| *index == 0 || line.starts_with("  "))
        .map(|(_, line)| line)
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(file: &Path, contents: &[u8]) -> PathBuf {
    std::fs::write(file, contents).expect("the test directory is writable");
    file.to_owned()
}

/// Writes `certs` into one PEM file in the given order.
fn write_chain(file: &Path, certs: &[&X509]) -> PathBuf {
    let pem: Vec<u8> = certs
        .iter()
        .flat_map(|cert| cert.to_pem().expect("PEM"))
        .collect();
    write(file, &pem)
}

/// A root CA, an intermediate under it, and a server certificate from the intermediate.
struct Chain {
    pki: Pki,
    intermediate: CertificateAuthority,
    leaf: Issued,
    key: PathBuf,
}

impl Chain {
    fn new() -> Chain {
        let pki = Pki::new("chain");
        let intermediate = pki.ca.intermediate("chain intermediate CA").unwrap();
        let leaf = intermediate.issue(&Pki::server_spec()).unwrap();
        let key = write(
            &pki.path("leaf.key"),
            &leaf.key.private_key_to_pem_pkcs8().unwrap(),
        );
        Chain {
            pki,
            intermediate,
            leaf,
            key,
        }
    }

    fn root(&self) -> &X509 {
        self.pki.ca.cert()
    }

    /// TLS variables for a chain file holding `certs` in this order, and that file.
    fn vars(&self, certs: &[&X509]) -> (Vars, PathBuf) {
        let cert = write_chain(&self.pki.path("chain.crt"), certs);
        let files = Files {
            cert: cert.clone(),
            key: self.key.clone(),
        };
        (tls_vars(&files), cert)
    }
}

/// How a private key is encrypted on disk (case C3).
#[derive(Debug, Clone, Copy)]
enum Encryption {
    /// `-----BEGIN ENCRYPTED PRIVATE KEY-----`, PKCS#8 PBES2 with AES-256-CBC.
    Pkcs8Aes256,
    /// `-----BEGIN RSA PRIVATE KEY-----` with `Proc-Type: 4,ENCRYPTED`.
    TraditionalRsa,
}

const ENCRYPTIONS: [Encryption; 2] = [Encryption::Pkcs8Aes256, Encryption::TraditionalRsa];

/// Writes a server certificate and its key encrypted with [`PASSPHRASE`].
fn encrypted_key(pki: &Pki, encryption: Encryption) -> Files {
    let mut spec = Pki::server_spec();
    let (issued, files) = match encryption {
        Encryption::Pkcs8Aes256 => pki.write("pkcs8", &spec),
        Encryption::TraditionalRsa => {
            spec.key = KeyKind::Rsa2048;
            pki.write("traditional", &spec)
        }
    };

    let pem = match encryption {
        Encryption::Pkcs8Aes256 => issued
            .key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
            .unwrap(),
        Encryption::TraditionalRsa => issued
            .key
            .rsa()
            .unwrap()
            .private_key_to_pem_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
            .unwrap(),
    };
    let header = match encryption {
        Encryption::Pkcs8Aes256 => "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        Encryption::TraditionalRsa => "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED",
    };
    assert!(text(&pem).starts_with(header), "{}", text(&pem));
    write(&files.key, &pem);
    files
}

/// Variables for client TLS from a PKCS#12 bundle opened with `passphrase`.
fn pkcs12_vars(bundle: &Path, passphrase: Option<&str>) -> Vars {
    let mut vars = vec![
        var("TOPGUN_TLS_ENABLED", "true"),
        var("TOPGUN_TLS_PKCS12_PATH", path(bundle)),
    ];
    vars.extend(passphrase.map(|pass| var("TOPGUN_TLS_PASSPHRASE", pass)));
    vars
}

/// A modern PKCS#12 bundle of a new server certificate and its key.
fn server_bundle(pki: &Pki) -> PathBuf {
    let (issued, _) = pki.write("server", &Pki::server_spec());
    write_pkcs12(
        &pki.path("server.p12"),
        Some(&issued),
        Some(&issued.cert),
        &[],
    )
}

/// Writes a modern PKCS#12 bundle (AES-256-CBC, SHA-256 MAC) holding what is given.
fn write_pkcs12(
    file: &Path,
    key: Option<&Issued>,
    cert: Option<&X509>,
    extra: &[&X509],
) -> PathBuf {
    let mut builder = Pkcs12::builder();
    builder
        .key_algorithm(Nid::AES_256_CBC)
        .cert_algorithm(Nid::AES_256_CBC)
        .mac_md(MessageDigest::sha256());
    if let Some(issued) = key {
        builder.pkey(&issued.key);
    }
    if let Some(cert) = cert {
        builder.cert(cert);
    }
    if !extra.is_empty() {
        let mut stack = Stack::new().unwrap();
        for cert in extra {
            stack.push((*cert).clone()).unwrap();
        }
        builder.ca(stack);
    }
    let bundle = builder.build2(PASSPHRASE).unwrap();
    write(file, &bundle.to_der().unwrap())
}

/// Writes a PKCS#12 bundle of `files` with the `openssl` tool's legacy RC2-40 encryption;
/// `false` when the tool is not installed.
fn write_legacy_pkcs12(files: &Files, bundle: &Path) -> bool {
    let (cert, key, out) = (path(&files.cert), path(&files.key), path(bundle));
    let pass = format!("pass:{PASSPHRASE}");
    let export = [
        "pkcs12", "-export", "-in", &cert, "-inkey", &key, "-passout", &pass, "-out", &out,
    ];
    let rc2 = ["-keypbe", "PBE-SHA1-RC2-40", "-certpbe", "PBE-SHA1-RC2-40"];

    for algorithms in [&[][..], &rc2[..]] {
        let run = Command::new("openssl")
            .args(export)
            .args(algorithms)
            .arg("-legacy")
            .output();
        match run {
            Ok(output) if output.status.success() => return true,
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return false,
            Err(error) => panic!("running openssl: {error}"),
        }
    }
    panic!("the openssl tool could not write a legacy PKCS#12 bundle");
}

#[test]
fn a_missing_certificate_file_is_refused_naming_the_file() {
    let pki = Pki::new("ours");
    let mut files = pki.server();
    files.cert = pki.path("missing.crt");

    refuses(
        &tls_vars(&files),
        &[
            "TOPGUN_TLS_CERT_PATH",
            &path(&files.cert),
            "cannot read",
            "check the path",
        ],
    );
}

#[test]
fn an_unreadable_key_file_is_refused_naming_the_file() {
    let pki = Pki::new("ours");
    let files = pki.server();

    for unreadable in [pki.dir.path().to_owned(), pki.path("missing.key")] {
        let files = Files {
            cert: files.cert.clone(),
            key: unreadable.clone(),
        };

        refuses(
            &tls_vars(&files),
            &[
                "TOPGUN_TLS_KEY_PATH",
                &path(&unreadable),
                "cannot read",
                "check the path",
            ],
        );
    }
}

#[test]
fn a_missing_ca_file_is_refused_naming_the_file() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    let ca = pki.path("missing-ca.crt");
    vars.push(var("TOPGUN_TLS_CA_PATH", path(&ca)));

    refuses(
        &vars,
        &[
            "TOPGUN_TLS_CA_PATH",
            &path(&ca),
            "cannot read",
            "check the path",
        ],
    );
}

#[test]
fn tls_enabled_without_a_certificate_is_refused() {
    let pki = Pki::new("ours");
    let files = pki.server();

    refuses(
        &[
            var("TOPGUN_TLS_ENABLED", "true"),
            var("TOPGUN_TLS_KEY_PATH", path(&files.key)),
        ],
        &[
            "TOPGUN_TLS_CERT_PATH",
            "no certificate is set",
            "set TOPGUN_TLS_CERT_PATH",
        ],
    );
    refuses(
        &[var("TOPGUN_TLS_ENABLED", "true")],
        &[
            "TOPGUN_TLS_ENABLED",
            "set TOPGUN_TLS_CERT_PATH and TOPGUN_TLS_KEY_PATH",
        ],
    );
}

#[test]
fn tls_enabled_without_a_key_is_refused() {
    let pki = Pki::new("ours");
    let files = pki.server();

    refuses(
        &[
            var("TOPGUN_TLS_ENABLED", "true"),
            var("TOPGUN_TLS_CERT_PATH", path(&files.cert)),
        ],
        &[
            "TOPGUN_TLS_KEY_PATH",
            "no private key is set",
            "set TOPGUN_TLS_KEY_PATH",
        ],
    );
}

/// C2: a correct certificate paired with the key of another one.
#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let pki = Pki::new("ours");
    let server = pki.server();
    let other = pki.write("other", &Pki::server_spec()).1;
    let files = Files {
        cert: server.cert,
        key: other.key,
    };

    refuses(
        &tls_vars(&files),
        &[
            "TOPGUN_TLS_KEY_PATH",
            &path(&files.key),
            &path(&files.cert),
            "does not match certificate",
            "pair the key with the certificate",
        ],
    );
}

/// C2: the intermediate comes before the leaf, so OpenSSL would serve it as the leaf.
#[test]
fn a_chain_with_the_intermediate_before_the_leaf_is_refused() {
    let chain = Chain::new();
    let (vars, file) = chain.vars(&[chain.intermediate.cert(), &chain.leaf.cert]);

    refuses(
        &vars,
        &[
            "TOPGUN_TLS_CERT_PATH",
            &path(&file),
            "leaf certificate must come first",
            "certificate #2",
            "order the file leaf first",
        ],
    );
}

/// C2: the root comes first and the leaf last.
#[test]
fn a_chain_with_the_root_first_is_refused() {
    let chain = Chain::new();
    let (vars, file) = chain.vars(&[chain.root(), chain.intermediate.cert(), &chain.leaf.cert]);

    refuses(
        &vars,
        &[
            "TOPGUN_TLS_CERT_PATH",
            &path(&file),
            "leaf certificate must come first",
            "certificate #3",
            "order the file leaf first",
        ],
    );
}

/// C2: the leaf is first, but the root sits before the intermediate that issued the leaf.
#[test]
fn a_chain_with_the_root_before_the_intermediate_is_refused() {
    let chain = Chain::new();
    let (vars, file) = chain.vars(&[&chain.leaf.cert, chain.root(), chain.intermediate.cert()]);

    refuses(
        &vars,
        &[
            "TOPGUN_TLS_CERT_PATH",
            &path(&file),
            "certificate #2 did not issue",
            "order the file leaf first, then each issuer",
        ],
    );
}

/// C2: leaf then intermediate is the order a server sends, and it verifies to the root.
#[test]
fn a_chain_with_the_leaf_first_then_the_intermediate_passes() {
    let chain = Chain::new();
    let (mut vars, _) = chain.vars(&[&chain.leaf.cert, chain.intermediate.cert()]);
    vars.push(var("TOPGUN_TLS_CA_PATH", path(&chain.pki.ca_path)));

    let report = passes(&vars);

    assert!(report.contains("intermediates sent: 1"), "{report}");
    assert!(report.contains("chain: verified against"), "{report}");
}

/// C3: the right passphrase, given in `TOPGUN_TLS_PASSPHRASE`, for PKCS#8 and traditional keys.
#[test]
fn an_encrypted_key_loads_with_the_passphrase_from_the_environment() {
    let pki = Pki::new("ours");

    for encryption in ENCRYPTIONS {
        let mut vars = tls_vars(&encrypted_key(&pki, encryption));
        vars.push(var("TOPGUN_TLS_PASSPHRASE", PASSPHRASE));

        let report = passes(&vars);

        assert!(report.contains("tls: on"), "{encryption:?}: {report}");
    }
}

/// C3: the right passphrase from a file that ends in a newline, as `echo` and secret
/// mounts leave it.
#[test]
fn an_encrypted_key_loads_with_the_passphrase_from_a_file_with_a_trailing_newline() {
    let pki = Pki::new("ours");
    let passphrase_file = write(
        &pki.path("passphrase"),
        format!("{PASSPHRASE}\n").as_bytes(),
    );

    for encryption in ENCRYPTIONS {
        let mut vars = tls_vars(&encrypted_key(&pki, encryption));
        vars.push(var("TOPGUN_TLS_PASSPHRASE_FILE", path(&passphrase_file)));

        let report = passes(&vars);

        assert!(report.contains("tls: on"), "{encryption:?}: {report}");
    }
}

/// C3: a wrong passphrase, from the environment or a file, names the key file and the
/// variable to fix, never the passphrase.
#[test]
fn an_encrypted_key_with_a_wrong_passphrase_is_refused_without_showing_it() {
    let pki = Pki::new("ours");
    let wrong_file = write(
        &pki.path("wrong"),
        format!("{WRONG_PASSPHRASE}\n").as_bytes(),
    );
    let sources = [
        var("TOPGUN_TLS_PASSPHRASE", WRONG_PASSPHRASE),
        var("TOPGUN_TLS_PASSPHRASE_FILE", path(&wrong_file)),
    ];

    for encryption in ENCRYPTIONS {
        let files = encrypted_key(&pki, encryption);
        for source in &sources {
            let mut vars = tls_vars(&files);
            vars.push(source.clone());

            refuses(
                &vars,
                &[
                    "TOPGUN_TLS_KEY_PATH",
                    &path(&files.key),
                    &format!("passphrase from {}", source.0),
                    "wrong passphrase",
                ],
            );
        }
    }
}

/// C3: without a passphrase the node says the key is encrypted instead of prompting.
#[test]
fn an_encrypted_key_without_a_passphrase_is_refused_without_a_prompt() {
    let pki = Pki::new("ours");

    for encryption in ENCRYPTIONS {
        let files = encrypted_key(&pki, encryption);

        refuses(
            &tls_vars(&files),
            &[
                "TOPGUN_TLS_KEY_PATH",
                &path(&files.key),
                "is encrypted",
                "set TOPGUN_TLS_PASSPHRASE",
            ],
        );
    }
}

/// A passphrase set by mistake in the `_FILE` variable is not a readable path; the
/// error must not print it as one.
#[test]
fn a_passphrase_given_where_its_file_belongs_is_never_shown() {
    let pki = Pki::new("ours");
    let files = encrypted_key(&pki, Encryption::Pkcs8Aes256);
    let mut vars = tls_vars(&files);
    vars.push(var("TOPGUN_TLS_PASSPHRASE_FILE", PASSPHRASE));

    refuses(
        &vars,
        &["TOPGUN_TLS_PASSPHRASE_FILE", "cannot read", "mounted file"],
    );
}

#[test]
fn an_empty_passphrase_file_is_refused_as_empty() {
    let pki = Pki::new("ours");
    let files = encrypted_key(&pki, Encryption::Pkcs8Aes256);
    let empty = write(&pki.path("empty"), b"\n");
    let mut vars = tls_vars(&files);
    vars.push(var("TOPGUN_TLS_PASSPHRASE_FILE", path(&empty)));

    refuses(&vars, &["TOPGUN_TLS_PASSPHRASE_FILE", "is empty"]);
}

/// Found by the `identity` fuzz target: OpenSSL's PKCS#12 parser takes the passphrase
/// as a C string, and a NUL byte in it made the node panic instead of refusing it.
#[test]
fn a_passphrase_file_with_a_nul_byte_is_refused_not_a_panic() {
    let pki = Pki::new("ours");
    let bundle = server_bundle(&pki);
    let with_nul = write(&pki.path("passphrase"), b"se\0cret\n");
    let mut vars = pkcs12_vars(&bundle, None);
    vars.push(var("TOPGUN_TLS_PASSPHRASE_FILE", path(&with_nul)));

    refuses(
        &vars,
        &["TOPGUN_TLS_PASSPHRASE_FILE", "contains a NUL byte"],
    );
}

/// A Kubernetes `secretKeyRef` where a mounted file's path belongs puts the key itself
/// in the variable; the error names the variable and never prints the key.
#[test]
fn key_material_given_where_a_path_belongs_is_refused_without_being_shown() {
    let pki = Pki::new("ours");
    let files = pki.server();
    let key_pem = text(&std::fs::read(&files.key).unwrap());
    let mut vars = tls_vars(&files);
    vars.retain(|(name, _)| name != "TOPGUN_TLS_KEY_PATH");
    vars.push(var("TOPGUN_TLS_KEY_PATH", &key_pem));

    let line = refuses(&vars, &["TOPGUN_TLS_KEY_PATH", "looks like key material"]);

    assert!(!line.contains("PRIVATE KEY"), "{line}");
    let body = key_pem.lines().nth(1).unwrap();
    assert!(!line.contains(body), "{line}");
}

/// C4: a modern AES-256 bundle with key, leaf and intermediate loads, and sends the
/// intermediate.
#[test]
fn a_modern_pkcs12_bundle_with_an_intermediate_passes() {
    let chain = Chain::new();
    let bundle = write_pkcs12(
        &chain.pki.path("modern.p12"),
        Some(&chain.leaf),
        Some(&chain.leaf.cert),
        &[chain.intermediate.cert()],
    );
    let mut vars = pkcs12_vars(&bundle, Some(PASSPHRASE));
    vars.push(var("TOPGUN_TLS_CA_PATH", path(&chain.pki.ca_path)));

    let report = passes(&vars);

    assert!(report.contains("PKCS#12"), "{report}");
    assert!(
        report.contains("subject: O=TopGun Development, CN=localhost"),
        "{report}"
    );
    assert!(report.contains("intermediates sent: 1"), "{report}");
    assert!(report.contains("chain: verified against"), "{report}");
}

/// C4: a bundle exported with RC2-40 (older OpenSSL, Windows) names the algorithm and
/// says how to re-export it.
#[test]
fn a_legacy_rc2_pkcs12_bundle_is_refused_with_a_re_export_hint() {
    let pki = Pki::new("ours");
    let files = pki.server();
    let bundle = pki.path("legacy.p12");
    if !write_legacy_pkcs12(&files, &bundle) {
        println!("skipped: the openssl command-line tool is not installed");
        return;
    }

    refuses(
        &pkcs12_vars(&bundle, Some(PASSPHRASE)),
        &[
            "TOPGUN_TLS_PKCS12_PATH",
            &path(&bundle),
            "RC2",
            "-keypbe AES-256-CBC -certpbe AES-256-CBC",
        ],
    );
}

/// C4: a wrong or missing passphrase for a bundle names the bundle, never the passphrase.
#[test]
fn a_pkcs12_bundle_with_a_wrong_or_no_passphrase_is_refused() {
    let pki = Pki::new("ours");
    let bundle = server_bundle(&pki);

    refuses(
        &pkcs12_vars(&bundle, Some(WRONG_PASSPHRASE)),
        &[
            "TOPGUN_TLS_PKCS12_PATH",
            &path(&bundle),
            "passphrase from TOPGUN_TLS_PASSPHRASE",
            "wrong passphrase",
        ],
    );
    refuses(
        &pkcs12_vars(&bundle, None),
        &[
            "TOPGUN_TLS_PKCS12_PATH",
            &path(&bundle),
            "set TOPGUN_TLS_PASSPHRASE",
        ],
    );
}

/// C4: a bundle with only a certificate.
#[test]
fn a_pkcs12_bundle_without_a_key_is_refused() {
    let pki = Pki::new("ours");
    let (issued, _) = pki.write("server", &Pki::server_spec());
    let bundle = write_pkcs12(&pki.path("nokey.p12"), None, Some(&issued.cert), &[]);

    refuses(
        &pkcs12_vars(&bundle, Some(PASSPHRASE)),
        &[
            "TOPGUN_TLS_PKCS12_PATH",
            &path(&bundle),
            "contains no private key",
            "export it with its key",
        ],
    );
}

/// C4: a bundle with only a key.
#[test]
fn a_pkcs12_bundle_without_a_certificate_is_refused() {
    let pki = Pki::new("ours");
    let (issued, _) = pki.write("server", &Pki::server_spec());
    let bundle = write_pkcs12(&pki.path("nocert.p12"), Some(&issued), None, &[]);

    refuses(
        &pkcs12_vars(&bundle, Some(PASSPHRASE)),
        &[
            "TOPGUN_TLS_PKCS12_PATH",
            &path(&bundle),
            "contains no certificate",
            "export it with its certificate",
        ],
    );
}

#[test]
fn an_unknown_min_version_is_refused() {
    for version in ["TLSv1.1", "TLSv9"] {
        let line = refuses(
            &[var("TOPGUN_TLS_MIN_VERSION", version)],
            &["TOPGUN_TLS_MIN_VERSION", "TLSv1.2 or TLSv1.3"],
        );

        assert!(!line.contains(version), "{line}");
    }
}

#[test]
fn a_cipher_string_openssl_rejects_is_refused() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(var("TOPGUN_TLS_CIPHERS", "NOT-A-CIPHER"));

    refuses(&vars, &["TOPGUN_TLS_CIPHERS", "openssl ciphers -v"]);
}

/// OpenSSL accepts `AES128-SHA`, but it needs an RSA key: with the EC server key no
/// TLS 1.2 client could ever connect. The in-memory self-test refuses it before binding,
/// and the same ciphers pass once TLS 1.2 is off.
#[test]
fn tls12_ciphers_that_cannot_work_with_the_key_are_refused_unless_tls12_is_off() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(var("TOPGUN_TLS_CIPHERS", "AES128-SHA"));

    refuses(
        &vars,
        &["TOPGUN_TLS_CIPHERS", "TLS 1.2", "EC P-256", "TLSv1.3"],
    );
    vars.push(var("TOPGUN_TLS_MIN_VERSION", "TLSv1.3"));
    passes(&vars);
}

/// A `JWT_SECRET` that starts like a PEM key but is not one stops the node, and the
/// message never shows the value.
#[test]
fn a_malformed_pem_jwt_secret_is_refused_without_showing_it() {
    let secret =
        "-----BEGIN PUBLIC KEY-----\\nnot-a-key-s3cret-Passphrase-42\\n-----END PUBLIC KEY-----";

    let line = refuses(&[var("JWT_SECRET", secret)], &["JWT_SECRET"]);

    assert!(!line.contains("not-a-key"), "{line}");
}

#[test]
fn a_malformed_policy_file_is_refused_naming_it() {
    let pki = Pki::new("ours");
    let file = write(&pki.path("policies.json"), br#"[{"role": "USER"}]"#);

    refuses(
        &[var("TOPGUN_POLICIES_PATH", path(&file))],
        &["TOPGUN_POLICIES_PATH", &path(&file)],
    );
}

#[test]
fn an_unknown_ciphersuite_is_refused() {
    refuses(
        &[var("TOPGUN_TLS_CIPHERSUITES", "TLS_FAKE")],
        &[
            "TOPGUN_TLS_CIPHERSUITES",
            "use a colon-separated list of TLS_AES_128_GCM_SHA256",
        ],
    );
}

#[test]
fn an_unknown_group_is_refused() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(var("TOPGUN_TLS_GROUPS", "NOPE"));

    refuses(&vars, &["TOPGUN_TLS_GROUPS", "use names such as X25519"]);
}

#[test]
fn a_port_that_is_not_a_number_or_out_of_range_is_refused() {
    for port in ["abc", "70000"] {
        let line = refuses(
            &[var("TOPGUN_PORT", port)],
            &["TOPGUN_PORT", "must be a port number from 0 to 65535"],
        );

        assert!(!line.contains(port), "{line}");
    }
}

#[test]
fn an_expired_server_certificate_is_refused() {
    let pki = Pki::new("ours");
    let mut spec = Pki::server_spec();
    spec.valid_days = -30..-1;
    let (_, files) = pki.write("expired", &spec);

    refuses(
        &tls_vars(&files),
        &[
            "TOPGUN_TLS_CERT_PATH",
            &path(&files.cert),
            "expired",
            "renew it",
        ],
    );
}

#[test]
fn cluster_tls_falls_back_to_the_client_certificate() {
    let pki = Pki::new("ours");
    let files = pki.server();
    let vars = vec![
        var("TOPGUN_TLS_CERT_PATH", path(&files.cert)),
        var("TOPGUN_TLS_KEY_PATH", path(&files.key)),
        var("TOPGUN_CLUSTER_TLS_ENABLED", "true"),
    ];

    let report = passes(&vars);

    let client = section(&report, "client listener");
    let cluster = section(&report, "cluster listener");
    assert!(client.contains("tls: off"), "{report}");
    assert!(cluster.contains("tls: on"), "{report}");
    assert!(
        cluster.contains(&format!("{} (TOPGUN_TLS_CERT_PATH)", path(&files.cert))),
        "{report}"
    );
}

#[test]
fn check_config_reports_the_certificate_it_would_serve() {
    let pki = Pki::new("ours");
    let mut vars = tls_vars(&pki.server());
    vars.push(var("TOPGUN_TLS_CA_PATH", path(&pki.ca_path)));

    let report = passes(&vars);

    for expected in [
        "subject: O=TopGun Development, CN=localhost",
        "SANs: DNS:localhost, IP:127.0.0.1",
        "issuer: O=TopGun Development, CN=ours test CA",
        "days left",
        "key: EC P-256",
        "intermediates sent: 0",
        &format!(
            "chain: verified against {} (TOPGUN_TLS_CA_PATH)",
            path(&pki.ca_path)
        ),
        "min version: TLSv1.2",
        "TLS 1.3 ciphersuites: ",
        "TLS_AES_256_GCM_SHA384",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing from {report}"
        );
    }
}

#[test]
fn check_config_passes_but_says_not_verified_with_another_ca() {
    let pki = Pki::new("ours");
    let other = Pki::new("other");
    let mut vars = tls_vars(&pki.server());
    vars.push(var("TOPGUN_TLS_CA_PATH", path(&other.ca_path)));

    let report = passes(&vars);

    assert!(report.contains("chain: NOT verified against"), "{report}");
    assert!(!report.contains("chain: verified"), "{report}");
}

/// The control for [`refuses`]: a good configuration does reach the bind, so a refusal
/// that mentions no bind error happened before it.
#[test]
fn serve_with_a_good_configuration_reaches_the_bind_of_a_held_port() {
    let pki = Pki::new("ours");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut vars = tls_vars(&pki.server());
    vars.extend([
        var("TOPGUN_HOST", "127.0.0.1"),
        var("TOPGUN_PORT", held.local_addr().unwrap().port().to_string()),
    ]);

    let output = run_binary(&[], &vars);

    one_line_failure(&output, &["TOPGUN_HOST/TOPGUN_PORT", "cannot listen"]);
}

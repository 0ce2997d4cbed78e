//! `TOPGUN_CLUSTER_PINS`: SHA-256 pins of the certificates cluster peers may present.
//!
//! Two forms are accepted, so that an operator can paste what the usual tools print:
//!
//! - a certificate fingerprint, as `openssl x509 -noout -fingerprint -sha256` prints it
//!   (`sha256 Fingerprint=AB:CD:…`); the prefix, the colons and the case are optional;
//! - a public-key pin, `sha256//BASE64`, the SHA-256 of the DER SubjectPublicKeyInfo in
//!   base64, as curl's `--pinnedpubkey` takes it. It survives re-issuing a certificate
//!   for the same key.

use std::fmt;

use super::ConfigError;

const VAR: &str = "TOPGUN_CLUSTER_PINS";

/// One pin a peer certificate may match.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// SHA-256 of the whole certificate (DER).
    Certificate([u8; 32]),
    /// SHA-256 of the certificate's SubjectPublicKeyInfo (DER).
    PublicKey([u8; 32]),
}

impl fmt::Display for Pin {
    /// The canonical spelling: `AB:CD:…` for fingerprints, `sha256//…` for key pins.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::Certificate(digest) => f.write_str(&fingerprint_text(digest)),
            Pin::PublicKey(digest) => write!(f, "sha256//{}", base64_encode(digest)),
        }
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A SHA-256 digest as `openssl x509 -fingerprint` prints it: upper-case hex pairs
/// joined by colons.
pub fn fingerprint_text(digest: &[u8]) -> String {
    let pairs: Vec<String> = digest.iter().map(|byte| format!("{byte:02X}")).collect();
    pairs.join(":")
}

/// Parses the comma-separated list of pins; empty entries are skipped.
pub(super) fn parse_pins(value: Option<&str>) -> Result<Vec<Pin>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut pins = Vec::new();
    for (index, entry) in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
    {
        let pin = parse_pin(entry).map_err(|problem| {
            ConfigError::invalid(VAR, format!("entry #{} {problem}", index + 1))
        })?;
        pins.push(pin);
    }
    Ok(pins)
}

fn parse_pin(entry: &str) -> Result<Pin, String> {
    if let Some(encoded) = entry.strip_prefix("sha256//") {
        return base64_decode_32(encoded)
            .map(Pin::PublicKey)
            .ok_or_else(|| {
                "is not a public-key pin: after sha256// comes the base64 of a 32-byte \
             SHA-256 digest (44 characters ending in =)"
                    .to_owned()
            });
    }

    let hex = match entry.split_once('=') {
        Some((prefix, rest)) if prefix.trim().eq_ignore_ascii_case("sha256 fingerprint") => rest,
        Some(_) => {
            return Err(
                "is neither a SHA-256 certificate fingerprint nor a sha256// \
                        public-key pin"
                    .to_owned(),
            )
        }
        None => entry,
    };
    let digits: String = hex.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(
            "is neither a SHA-256 certificate fingerprint (64 hex digits, colons optional) \
             nor a sha256// public-key pin"
                .to_owned(),
        );
    }
    if digits.len() != 64 {
        return Err(format!(
            "has {} hex digits, but a SHA-256 fingerprint has 64; compute it with \
             `openssl x509 -noout -fingerprint -sha256`",
            digits.len()
        ));
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16)
            .expect("checked to be two hex digits");
    }
    Ok(Pin::Certificate(digest))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as curl and `openssl base64` write it.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(BASE64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes exactly 32 bytes of padded standard base64 (44 characters), or nothing.
fn base64_decode_32(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 44 || text[43] != b'=' {
        return None;
    }
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = [0u8; 32];
    let mut written = 0;
    for &c in &text[..43] {
        let value = BASE64.iter().position(|&b| b == c)? as u64;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            if written == 32 {
                return None;
            }
            out[written] = (bits >> count) as u8;
            written += 1;
        }
    }
    // 43 characters carry 258 bits: 32 bytes and two padding bits that must be zero.
    (written == 32 && bits & ((1 << count) - 1) == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "3A:0B:5C:7D:9E:1F:20:31:42:53:64:75:86:97:A8:B9:\
                               CA:DB:EC:FD:0E:1F:20:31:42:53:64:75:86:97:A8:B9";

    fn digest() -> [u8; 32] {
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        digest
    }

    #[test]
    fn a_fingerprint_is_read_with_or_without_colons_prefix_and_upper_case() {
        let expected = parse_pin(FINGERPRINT).unwrap();

        let bare = FINGERPRINT.replace(':', "").to_lowercase();
        let printed = format!("sha256 Fingerprint={FINGERPRINT}");
        let upper = format!("SHA256 Fingerprint={FINGERPRINT}");

        assert_eq!(parse_pin(&bare).unwrap(), expected);
        assert_eq!(parse_pin(&printed).unwrap(), expected);
        assert_eq!(parse_pin(&upper).unwrap(), expected);
        assert_eq!(expected.to_string(), FINGERPRINT);
    }

    #[test]
    fn a_public_key_pin_round_trips_through_its_base64_form() {
        let pin = Pin::PublicKey(digest());

        let text = pin.to_string();

        assert!(text.starts_with("sha256//") && text.ends_with('='));
        assert_eq!(text.len(), "sha256//".len() + 44);
        assert_eq!(parse_pin(&text).unwrap(), pin);
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(
            base64_encode(b"any carnal pleas"),
            "YW55IGNhcm5hbCBwbGVhcw=="
        );
        assert_eq!(
            base64_encode(b"any carnal pleasu"),
            "YW55IGNhcm5hbCBwbGVhc3U="
        );
        assert_eq!(base64_encode(&[0xff; 3]), "////");
    }

    #[test]
    fn pins_are_a_comma_separated_list_of_both_forms() {
        let key_pin = Pin::PublicKey(digest()).to_string();
        let value = format!(" {FINGERPRINT} ,, {key_pin} ");

        let pins = parse_pins(Some(&value)).unwrap();

        assert_eq!(pins.len(), 2);
        assert!(matches!(pins[0], Pin::Certificate(_)));
        assert_eq!(pins[1], Pin::PublicKey(digest()));
    }

    #[test]
    fn a_sha1_fingerprint_is_refused_naming_the_entry_and_the_digits_expected() {
        let sha1 = "0B:8F:E8:F1:5B:DC:0E:F5:D3:2A:CB:DA:A8:72:B8:0B:CB:DE:8F:E6";
        let value = format!("{FINGERPRINT},{sha1}");

        let error = parse_pins(Some(&value)).unwrap_err().to_string();

        assert!(error.starts_with("TOPGUN_CLUSTER_PINS: entry #2 has 40 hex digits"));
        assert!(error.contains("-sha256"));
    }

    #[test]
    fn a_malformed_public_key_pin_is_refused_naming_the_entry() {
        for bad in ["sha256//abc=", "sha256//", "sha256//!!!!"] {
            let error = parse_pins(Some(bad)).unwrap_err().to_string();

            assert!(
                error.starts_with("TOPGUN_CLUSTER_PINS: entry #1 is not a public-key pin"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn text_that_is_no_pin_is_refused_without_repeating_it() {
        let error = parse_pins(Some("node-2.example")).unwrap_err().to_string();

        assert!(error.starts_with("TOPGUN_CLUSTER_PINS: entry #1 is neither"));
        assert!(!error.contains("node-2.example"));
    }
}

//! The ciphers an SSL context will actually offer, after OpenSSL has expanded the
//! configured cipher string (aliases such as `HIGH` or `!aNULL`) and applied the
//! security level.
//!
//! The `openssl` crate exposes no list of a context's ciphers, and `openssl-sys` does
//! not bind `SSL_CTX_get_ciphers`, so this module declares that one function itself.
//! It is the crate's only `unsafe` code.

#![allow(unsafe_code)]

use foreign_types::ForeignTypeRef;
use openssl::ssl::{SslCipher, SslContextRef};
use openssl::stack::StackRef;

extern "C" {
    // OpenSSL >= 1.1.0: `STACK_OF(SSL_CIPHER) *SSL_CTX_get_ciphers(const SSL_CTX *ctx);`
    // The stack belongs to the context; the caller must not free it.
    fn SSL_CTX_get_ciphers(
        ctx: *const openssl_sys::SSL_CTX,
    ) -> *mut openssl_sys::stack_st_SSL_CIPHER;
}

/// An offered cipher: its OpenSSL name and the protocol version it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub name: &'static str,
    pub version: &'static str,
}

/// Every cipher and TLS 1.3 suite `context` offers, in preference order.
pub fn offered(context: &SslContextRef) -> Vec<Offered> {
    // SAFETY: `context` is a live SSL_CTX for the duration of this call. The returned
    // stack is owned by it (or null when no cipher is enabled), is only read here, and
    // is not kept beyond the borrow of `context`. Cipher names and versions are static
    // strings inside libssl.
    let stack = unsafe {
        let raw = SSL_CTX_get_ciphers(context.as_ptr());
        if raw.is_null() {
            return Vec::new();
        }
        StackRef::<SslCipher>::from_ptr(raw)
    };
    stack
        .iter()
        .map(|cipher| Offered {
            name: cipher.name(),
            version: cipher.version(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use openssl::ssl::{SslContext, SslMethod};

    use super::offered;

    #[test]
    fn aliases_are_expanded_into_the_ciphers_openssl_offers() {
        let mut builder = SslContext::builder(SslMethod::tls_server()).unwrap();
        builder.set_cipher_list("ECDHE+AESGCM:!ECDSA").unwrap();
        builder.set_ciphersuites("TLS_AES_256_GCM_SHA384").unwrap();
        let context = builder.build();

        let names: Vec<_> = offered(&context).into_iter().map(|c| c.name).collect();

        assert_eq!(
            names,
            [
                "TLS_AES_256_GCM_SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
    }
}

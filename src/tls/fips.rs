//! FIPS mode (`TOPGUN_FIPS=true`): OpenSSL's FIPS provider does every cryptographic
//! operation of the node, or the node does not start.
//!
//! [`enable`] runs once, before any SSL context exists. It loads the `fips` and `base`
//! providers, makes `fips=yes` the default property query of OpenSSL's default library
//! context, and then proves that this took effect: the query is on, the provider
//! reports itself running, SHA-256 works, and MD5 (not approved) cannot be used. An
//! `OPENSSL_CONF` that merely names the provider is not trusted on its own: when its
//! `fipsmodule.cnf` is missing, OpenSSL ignores the configuration and runs without
//! FIPS.
//!
//! Everything else reaches OpenSSL through the EVP interface, so TLS, JWT
//! verification and pin hashing fetch their algorithms from the provider from then on.
//! Provider loading is process-wide: the providers stay loaded until the process ends.

use std::sync::OnceLock;

use openssl::error::ErrorStack;
use openssl::hash::{hash, MessageDigest};
use openssl::md::Md;
use openssl::provider::Provider;

/// What the loaded FIPS provider says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FipsProvider {
    /// E.g. `OpenSSL FIPS Provider`.
    pub name: String,
    /// E.g. `3.1.2`.
    pub version: String,
}

/// The providers, held for the life of the process, and their description.
struct Active {
    provider: FipsProvider,
    _fips: Provider,
    _base: Provider,
}

static ACTIVE: OnceLock<Active> = OnceLock::new();

/// Why FIPS mode could not be put in force. Every message starts with the variable
/// that asked for it.
#[derive(Debug, thiserror::Error)]
pub enum FipsError {
    #[error("TOPGUN_FIPS: cannot load OpenSSL's {name} provider (module directory: {modules}); build it with fips/build.sh and set OPENSSL_MODULES and OPENSSL_CONF as fips/README.md says")]
    Load {
        name: &'static str,
        modules: String,
        #[source]
        source: ErrorStack,
    },
    #[error("TOPGUN_FIPS: OpenSSL did not make fips=yes its default property query")]
    Properties,
    #[error("TOPGUN_FIPS: the FIPS provider is loaded but {problem}; refusing to start outside FIPS mode")]
    NotInForce { problem: &'static str },
}

/// The FIPS provider in force, or `None` when the node runs without FIPS mode.
pub fn active() -> Option<&'static FipsProvider> {
    ACTIVE.get().map(|active| &active.provider)
}

/// Loads the FIPS and base providers, makes `fips=yes` the default, and checks that it
/// holds. Calling it again returns the provider already in force.
pub fn enable() -> Result<&'static FipsProvider, FipsError> {
    if let Some(provider) = active() {
        return Ok(provider);
    }
    // Reads OPENSSL_CONF first, as any later OpenSSL call would.
    openssl::init();

    let load = |name: &'static str| {
        Provider::try_load(None, name, false).map_err(|source| FipsError::Load {
            name,
            modules: module_directory(),
            source,
        })
    };
    let fips = load("fips")?;
    let base = load("base")?;
    if !ffi::enable_fips_properties() {
        return Err(FipsError::Properties);
    }

    let provider = prove(&fips)?;
    let active = ACTIVE.get_or_init(|| Active {
        provider,
        _fips: fips,
        _base: base,
    });
    Ok(&active.provider)
}

/// Checks that the default library context now only uses approved algorithms from a
/// running FIPS provider, and returns the provider's name and version.
fn prove(fips: &Provider) -> Result<FipsProvider, FipsError> {
    let not_in_force = |problem| FipsError::NotInForce { problem };

    if !ffi::fips_properties_enabled() {
        return Err(not_in_force("the default property query is not fips=yes"));
    }
    let (provider, running) =
        ffi::describe(fips).ok_or(not_in_force("does not report its name and version"))?;
    if !running {
        return Err(not_in_force("reports itself in an error state"));
    }

    // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let digest = hash(MessageDigest::sha256(), b"abc")
        .map_err(|_| not_in_force("cannot compute SHA-256"))?;
    if hex(&digest) != ABC_SHA256 {
        return Err(not_in_force("computes a wrong SHA-256"));
    }

    let md5_fetched = Md::fetch(None, "MD5", None).is_ok();
    let md5_computed = hash(MessageDigest::md5(), b"abc").is_ok();
    // A failed attempt leaves its reasons on the thread's error queue.
    let _ = ErrorStack::get();
    if md5_fetched || md5_computed {
        return Err(not_in_force(
            "MD5, which FIPS does not approve, is still available",
        ));
    }
    Ok(provider)
}

/// Where OpenSSL looks for provider modules, for the error message.
fn module_directory() -> String {
    match std::env::var("OPENSSL_MODULES") {
        Ok(dir) => format!("OPENSSL_MODULES={dir}"),
        Err(_) => "OpenSSL's built-in default, OPENSSL_MODULES is unset".to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The calls `openssl` does not wrap: switching the default property query, which only
/// `openssl-sys` binds, and asking a provider for its parameters, which neither binds.
mod ffi {
    #![allow(unsafe_code)]

    use std::ffi::{c_char, c_int, c_void, CStr};
    use std::ptr;

    use foreign_types::ForeignTypeRef;
    use openssl::provider::Provider;
    use openssl_sys::{OSSL_PARAM, OSSL_PROVIDER};

    use super::FipsProvider;

    // From OpenSSL 3's <openssl/core.h>.
    const OSSL_PARAM_INTEGER: u32 = 1;
    const OSSL_PARAM_UTF8_PTR: u32 = 6;
    const OSSL_PARAM_UNMODIFIED: usize = usize::MAX;

    extern "C" {
        // OpenSSL >= 3.0:
        // `int OSSL_PROVIDER_get_params(const OSSL_PROVIDER *prov, OSSL_PARAM params[]);`
        fn OSSL_PROVIDER_get_params(prov: *const OSSL_PROVIDER, params: *mut OSSL_PARAM) -> c_int;
    }

    /// Sets `fips=yes` in the default library context's default property query.
    pub(super) fn enable_fips_properties() -> bool {
        // SAFETY: a null context selects the default library context, which lives as
        // long as the process; the call only edits its property query.
        unsafe { openssl_sys::EVP_default_properties_enable_fips(ptr::null_mut(), 1) == 1 }
    }

    /// Whether the default library context's property query contains `fips=yes`.
    pub(super) fn fips_properties_enabled() -> bool {
        // SAFETY: as above; the call only reads the query.
        unsafe { openssl_sys::EVP_default_properties_is_fips_enabled(ptr::null_mut()) == 1 }
    }

    /// The provider's name and version, and whether its status says it is running.
    pub(super) fn describe(provider: &Provider) -> Option<(FipsProvider, bool)> {
        let mut name: *const c_char = ptr::null();
        let mut version: *const c_char = ptr::null();
        let mut status: c_int = 0;
        let param = |key: &'static CStr, data_type, data: *mut c_void, data_size| OSSL_PARAM {
            key: key.as_ptr(),
            data_type,
            data,
            data_size,
            return_size: OSSL_PARAM_UNMODIFIED,
        };
        let mut params = [
            param(
                c"name",
                OSSL_PARAM_UTF8_PTR,
                ptr::addr_of_mut!(name).cast(),
                0,
            ),
            param(
                c"version",
                OSSL_PARAM_UTF8_PTR,
                ptr::addr_of_mut!(version).cast(),
                0,
            ),
            param(
                c"status",
                OSSL_PARAM_INTEGER,
                ptr::addr_of_mut!(status).cast(),
                std::mem::size_of::<c_int>(),
            ),
            OSSL_PARAM {
                key: ptr::null(),
                data_type: 0,
                data: ptr::null_mut(),
                data_size: 0,
                return_size: 0,
            },
        ];
        // SAFETY: `provider` is a live provider handle; `params` is an array ending
        // with an all-null entry, as OpenSSL requires, whose data pointers point at
        // locals of matching types that outlive the call. The provider sets the string
        // pointers to static strings inside the module, which stays loaded for the
        // process (the handle is kept), and they are copied before returning.
        unsafe {
            if OSSL_PROVIDER_get_params(provider.as_ptr(), params.as_mut_ptr()) != 1
                || name.is_null()
                || version.is_null()
            {
                return None;
            }
            let described = FipsProvider {
                name: CStr::from_ptr(name).to_string_lossy().into_owned(),
                version: CStr::from_ptr(version).to_string_lossy().into_owned(),
            };
            let running = params[2].return_size != OSSL_PARAM_UNMODIFIED && status == 1;
            Some((described, running))
        }
    }
}

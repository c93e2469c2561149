//! URL schemes: which backend [`Cache::from_url`](crate::Cache::from_url) opens for a scheme.
//! Backend crates add theirs at link time ([`SCHEMES`]); programs may add more at run time
//! ([`register_scheme`]).

use crate::backend::Backend;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// Opens a backend from a URL of one scheme.
pub type SchemeOpener = fn(&str) -> Result<Arc<dyn Backend>>;

/// A URL scheme a backend crate provides, collected at link time (no code runs before `main`):
///
/// ```ignore
/// use steadycache_api::plumbing::{linkme, Scheme, SCHEMES};
/// #[linkme::distributed_slice(SCHEMES)]
/// #[linkme(crate = steadycache_api::plumbing::linkme)]
/// static FILE: Scheme = Scheme { name: "file", open: open_file_url };
/// ```
#[derive(Clone, Copy)]
pub struct Scheme {
    /// The scheme, lowercase, without `://` (`"file"`, `"sqlite"`, `"redis"`).
    pub name: &'static str,
    /// Opens a backend from a whole URL of that scheme.
    pub open: SchemeOpener,
}

/// Every [`Scheme`] linked into the program (backend crates add theirs).
#[linkme::distributed_slice]
pub static SCHEMES: [Scheme];

fn schemes() -> &'static RwLock<HashMap<String, SchemeOpener>> {
    static S: OnceLock<RwLock<HashMap<String, SchemeOpener>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// Teach [`Cache::from_url`](crate::Cache::from_url) a URL scheme at run time (for a backend of your own). The backend
/// crates of steadycache need no call: they add theirs to [`SCHEMES`] at link time. A scheme
/// registered here takes precedence.
pub fn register_scheme(scheme: &str, opener: SchemeOpener) {
    let mut map = schemes().write().unwrap_or_else(|p| p.into_inner());
    map.insert(scheme.to_ascii_lowercase(), opener);
}

/// The opener of `scheme` (lowercase): one registered at run time first, then the linked ones.
pub(crate) fn find_opener(scheme: &str) -> Option<SchemeOpener> {
    schemes()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(scheme)
        .copied()
        .or_else(|| SCHEMES.iter().find(|s| s.name == scheme).map(|s| s.open))
}

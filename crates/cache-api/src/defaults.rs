//! The process-wide default cache: what `#[cached]` uses without `cache = ...`.

use crate::cache::Cache;
use std::sync::{OnceLock, RwLock};

fn default_slot() -> &'static RwLock<Option<Cache>> {
    static D: OnceLock<RwLock<Option<Cache>>> = OnceLock::new();
    D.get_or_init(|| RwLock::new(None))
}

/// Make `cache` the process-wide default (what `#[cached]` uses without `cache = ...`). Call it
/// at startup: each memoized function resolves its cache once, at its first call.
pub fn set_default_cache(cache: Cache) {
    *default_slot().write().unwrap_or_else(|p| p.into_inner()) = Some(cache);
}

/// The process-wide default cache: the one given to [`set_default_cache`], else the one named by
/// the `STEADYCACHE_URL` environment variable, else memory. A `STEADYCACHE_URL` that cannot be
/// opened is logged and memory is used: the program keeps working (fail open).
pub fn default_cache() -> Cache {
    if let Some(c) = default_slot()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        return c.clone();
    }
    let mut slot = default_slot().write().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = slot.as_ref() {
        return c.clone();
    }
    let cache = match std::env::var("STEADYCACHE_URL") {
        Ok(url) if !url.trim().is_empty() => Cache::from_url(url.trim()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "STEADYCACHE_URL cannot be opened; using memory");
            Cache::memory()
        }),
        _ => Cache::memory(),
    };
    *slot = Some(cache.clone());
    cache
}

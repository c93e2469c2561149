//! The store a URL names, with every operation bounded by `--timeout`, and whole listings.

use crate::output::Failure;
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use steadycache::{Backend, Cache, Error, KeyPage, ListedKey};

/// Keys per page when a command walks a whole listing.
const WALK_PAGE: usize = 1000;

/// The store behind a URL.
#[derive(Clone)]
pub struct Store {
    cache: Cache,
    timeout: Duration,
}

fn failure(what: &str, e: Error) -> Failure {
    match e {
        Error::Config(m) => Failure::Usage(format!("{what}: {m}")),
        e => Failure::Store(format!("{what}: {e}")),
    }
}

impl Store {
    /// Open the store `url` names (any scheme `Cache::from_url` takes).
    pub fn open(url: Option<&str>, timeout: Duration) -> Result<Store, Failure> {
        let url = url.ok_or_else(|| {
            Failure::Usage("no store: give --url <URL> or set STEADYCACHE_URL".into())
        })?;
        must_exist(url)?;
        let cache = Cache::from_url(url).map_err(|e| failure("cannot open the store", e))?;
        Ok(Store { cache, timeout })
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        self.cache.backend()
    }

    /// `op` within the timeout.
    pub async fn bounded<T>(
        &self,
        what: &str,
        op: impl Future<Output = steadycache::Result<T>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r.map_err(|e| failure(what, e)),
            Err(_) => Err(Failure::Store(format!(
                "{what}: the store did not answer within {}",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    /// The value under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.bounded("get", self.backend().get(key)).await
    }

    /// Remove `key`; whether a live value was there.
    pub async fn delete(&self, key: &str) -> Result<bool, Failure> {
        self.bounded("rm", self.backend().delete(key)).await
    }

    /// One page of the listing.
    pub async fn page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, Failure> {
        self.bounded("list", self.backend().list_keys(prefix, cursor, limit))
            .await
    }

    /// Every key under `prefix`, page by page, each given to `each` once (Redis's `SCAN` may
    /// give a key twice: those are dropped).
    pub async fn walk(&self, prefix: &str, mut each: impl FnMut(ListedKey)) -> Result<(), Failure> {
        let repeats = self.backend().name() == "redis";
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.page(prefix, cursor.as_deref(), WALK_PAGE).await?;
            for k in page.keys {
                if !repeats || seen.insert(k.key.clone()) {
                    each(k);
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// A `file://` or `sqlite://` URL must name a directory or database that exists: opening one
/// would create it, and a mistyped path would show an empty store instead of an error. The
/// path is read as the backends read it: percent-decoded, an empty or `localhost` host.
fn must_exist(url: &str) -> Result<(), Failure> {
    let lower = url.to_ascii_lowercase();
    let rest = ["file://", "sqlite://"]
        .iter()
        .find(|scheme| lower.starts_with(*scheme))
        .map(|scheme| &url[scheme.len()..]);
    let Some(rest) = rest else {
        return Ok(());
    };
    let raw = rest.split(['?', '#']).next().unwrap_or(rest);
    let raw = raw.strip_prefix("localhost").unwrap_or(raw);
    let path = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    if path.is_empty() || path == ":memory:" || std::path::Path::new(path.as_ref()).exists() {
        return Ok(());
    }
    Err(Failure::Store(format!(
        "no store at {path}: nothing there to inspect (the path does not exist)"
    )))
}

/// A key's namespace: what comes before its first `:` (`(none)` when nothing does).
pub fn namespace_of(key: &str) -> &str {
    match key.split_once(':') {
        Some((ns, _)) => ns,
        None => "(none)",
    }
}

/// Whether a key is one of the engine's own (a lock, a tag's time, a marker).
pub fn is_internal(key: &str) -> bool {
    key.contains('#')
}

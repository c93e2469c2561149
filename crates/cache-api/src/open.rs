//! Opening a cache from a URL: [`Cache::from_url`] (the error at once) and
//! [`Cache::from_url_failing_open`] (what `#[cached(cache = "url")]` uses: a cache that cannot
//! be opened now is served from memory meanwhile and opened again in the background), the
//! cache's own URL options, and [`CacheHealth`].

use crate::backend::Backend;
use crate::cache::{Cache, CacheBuilder};
use crate::error::{Error, Result};
use crate::memory::MemoryConfig;
use crate::options::{parse_bytes, parse_count, redact_url};
use crate::reopen::Reopening;
use crate::scheme::{find_opener, SchemeOpener};
use crate::tier::{BusConfig, LocalTier, StoreBreaker};
use std::sync::Arc;
use std::time::Duration;

/// A cache's health: whether the backend its URL names is open, and whether its circuit
/// breaker lets calls through. For a health endpoint or a startup check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheHealth {
    /// The cache's backend is open (always, except for a [`Cache::from_url_failing_open`]
    /// whose URL could not be opened yet; its calls are then served from memory, in this
    /// process only).
    pub backend_open: bool,
    /// Why the backend is not open (URL redacted).
    pub open_error: Option<String>,
    /// Failed attempts to open it.
    pub open_attempts: u64,
    /// It is still being opened again in the background (false after a configuration error,
    /// which no retry can fix).
    pub reopening: bool,
    /// The store breaker is open: the backend failed repeatedly and calls skip it until a
    /// background probe finds it back.
    pub circuit_open: bool,
    /// How many times the store breaker has opened.
    pub circuit_opened: u32,
    /// The invalidation bus vouches for in-process copies (true when no bus is needed: a
    /// memory cache, or a bus turned off). False while a shared cache's bus has not been heard
    /// for its grace: in-process copies are then not served (see
    /// [`BusConfig`](crate::BusConfig)).
    pub bus_live: bool,
}

/// The cache's own options, taken out of a backend URL.
#[derive(Default)]
struct UrlOptions {
    local_tier: Option<LocalTier>,
    timeout: Option<Duration>,
    bulk_timeout: Option<Duration>,
    breaker: UrlBreaker,
    bus: Option<BusConfig>,
}

/// What a URL says of the store breaker.
#[derive(Default)]
enum UrlBreaker {
    /// Nothing: the builder's default.
    #[default]
    Unsaid,
    /// `breaker_threshold=0`.
    Off,
    /// A threshold or a cooldown.
    On(StoreBreaker),
}

impl UrlOptions {
    /// `tracking=on` asks for what the store can do (it tracks: Redis) and keeps something
    /// coherent (an L1, `local=`): otherwise a configuration error.
    fn check_tracking(&self, backend: &dyn Backend) -> Result<()> {
        if !self.bus.as_ref().is_some_and(|b| b.tracking) {
            return Ok(());
        }
        if !backend.capabilities().tracking {
            return Err(Error::Config(format!(
                "`tracking=on`: the {} store cannot track changed keys (Redis can)",
                backend.name()
            )));
        }
        if self.local_tier.is_none() {
            return Err(Error::Config(
                "`tracking=on` keeps in-process copies coherent: give the cache an L1 \
                 (`local=<bytes>`)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn apply(&self, mut b: CacheBuilder) -> CacheBuilder {
        if let Some(t) = self.local_tier {
            b = b.local_tier(t);
        }
        if let Some(t) = self.timeout {
            b = b.backend_timeout(t);
        }
        if let Some(t) = self.bulk_timeout {
            b = b.bulk_timeout(t);
        }
        match self.breaker {
            UrlBreaker::On(c) => b = b.store_breaker(c),
            UrlBreaker::Off => b = b.no_store_breaker(),
            UrlBreaker::Unsaid => {}
        }
        if let Some(c) = &self.bus {
            b = b.bus(c.clone());
        }
        b
    }
}

fn scheme_of(url: &str) -> Result<String> {
    Ok(url
        .split_once("://")
        .map(|(s, _)| s)
        .or_else(|| url.split_once(':').map(|(s, _)| s))
        .ok_or_else(|| {
            Error::Config(format!(
                "`{}` is not a cache url (scheme://...)",
                redact_url(url)
            ))
        })?
        .to_ascii_lowercase())
}

fn no_backend(scheme: &str) -> Error {
    Error::Config(format!(
        "no backend for url scheme `{scheme}`: enable the steadycache feature that provides it \
         (mem:// is built in)"
    ))
}

impl Cache {
    /// Open a cache from a URL. `mem://` (options `max_bytes`, `max_entries`,
    /// `estimated_items`) is always known; other schemes (`file`, `sqlite`, `redis`, `mongodb`,
    /// `s3`) come from the backend crates enabled as features of `steadycache`.
    ///
    /// On any other scheme, the options `local=<bytes>` (`64MiB`, `512KiB`, `1G` or a number)
    /// and `local_max_entries=<n>` put a typed in-process tier in front of the backend (see
    /// [`CacheBuilder::local_tier`](crate::CacheBuilder::local_tier)), `backend_timeout_ms=<n>`
    /// sets [`CacheBuilder::backend_timeout`](crate::CacheBuilder::backend_timeout),
    /// `bulk_timeout_ms=<n>` [`CacheBuilder::bulk_timeout`](crate::CacheBuilder::bulk_timeout),
    /// `breaker_threshold=<n>` (0: off) and `breaker_cooldown_ms=<n>` set the
    /// [`StoreBreaker`], and `bus=off|on`, `bus_channel=<name>`, `bus_poll_ms=<n>` and
    /// `bus_grace_ms=<n>` set the invalidation bus ([`BusConfig`]), and `tracking=on` has the
    /// store itself report changed keys to the L1 ([`BusConfig::tracking`]: Redis, with
    /// `local=`); they are taken out of the URL before the backend reads it.
    ///
    /// **One cache per URL**: every call with the same URL (up to the scheme's case and the
    /// order of the query options) in this process returns the same cache, also shared with
    /// every `#[cached(cache = "url")]`, `#[invalidates]` and guard that names it: one
    /// connection pool, one invalidation bus, one store breaker, one byte budget. A URL the
    /// functions' failing-open caches could not open yet is an error here (the open error).
    /// [`from_url_unshared`](Self::from_url_unshared) opens a cache of its own.
    pub fn from_url(url: &str) -> Result<Self> {
        let cache = crate::registry::shared(url, Cache::from_url_unshared)?;
        match cache.health() {
            CacheHealth {
                backend_open: false,
                open_error: Some(e),
                ..
            } => Err(Error::Unavailable {
                backend: "cache".into(),
                message: format!("not open yet: {e}"),
                source: None,
            }),
            _ => Ok(cache),
        }
    }

    /// A cache of its own for `url`, never shared with another (see
    /// [`from_url`](Self::from_url)): for tests that simulate several processes over one
    /// store, or a deliberately separate connection pool.
    pub fn from_url_unshared(url: &str) -> Result<Self> {
        let scheme = scheme_of(url)?;
        if scheme == "mem" || scheme == "memory" {
            return Ok(Cache::builder()
                .memory(MemoryConfig::from_url(url)?)
                .build());
        }
        let open = find_opener(&scheme).ok_or_else(|| no_backend(&scheme))?;
        let (url, options) = split_cache_options(url)?;
        let backend = open(&url)?;
        options.check_tracking(&*backend)?;
        Ok(options.apply(Cache::builder().backend(backend)).build())
    }

    /// [`Cache::from_url`] that fails open: what `#[cached(cache = "url")]` uses.
    ///
    /// When the URL's backend cannot be opened now (a directory not mounted yet, a permission,
    /// a server the backend connects to at open), the error is logged (URL redacted) and the
    /// cache is served from memory in the meantime, in this process only: with
    /// `lock = "distributed"`, "once across processes" is then "once per process" until the
    /// backend opens. It is opened again in the background (after 0.5 s, then twice as long
    /// each time, up to every 30 s); from the first success on, every call uses it, and the
    /// values kept in memory meanwhile are dropped. [`Cache::health`] tells which state the
    /// cache is in, and [`Cache::ready`] returns the open error while it is not open (the
    /// macro's `strict` option returns it from the function). A configuration error (a
    /// malformed URL, an unknown option or scheme) is not retried: no retry can fix it.
    ///
    /// One cache per URL, shared as [`from_url`](Self::from_url)'s are.
    pub fn from_url_failing_open(url: &str) -> Cache {
        let opened = crate::registry::shared(url, |url| Ok(Cache::open_failing_open(url)));
        opened.unwrap_or_else(|_| Cache::open_failing_open(url)) // (the opener never fails)
    }

    fn open_failing_open(url: &str) -> Cache {
        let attempt = || -> std::result::Result<Cache, Box<Unopened>> {
            let fail = |error| Box::new(Unopened { error, retry: None });
            let scheme = scheme_of(url).map_err(fail)?;
            if scheme == "mem" || scheme == "memory" {
                return Cache::from_url_unshared(url).map_err(fail);
            }
            let open = find_opener(&scheme).ok_or_else(|| fail(no_backend(&scheme)))?;
            let (url, options) = split_cache_options(url).map_err(fail)?;
            match open(&url) {
                Ok(b) => {
                    options.check_tracking(&*b).map_err(fail)?;
                    Ok(options.apply(Cache::builder().backend(b)).build())
                }
                Err(e @ Error::Config(_)) => Err(fail(e)),
                Err(error) => Err(Box::new(Unopened {
                    error,
                    retry: Some((url, open, options)),
                })),
            }
        };
        match attempt() {
            Ok(c) => c,
            Err(unopened) => {
                let Unopened { error: e, retry } = *unopened;
                let redacted = redact_url(url);
                let retrying = retry.is_some();
                tracing::error!(url = %redacted, error = %e, retrying, "steadycache: cannot open cache; serving from memory in this process meanwhile");
                let reopening = Reopening::new(e.to_string(), retrying, redacted);
                let mut builder = Cache::builder().backend(reopening.clone() as Arc<dyn Backend>);
                if let Some((url, open, options)) = retry {
                    builder = options.apply(builder);
                    reopening.start(url, open);
                }
                builder.opening = Some(reopening);
                builder.build()
            }
        }
    }

    /// The cache's health (see [`CacheHealth`]).
    pub fn health(&self) -> CacheHealth {
        let mut h = CacheHealth {
            backend_open: true,
            circuit_open: self.breaker().is_open(),
            circuit_opened: self.breaker().times_opened(),
            bus_live: !self.bus().is_listening() || self.bus().watch.is_live(),
            ..CacheHealth::default()
        };
        if let Some(r) = self.opening() {
            h.backend_open = r.is_open();
            if !h.backend_open {
                let st = r.state();
                h.open_error = Some(st.error.clone());
                h.open_attempts = st.attempts;
                h.reopening = st.retrying;
            }
        }
        h
    }

    /// `Ok` when the cache's backend is open; the error that keeps it closed otherwise (a
    /// [`Cache::from_url_failing_open`] whose URL could not be opened yet): transient
    /// ([`Error::Unavailable`]) while it is being opened again, [`Error::Config`] when no retry
    /// can fix it.
    pub fn ready(&self) -> Result<()> {
        let Some(r) = self.opening() else {
            return Ok(());
        };
        if r.is_open() {
            return Ok(());
        }
        let st = r.state();
        let message = format!("cannot open cache `{}`: {}", r.redacted(), st.error);
        Err(if st.retrying {
            Error::unavailable("cache", message)
        } else {
            Error::Config(message)
        })
    }
}

/// Why a URL did not open, and what opening it again takes (none for a configuration error).
struct Unopened {
    error: Error,
    retry: Option<(String, SchemeOpener, UrlOptions)>,
}
fn bus(o: &mut UrlOptions) -> &mut BusConfig {
    o.bus.get_or_insert_with(BusConfig::default)
}

/// Take the cache's own options (`local`, `local_max_entries`, `backend_timeout_ms`,
/// `bulk_timeout_ms`, `breaker_threshold`, `breaker_cooldown_ms`, `bus`, `bus_channel`,
/// `bus_poll_ms`, `bus_grace_ms`) out of a backend URL.
fn split_cache_options(url: &str) -> Result<(String, UrlOptions)> {
    let Some((base, rest)) = url.split_once('?') else {
        return Ok((url.to_owned(), UrlOptions::default()));
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let mut o = UrlOptions::default();
    let (mut bytes, mut entries, mut threshold, mut cooldown) = (None, None, None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("local", v)) => bytes = Some(parse_bytes("local", v)?),
            Some(("local_max_entries", v)) => entries = Some(parse_count("local_max_entries", v)?),
            Some(("backend_timeout_ms", v)) => {
                o.timeout = Some(Duration::from_millis(parse_count("backend_timeout_ms", v)?));
            }
            Some(("bulk_timeout_ms", v)) => {
                let ms = parse_count("bulk_timeout_ms", v)?;
                o.bulk_timeout = Some(Duration::from_millis(ms));
            }
            Some(("breaker_threshold", v)) => {
                threshold = Some(parse_count("breaker_threshold", v)?)
            }
            Some(("breaker_cooldown_ms", v)) => {
                cooldown = Some(Duration::from_millis(parse_count(
                    "breaker_cooldown_ms",
                    v,
                )?));
            }
            Some((name, v)) if take_bus_option(&mut o, name, v)? => {}
            _ => kept.push(pair),
        }
    }
    set_tier_and_breaker(&mut o, (bytes, entries), (threshold, cooldown))?;
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Ok((out, o))
}

/// One of the bus's URL options (`bus`, `bus_channel`, `bus_poll_ms`, `bus_grace_ms`,
/// `tracking`) into `o`;
/// whether `name` was one (an empty `bus_channel` is not: the backend sees it).
fn take_bus_option(o: &mut UrlOptions, name: &str, v: &str) -> Result<bool> {
    match name {
        "bus" => bus(o).enabled = on_off(name, v)?,
        "tracking" => bus(o).tracking = on_off(name, v)?,
        "bus_channel" if !v.is_empty() => bus(o).channel = v.to_owned(),
        "bus_poll_ms" => {
            let ms = parse_count("bus_poll_ms", v)?.max(1);
            bus(o).poll = Duration::from_millis(ms);
        }
        "bus_grace_ms" => {
            let ms = parse_count("bus_grace_ms", v)?;
            bus(o).grace = Duration::from_millis(ms);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A switch option: `on`/`true`/`1` or `off`/`false`/`0`.
fn on_off(name: &str, v: &str) -> Result<bool> {
    match v {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(Error::Config(format!(
            "`{name}={v}`: write `{name}=on` or `{name}=off`"
        ))),
    }
}

/// The local tier (`local`, `local_max_entries`) and the breaker (`breaker_threshold`,
/// `breaker_cooldown_ms`) from the values the URL gave.
fn set_tier_and_breaker(
    o: &mut UrlOptions,
    (bytes, entries): (Option<u64>, Option<u64>),
    (threshold, cooldown): (Option<u64>, Option<Duration>),
) -> Result<()> {
    o.local_tier = match (bytes, entries) {
        (Some(b), e) => Some(LocalTier {
            max_bytes: b,
            max_entries: e,
        }),
        (None, Some(_)) => {
            return Err(Error::Config(
                "`local_max_entries` needs `local=<bytes>` too".into(),
            ))
        }
        (None, None) => None,
    };
    if threshold.is_some() || cooldown.is_some() {
        let d = StoreBreaker::default();
        o.breaker = match threshold {
            Some(0) => UrlBreaker::Off,
            t => UrlBreaker::On(StoreBreaker::new(
                t.map_or(d.threshold, |t| u32::try_from(t).unwrap_or(u32::MAX)),
                cooldown.unwrap_or(d.cooldown),
            )),
        };
    }
    Ok(())
}

//! A web API in front of a slow, rate-limited upstream, memoized on Redis: the shape most
//! users of a caching library run, measured by `scripts/load.sh`.
//!
//! ```sh
//! cargo run --release -p steadycache-bench --example web_service -- \
//!     --mode swr --port 3000 --redis redis://127.0.0.1:6379/0
//! curl http://127.0.0.1:3000/forecast/oslo
//! curl http://127.0.0.1:3000/stats
//! ```
//!
//! `GET /forecast/{city}` asks the upstream for a forecast, which takes 100 ms
//! (`--upstream-ms`) and admits 100 calls a second (`--upstream-rate`; beyond that it answers
//! "429 too many requests" at once, and the API answers 503). `--mode` chooses how:
//!
//! * `none`: every request calls the upstream;
//! * `ttl`: through `#[cached(ttl = "1s", lock = "distributed")]`: a value is kept a second,
//!   one caller across every process of the service recomputes an expired key, and the
//!   callers that arrive meanwhile wait for its value;
//! * `swr`: the same with `stale_while_revalidate = "1m"`: an expired value is served at once
//!   while one background refresh (again one across every process) replaces it;
//! * `http`: no memoized function: the route answers `Cache-Control: max-age=1,
//!   stale-while-revalidate=60` and `steadycache_tower::HttpCacheLayer` (on the same Redis,
//!   `Lock::Distributed`) caches whole responses by it: the `swr` policy, said by the
//!   response instead of the code, and the serialized JSON kept rather than the value.
//!
//! `GET /stats` answers the upstream's counts (calls, refused), the service's live tokio tasks
//! and the cache's counters. The
//! service clears its keys at start, so each run begins cold. Ctrl-C (SIGINT) or SIGTERM stops
//! it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use steadycache::{cached, Cache, Lock};
use steadycache_tower::HttpCacheLayer;

/// What the upstream answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Forecast {
    city: String,
    celsius: f64,
    /// When the upstream computed it (ms since the epoch): how old a served value is.
    fetched_at: u64,
}

/// The upstream refused the call (its rate limit), or failed.
#[derive(Clone, Debug)]
pub struct UpstreamError(String);

/// The simulated upstream: a fixed latency and a token bucket of `rate` calls a second.
struct Upstream {
    latency: Duration,
    rate: f64,
    bucket: Mutex<(f64, Instant)>,
    calls: AtomicU64,
    refused: AtomicU64,
}

impl Upstream {
    async fn forecast(&self, city: &str) -> Result<Forecast, UpstreamError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.admit() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(UpstreamError("429 too many requests".into()));
        }
        tokio::time::sleep(self.latency).await;
        let seed = city
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        Ok(Forecast {
            city: city.to_owned(),
            celsius: (seed % 400) as f64 / 10.0 - 10.0,
            fetched_at: now_ms(),
        })
    }

    /// Take a token if there is one (the bucket holds at most a second's worth).
    fn admit(&self) -> bool {
        let Ok(mut b) = self.bucket.lock() else {
            return false;
        };
        let now = Instant::now();
        let (tokens, last) = *b;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        if tokens >= 1.0 {
            *b = (tokens - 1.0, now);
            true
        } else {
            *b = (tokens, now);
            false
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

static UPSTREAM: OnceLock<Upstream> = OnceLock::new();
static CACHE: OnceLock<Cache> = OnceLock::new();

fn upstream() -> &'static Upstream {
    UPSTREAM.get_or_init(|| Upstream {
        latency: Duration::from_millis(100),
        rate: 100.0,
        bucket: Mutex::new((100.0, Instant::now())),
        calls: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    })
}

/// The Redis cache (set in `main` before the first request).
fn redis() -> Cache {
    CACHE.get().cloned().unwrap_or_else(Cache::memory)
}

#[cached(cache = redis(), key_prefix = "web.ttl", key = "{city}", ttl = "1s", lock = "distributed")]
async fn forecast_ttl(city: String) -> Result<Forecast, UpstreamError> {
    upstream().forecast(&city).await
}

#[cached(
    cache = redis(),
    key_prefix = "web.swr",
    key = "{city}",
    ttl = "1s",
    stale_while_revalidate = "1m",
    lock = "distributed"
)]
async fn forecast_swr(city: String) -> Result<Forecast, UpstreamError> {
    upstream().forecast(&city).await
}

/// How the API reaches the upstream.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    None,
    Ttl,
    Swr,
    Http,
}

async fn forecast(State(mode): State<Mode>, Path(city): Path<String>) -> Response {
    let answer = match mode {
        Mode::None | Mode::Http => upstream().forecast(&city).await,
        Mode::Ttl => forecast_ttl(city).await,
        Mode::Swr => forecast_swr(city).await,
    };
    match answer {
        // What `HttpCacheLayer` reads in the `http` mode (the other modes' clients ignore it).
        Ok(f) if mode == Mode::Http => (
            [(
                axum::http::header::CACHE_CONTROL,
                "max-age=1, stale-while-revalidate=60",
            )],
            Json(f),
        )
            .into_response(),
        Ok(f) => Json(f).into_response(),
        Err(UpstreamError(why)) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn stats(State(mode): State<Mode>) -> Json<serde_json::Value> {
    let s = match mode {
        Mode::None => None,
        Mode::Ttl => Some(forecast_ttl_cache().stats()),
        Mode::Swr => Some(forecast_swr_cache().stats()),
        // The layer's lookups are calls by hand on the cache.
        Mode::Http => Some(redis().stats()),
    };
    let u = upstream();
    Json(serde_json::json!({
        "mode": format!("{mode:?}").to_lowercase(),
        "upstream_calls": u.calls.load(Ordering::Relaxed),
        "upstream_refused": u.refused.load(Ordering::Relaxed),
        // The service's runtime's live tasks: what `scripts/soak.sh` watches for leaks.
        "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        "cache": s.map(|s| serde_json::json!({
            "hits": s.hits, "misses": s.misses, "stale": s.stale, "refreshes": s.refreshes,
            "coalesced": s.coalesced, "lock_waits": s.lock_waits, "errors": s.errors,
        })),
    }))
}

/// Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `--name value` from the command line, or `default`.
fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = match arg("--mode", "swr").as_str() {
        "none" => Mode::None,
        "ttl" => Mode::Ttl,
        "swr" => Mode::Swr,
        "http" => Mode::Http,
        other => return Err(format!("--mode is none, ttl, swr or http, not {other}").into()),
    };
    let port: u16 = arg("--port", "3000").parse()?;
    let redis_url = arg("--redis", "redis://127.0.0.1:6379/0");
    let rate: f64 = arg("--upstream-rate", "100").parse()?;
    let latency = Duration::from_millis(arg("--upstream-ms", "100").parse()?);
    let _ = UPSTREAM.set(Upstream {
        latency,
        rate,
        bucket: Mutex::new((rate, Instant::now())),
        calls: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let sep = if redis_url.contains('?') { '&' } else { '?' };
    let cache = Cache::from_url(&format!("{redis_url}{sep}key_prefix=web_service:"))?;
    cache.ready()?;
    cache.clear().await?;
    let _ = CACHE.set(cache);

    let route = match mode {
        Mode::Http => get(forecast).layer(
            HttpCacheLayer::new(redis())
                .prefix("web.http")
                .lock(Lock::Distributed),
        ),
        _ => get(forecast),
    };
    let app = Router::new()
        .route("/forecast/{city}", route)
        .route("/stats", get(stats))
        .with_state(mode);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "web_service: mode {mode:?} on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await?;
    Ok(())
}

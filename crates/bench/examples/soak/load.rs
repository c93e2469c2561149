//! The load: an open loop of `GET /forecast/city-<n>` at a fixed rate, every answer checked
//! and recorded in the second it was sent.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The HTTP client: one pool of keep-alive connections.
pub type Http = Client<HttpConnector, Empty<Bytes>>;

/// At most this many requests in flight; a tick that finds none free is counted as an error
/// (the service fell that far behind).
const IN_FLIGHT: usize = 512;
/// A request not answered in this long is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Keep-alive connections kept idle: a burst of slow answers (a fault) opens more, and those
/// above this are closed once used, so the service's fds and tasks (one per connection) measure
/// the service, not the high-water mark of the driver's pool.
pub const IDLE_CONNECTIONS: usize = 16;

pub fn client() -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IDLE_CONNECTIONS)
        .build_http()
}

/// What the requests sent in one second came to.
#[derive(Clone, Default)]
pub struct Second {
    /// 200 with the right body.
    pub ok: u64,
    /// Anything else but a wrong body: another status, a transport error, a timeout.
    pub errors: u64,
    /// 200 with a body that is not the upstream's answer for the requested city.
    pub wrong: u64,
    /// Latency of each answered request, µs.
    pub latencies_us: Vec<u32>,
}

/// Per-second records since `began`.
pub struct Seconds {
    began: Instant,
    slots: Vec<Mutex<Second>>,
}

impl Seconds {
    pub fn new(began: Instant, seconds: u64) -> Seconds {
        Seconds {
            began,
            slots: (0..seconds)
                .map(|_| Mutex::new(Second::default()))
                .collect(),
        }
    }

    /// The second `at` falls in.
    pub fn index(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.began).as_secs() as usize
    }

    fn record(&self, sent: Instant, f: impl FnOnce(&mut Second)) {
        let i = self.index(sent).min(self.slots.len().saturating_sub(1));
        if let Some(slot) = self.slots.get(i) {
            if let Ok(mut s) = slot.lock() {
                f(&mut s);
            }
        }
    }

    /// A copy of seconds `from..to`.
    pub fn range(&self, from: usize, to: usize) -> Vec<Second> {
        let to = to.min(self.slots.len());
        (from.min(to)..to)
            .map(|i| self.slots[i].lock().map(|s| s.clone()).unwrap_or_default())
            .collect()
    }
}

/// The upstream's answer for `city` (examples/web_service.rs computes it the same way).
fn celsius(city: &str) -> f64 {
    let seed = city
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    (seed % 400) as f64 / 10.0 - 10.0
}

/// Whether `body` is the upstream's answer for `city`.
fn right(city: &str, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    // serde_json parses floats to within an ulp or so (exactly only with its `float_roundtrip`
    // feature); the upstream's temperatures are 0.1 apart, so this tolerance tells them apart.
    v["city"].as_str() == Some(city)
        && v["celsius"]
            .as_f64()
            .is_some_and(|c| (c - celsius(city)).abs() < 1e-9)
}

/// One request for `city`: its outcome recorded in the second it was sent.
async fn one(http: Http, base: Arc<str>, city: String, seconds: Arc<Seconds>) {
    let sent = Instant::now();
    let uri = format!("{base}/forecast/{city}");
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let uri: hyper::Uri = uri.parse().map_err(|_| ())?;
        let resp = http.get(uri).await.map_err(|_| ())?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|_| ())?;
        Ok::<_, ()>((status, body.to_bytes()))
    })
    .await;
    let took = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    seconds.record(sent, |s| match answer {
        Ok(Ok((status, body))) if status == hyper::StatusCode::OK => {
            s.latencies_us.push(took);
            if right(&city, &body) {
                s.ok += 1;
            } else {
                s.wrong += 1;
                if s.wrong <= 2 {
                    eprintln!(
                        "soak: WRONG answer for {city}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    );
                }
            }
        }
        Ok(Ok(_)) => {
            s.latencies_us.push(took);
            s.errors += 1;
        }
        _ => s.errors += 1,
    });
}

/// Send `rate` requests a second over `cities` keys until `end`; the number sent.
pub async fn drive(
    base: String,
    rate: u64,
    cities: u64,
    end: Instant,
    seconds: Arc<Seconds>,
) -> u64 {
    let http = client();
    let base: Arc<str> = base.into();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        let city = format!("city-{}", sent % cities);
        sent += 1;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            seconds.record(Instant::now(), |s| s.errors += 1);
            continue;
        };
        let (http, base, seconds) = (http.clone(), base.clone(), seconds.clone());
        tokio::spawn(async move {
            one(http, base, city, seconds).await;
            drop(permit);
        });
    }
    // Wait for the requests still in flight.
    let _ = permits.acquire_many(IN_FLIGHT as u32).await;
    sent
}

/// GET `url`'s body as JSON.
pub async fn get_json(http: &Http, url: &str) -> Option<serde_json::Value> {
    let uri: hyper::Uri = url.parse().ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), http.get(uri))
        .await
        .ok()?
        .ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

/// Wait (30 s at most) until the service answers `/stats`.
pub async fn wait_ready(base: &str) -> Result<(), String> {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if get_json(&http, &format!("{base}/stats")).await.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no answer from {base}/stats in 30 s"))
}

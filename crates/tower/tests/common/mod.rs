//! A real axum server on loopback behind the layer, an upstream that counts its requests, and
//! a real HTTP client (hyper-util's).
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steadycache_tower::HttpCacheLayer;

/// What the upstream counts and how it behaves.
#[derive(Default)]
pub struct Upstream {
    /// Requests per route name.
    pub counts: Mutex<HashMap<String, u64>>,
    /// All requests.
    pub total: AtomicU64,
    /// `/flaky/*` answers 500 while set.
    pub failing: AtomicBool,
}

impl Upstream {
    /// Requests the upstream saw for `route` (e.g. "hit").
    pub fn count(&self, route: &str) -> u64 {
        self.counts
            .lock()
            .map(|c| c.get(route).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn bump(&self, route: &str) -> u64 {
        self.total.fetch_add(1, Ordering::SeqCst);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(route.to_owned()).or_insert(0);
        *n += 1;
        *n
    }
}

/// `GET /{kind}/{name}`: every kind answers `"{kind}/{name} n={count} lang={accept-language}"`
/// with its own headers:
///
/// * `hit`: `max-age=600`; `slow`: the same after 200 ms;
/// * `vary`: `max-age=600`, `Vary: Accept-Language`;
/// * `nostore` (`no-store`), `private` (`private, max-age=600`), `cookie` (`max-age=600` and
///   `Set-Cookie`), `plain` (no Cache-Control); `slownostore`: `no-store` after 200 ms;
/// * `expire`: `max-age=1`; `swr`: `max-age=1, stale-while-revalidate=600`; `turns`: the
///   same, and `no-store` while `failing`;
/// * `flaky`: `max-age=1, stale-if-error=600`, 500 while `failing`; `flakynosie`: `max-age=1`,
///   500 while failing;
/// * `combined`: `max-age=1, stale-while-revalidate=10, stale-if-error=600`, `Vary:
///   Accept-Language`, 500 while failing;
/// * `big`: `max-age=600`, a body of 64 chunks of 1 KiB, streamed.
async fn route(
    State(up): State<Arc<Upstream>>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let n = up.bump(&kind);
    let lang = headers
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let body = format!("{kind}/{name} n={n} lang={lang}");
    let failing = up.failing.load(Ordering::SeqCst);
    let cc = |v: &'static str| [("cache-control", v)];
    match kind.as_str() {
        "hit" => (cc("max-age=600"), body).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            (cc("max-age=600"), body).into_response()
        }
        "vary" => (
            [
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Language"),
            ],
            body,
        )
            .into_response(),
        "nostore" => (cc("no-store"), body).into_response(),
        "slownostore" => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            (cc("no-store"), body).into_response()
        }
        "private" => (cc("private, max-age=600"), body).into_response(),
        "cookie" => (
            [
                ("cache-control", "max-age=600"),
                ("set-cookie", "session=1"),
            ],
            body,
        )
            .into_response(),
        "plain" => body.into_response(),
        "expire" => (cc("max-age=1"), body).into_response(),
        "swr" => (cc("max-age=1, stale-while-revalidate=600"), body).into_response(),
        "turns" if failing => (cc("no-store"), body).into_response(),
        "turns" => (cc("max-age=1, stale-while-revalidate=600"), body).into_response(),
        "flaky" | "flakynosie" if failing => {
            (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
        }
        "flaky" => (cc("max-age=1, stale-if-error=600"), body).into_response(),
        "flakynosie" => (cc("max-age=1"), body).into_response(),
        "combined" if failing => (StatusCode::INTERNAL_SERVER_ERROR, body).into_response(),
        "combined" => (
            [
                (
                    "cache-control",
                    "max-age=1, stale-while-revalidate=10, stale-if-error=600",
                ),
                ("vary", "Accept-Language"),
            ],
            body,
        )
            .into_response(),
        "big" => {
            let chunks = (0..64)
                .map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + (i % 26) as u8; 1024])));
            let stream = futures_stream(chunks.collect());
            (cc("max-age=600"), Body::from_stream(stream)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A stream of `items`, one per poll (so the body really arrives in chunks).
fn futures_stream<T: Send + 'static>(items: Vec<T>) -> impl futures_core::Stream<Item = T> + Send {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

/// A server on `127.0.0.1:0` behind `layer`, and its upstream.
pub async fn serve(layer: HttpCacheLayer) -> (SocketAddr, Arc<Upstream>) {
    let up = Arc::new(Upstream::default());
    serve_with(layer, up.clone()).await
}

/// A server behind `layer` over the given upstream (two servers may share one).
pub async fn serve_with(layer: HttpCacheLayer, up: Arc<Upstream>) -> (SocketAddr, Arc<Upstream>) {
    let app = Router::new()
        .route("/{kind}/{name}", get(route))
        .with_state(up.clone())
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, up)
}

/// A response as the client read it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

/// The HTTP client.
pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `method` `http://addr{path}` with `headers`, read whole.
pub async fn request(
    client: &Client<HttpConnector, Empty<Bytes>>,
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Empty::new()).expect("request");
    let response = client.request(req).await.expect("response");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `GET http://addr{path}`.
pub async fn get_(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> Got {
    request(client, "GET", addr, path, &[]).await
}

/// Wait (at most 10 s) until `done` holds.
pub async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10 s");
}

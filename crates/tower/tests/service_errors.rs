//! An inner service that fails with an error (not a 5xx): axum's services cannot, so this
//! drives the layer's service directly. `stale-if-error` serves the stored response in place of
//! the error; without it (or without a stored response) the error is the answer.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use std::future::{poll_fn, Ready};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use steadycache_api::testing::clock;
use steadycache_api::Cache;
use steadycache_tower::HttpCacheLayer;
use tower_layer::Layer;
use tower_service::Service;

#[derive(Clone, Default)]
struct Flaky {
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
}

impl Service<Request<Empty<Bytes>>> for Flaky {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Empty<Bytes>>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.failing.load(Ordering::SeqCst) {
            return std::future::ready(Err(std::io::Error::other("upstream down")));
        }
        let cc = if req.uri().path() == "/sie" {
            "max-age=1, stale-if-error=600"
        } else {
            "max-age=1"
        };
        let response = Response::builder()
            .header("cache-control", cc)
            .body(Full::new(Bytes::from(format!("n={n}"))))
            .map_err(std::io::Error::other);
        std::future::ready(response)
    }
}

async fn ask<S>(svc: &mut S, path: &str) -> Result<String, S::Error>
where
    S: Service<Request<Empty<Bytes>>>,
    S::Response: Into<Response<steadycache_tower::HttpCacheBody<Full<Bytes>>>>,
{
    poll_fn(|cx| svc.poll_ready(cx)).await?;
    let req = Request::builder()
        .uri(path)
        .header("host", "test")
        .body(Empty::new())
        .expect("request");
    let response: Response<_> = svc.call(req).await?.into();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn stale_if_error_covers_a_failing_service() {
    let _clock = clock::exclusive();
    let upstream = Flaky::default();
    let layer = HttpCacheLayer::new(Cache::memory()).fail_safe_throttle(Duration::ZERO);
    let mut svc = layer.layer(upstream.clone());
    assert_eq!(ask(&mut svc, "/sie").await.ok(), Some("n=1".into()));
    assert_eq!(ask(&mut svc, "/plain").await.ok(), Some("n=2".into()));
    upstream.failing.store(true, Ordering::SeqCst);
    // Still fresh: no request at all.
    assert_eq!(ask(&mut svc, "/sie").await.ok(), Some("n=1".into()));
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
    clock::advance(Duration::from_secs(2));
    assert_eq!(ask(&mut svc, "/sie").await.ok(), Some("n=1".into()));
    assert_eq!(
        upstream.calls.load(Ordering::SeqCst),
        3,
        "asked, failed, served stored"
    );
    let err = ask(&mut svc, "/plain").await.err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("upstream down"));
    let cold = ask(&mut svc, "/cold").await.err().map(|e| e.to_string());
    assert_eq!(cold.as_deref(), Some("upstream down"));
}

//! [`HttpCache`]: the service the layer wraps around another.
//!
//! A cacheable request is answered by the engine's `get_or_compute_with_lifetimes`, so
//! single-flight (in process, and across processes with `Lock::Distributed`),
//! stale-while-revalidate and fail-safe are the engine's own. The computation asks the
//! upstream and returns either a [`Stored`] response (the engine stores it and every waiter
//! gets it) or an error for anything that must not be stored: then the upstream's response
//! itself is kept aside in the call (`Live`) and answered to this caller, and each waiter on
//! that round asks the upstream itself (the engine never shares an error it cannot clone), so
//! every caller gets a correct response.

use crate::body::{buffer, BoxError, Buffered, HttpCacheBody};
use crate::config::Config;
use crate::directives::{bypasses, lifetimes, vary_names};
use crate::key;
use crate::stored::Stored;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use steadycache_api::{Cache, Policy, RefreshWith};
use tower_service::Service;

/// The service of [`HttpCacheLayer`](crate::HttpCacheLayer): caches the responses of `inner`.
#[derive(Clone, Debug)]
pub struct HttpCache<S> {
    inner: S,
    cache: Cache,
    config: Arc<Config>,
}

impl<S> HttpCache<S> {
    pub(crate) fn new(inner: S, cache: Cache, config: Arc<Config>) -> Self {
        HttpCache {
            inner,
            cache,
            config,
        }
    }
}

/// Why the computation did not return a response to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Miss {
    /// The upstream failed (an error, a 5xx, a body cut short): a stored response may be
    /// served instead (`stale-if-error`).
    Failed,
    /// The upstream answered what must not be stored (no-store, too large, ...).
    NotStored,
}

/// What the upstream answered this caller, when it is not stored.
enum Live<B, E> {
    Response(Response<HttpCacheBody<B>>),
    Error(E),
}

type Answer<B, E> = Result<Response<HttpCacheBody<B>>, E>;

impl<B, E> Live<B, E> {
    fn answer(self) -> Answer<B, E> {
        match self {
            Live::Response(r) => Ok(r),
            Live::Error(e) => Err(e),
        }
    }
}

/// What one call keeps aside from the engine (the request until it is asked, the upstream's
/// answer when it is not stored).
type Slot<T> = Mutex<Option<T>>;

/// Take what a slot holds (a slot poisoned by a panic elsewhere is read all the same).
fn take<T>(slot: &Slot<T>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

fn put<T>(slot: &Slot<T>, value: T) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
}

/// Ask a service that may not be ready yet.
async fn call<S, Q>(mut svc: S, req: Request<Q>) -> Result<S::Response, S::Error>
where
    S: Service<Request<Q>>,
{
    poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// The upstream's response passed through unbuffered.
fn passed<B>(response: Response<B>) -> Response<HttpCacheBody<B>> {
    response.map(|b| HttpCacheBody::stream(Bytes::new(), Box::pin(b)))
}

/// What one lookup needs to ask the upstream (owned: a background refresh outlives the call).
#[derive(Clone)]
struct Upstream {
    cache: Cache,
    config: Arc<Config>,
    /// The variants record's key, and the names it held when the key was built.
    record: String,
    names: Vec<String>,
}

impl Upstream {
    /// Ask `svc`: a response to store, or why not and what to answer instead.
    async fn fetch<S, Q, B>(
        &self,
        svc: S,
        req: Request<Q>,
    ) -> Result<Stored, (Miss, Live<B, S::Error>)>
    where
        S: Service<Request<Q>, Response = Response<B>>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let response = call(svc, req)
            .await
            .map_err(|e| (Miss::Failed, Live::Error(e)))?;
        if response.status().is_server_error() {
            return Err((Miss::Failed, Live::Response(passed(response))));
        }
        let refused = |r| (Miss::NotStored, Live::Response(passed(r)));
        let lifetimes = match lifetimes(response.status(), response.headers(), &self.config) {
            Ok(l) => l,
            Err(why) => {
                tracing::debug!(?why, record = %self.record, "steadycache-tower: not stored");
                return Err(refused(response));
            }
        };
        let vary = vary_names(response.headers()).unwrap_or_default();
        if vary != self.names {
            self.remember(&vary, lifetimes).await;
            return Err(refused(response));
        }
        let (parts, body) = response.into_parts();
        match buffer(Box::pin(body), self.config.max_body).await {
            Buffered::Whole(bytes) => Ok(Stored::new(&parts, bytes, lifetimes)),
            Buffered::TooLarge(prefix, rest) => {
                let body = HttpCacheBody::stream(prefix, rest);
                Err((
                    Miss::NotStored,
                    Live::Response(Response::from_parts(parts, body)),
                ))
            }
            Buffered::Failed(prefix, e) => {
                let body = HttpCacheBody::broken(prefix, e);
                Err((
                    Miss::Failed,
                    Live::Response(Response::from_parts(parts, body)),
                ))
            }
        }
    }

    /// Rewrite the variants record with the names a response's `Vary` lists, for as long as
    /// such a response may be kept (at least a second).
    async fn remember(&self, vary: &[String], l: steadycache_api::Lifetimes) {
        let kept = l.fresh.saturating_add(l.stale).saturating_add(l.fail_safe);
        let policy = Policy::expire_after(kept.max(std::time::Duration::from_secs(1)));
        if let Err(e) = self.cache.set(&self.record, &vary.to_vec(), &policy).await {
            tracing::warn!(error = %e, record = %self.record, "steadycache-tower: variants record not written");
        }
    }
}

impl<S, Q, B> Service<Request<Q>> for HttpCache<S>
where
    S: Service<Request<Q>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    Q: Default + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<HttpCacheBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Answer<B, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Q>) -> Self::Future {
        // The clone that was made ready answers this request; the fresh clone waits for the
        // next `poll_ready` (tower's rule for services that are cloned into their futures).
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(serve(ready, self.cache.clone(), self.config.clone(), req))
    }
}

/// Answer `req`: from the cache, or from `svc` (ready) through the engine.
async fn serve<S, Q, B>(
    svc: S,
    cache: Cache,
    config: Arc<Config>,
    req: Request<Q>,
) -> Answer<B, S::Error>
where
    S: Service<Request<Q>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    Q: Default + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut svc = svc;
    if bypasses(req.method(), req.headers()) {
        return svc.call(req).await.map(passed);
    }
    let (parts, body) = req.into_parts();
    let Some(base) = key::base(&parts, &config) else {
        return svc.call(Request::from_parts(parts, body)).await.map(passed);
    };
    let record = key::record(&config, &base, &parts);
    let names: Vec<String> = cache.get(&record).await.ok().flatten().unwrap_or_default();
    let key = key::response(&config, &base, &parts, &names);
    let head = parts.method == Method::HEAD;
    let up = Upstream {
        cache: cache.clone(),
        config: config.clone(),
        record,
        names,
    };
    // The engine shares the refresh factory between its phases: behind a mutex, what it owns
    // need not be `Sync` (a service rarely is).
    let refresh = refresh_job(svc.clone(), parts.clone(), up.clone(), key.clone());
    let pending = Mutex::new(Some((svc, Request::from_parts(parts, body))));
    let live: Slot<(Miss, Live<B, S::Error>)> = Mutex::new(None);
    let compute = || async {
        let (svc, req) = take(&pending).ok_or(Miss::Failed)?;
        up.fetch(svc, req).await.map_err(|(miss, answer)| {
            put(&live, (miss, answer));
            miss
        })
    };
    let policy = config.policy();
    let found = cache
        .get_or_compute_with_lifetimes(&key, &policy, Stored::lifetimes, compute, refresh)
        .await;
    match (found, take(&live)) {
        // A hit, the leader's response, or a stored one served when the upstream failed.
        (Ok(stored), None | Some((Miss::Failed, _))) => Ok(stored.to_response(head)),
        // A stored response served in place of one the upstream now says not to store.
        (Ok(_), Some((Miss::NotStored, answer))) => {
            let _ = cache.invalidate(&key).await;
            answer.answer()
        }
        (Err(_), Some((_, answer))) => answer.answer(),
        // The engine failed without running the computation: ask the upstream directly.
        (Err(_), None) => match take(&pending) {
            Some((mut svc, req)) => svc.call(req).await.map(passed),
            None => Ok(bad_gateway()),
        },
    }
}

/// What a background refresh runs.
type Job = Pin<Box<dyn Future<Output = Result<Stored, Miss>> + Send>>;

/// A background refresh's job (what stale-while-revalidate runs; it owns what it needs). An
/// answer that must not be stored (the upstream now says `no-store`) removes the stale
/// response rather than letting the engine serve it on as a failed refresh's old value.
fn refresh_job<S, Q, B>(
    svc: S,
    parts: http::request::Parts,
    up: Upstream,
    key: String,
) -> RefreshWith<impl FnOnce() -> Job>
where
    S: Service<Request<Q>, Response = Response<B>> + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    Q: Default + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // The engine shares the factory between its phases: behind a mutex, what it owns need not
    // be `Sync` (a service rarely is).
    let owned = Mutex::new((svc, parts, up, key));
    RefreshWith(move || {
        let (svc, parts, up, key) = owned.into_inner().unwrap_or_else(|e| e.into_inner());
        Box::pin(async move {
            let req = Request::from_parts(parts, Q::default());
            let (miss, _) = match up.fetch(svc, req).await {
                Ok(stored) => return Ok(stored),
                Err(e) => e,
            };
            if miss == Miss::NotStored {
                let _ = up.cache.invalidate(&key).await;
            }
            Err(miss)
        }) as Job
    })
}

/// The answer when there is nothing else to give (a computation lost in the engine).
fn bad_gateway<B>() -> Response<HttpCacheBody<B>> {
    let mut response = Response::new(HttpCacheBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

impl<S> tower_layer::Layer<S> for crate::HttpCacheLayer {
    type Service = HttpCache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpCache::new(inner, self.cache.clone(), Arc::new(self.config.clone()))
    }
}

//! `Cache`'s calls by hand: a value under a key of the caller's, computed once and stored with
//! a policy (single-flight, stale-while-revalidate, fail-safe and the rest, as for a memoized
//! function).

use crate::cache::Cache;
use crate::engine::driver::{run_async, run_sync};
use crate::engine::plan::Plan;
use crate::engine::{AsyncRefresh, Lifetimes, NoRefresh, Shape};
use crate::policy::Policy;
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;

impl Cache {
    /// The value under `key`, or the result of `compute` stored under it, with `policy`:
    /// single-flight in process, stale-while-revalidate when the policy asks for it (the refresh
    /// reruns `compute`'s twin from `refresh`; see [`get_or_compute_with`](Self::get_or_compute_with)),
    /// fail-open when the backend errors.
    pub async fn get_or_compute<V, E, F, Fut>(
        &self,
        key: &str,
        policy: &Policy,
        compute: F,
    ) -> Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.get_or_compute_with(key, policy, compute, NoRefresh)
            .await
    }

    /// [`get_or_compute`](Self::get_or_compute) with a factory for the background refresh that
    /// stale-while-revalidate runs (it must own what it needs: it outlives the call).
    pub async fn get_or_compute_with<V, E, F, Fut, R>(
        &self,
        key: &str,
        policy: &Policy,
        compute: F,
        refresh: R,
    ) -> Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        R: AsyncRefresh<V, E>,
    {
        self.compute_shaped(key, policy, Shape::plain(), compute, refresh)
            .await
    }

    /// [`get_or_compute_with`](Self::get_or_compute_with) for values that carry their own
    /// lifetimes, known only once computed (an HTTP response's `Cache-Control`): each value is
    /// stored fresh, stale and fail-safe for what `lifetimes` says of it, replacing the
    /// policy's `ttl`, `stale_after` and `fail_safe`; the rest of the policy (refresh mode,
    /// lock, throttle, timeouts) applies as it is. A value with no lifetime at all
    /// (`Lifetimes::default()`) expires at once: return an error instead for what must not be
    /// stored.
    pub async fn get_or_compute_with_lifetimes<V, E, F, Fut, R>(
        &self,
        key: &str,
        policy: &Policy,
        lifetimes: fn(&V) -> Lifetimes,
        compute: F,
        refresh: R,
    ) -> Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        R: AsyncRefresh<V, E>,
    {
        let shape = Shape {
            lifetimes_of: Some(lifetimes),
            ..Shape::plain()
        };
        self.compute_shaped(key, policy, shape, compute, refresh)
            .await
    }

    /// A call by hand whose results are read with `shape`.
    async fn compute_shaped<V, E, F, Fut, R>(
        &self,
        key: &str,
        policy: &Policy,
        shape: Shape<V, E>,
        compute: F,
        refresh: R,
    ) -> Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        R: AsyncRefresh<V, E>,
    {
        if !crate::scope::is_enabled() || !self.is_enabled() {
            return compute().await;
        }
        let plan = Plan::compile(policy);
        run_async(self.ctx(key, &plan, shape), compute, refresh).await
    }

    /// The blocking twin of [`get_or_compute`](Self::get_or_compute): `compute` runs on the calling
    /// thread; backend calls go through the library's runtime (works inside and outside tokio).
    pub fn get_or_compute_sync<V, E, F>(
        &self,
        key: &str,
        policy: &Policy,
        compute: F,
    ) -> Result<V, E>
    where
        V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Result<V, E>,
    {
        if !crate::scope::is_enabled() || !self.is_enabled() {
            return compute();
        }
        let plan = Plan::compile(policy);
        run_sync(self.ctx(key, &plan, Shape::plain()), compute, NoRefresh)
    }
}

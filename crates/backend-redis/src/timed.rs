//! The data connection's deadline on each request, skipped where a cache bounds the request
//! itself.
//!
//! `redis-rs` can time each request out by itself (`response_timeout`), but a cache already
//! puts a deadline on each of its store operations (`backend_timeout`); two timers per request
//! made a Redis hit under 64 tasks 1.22–1.35× a raw `GET` instead of 1.02–1.05× (a tokio timer
//! registered and removed per request, on a wheel all tasks share). So the connection is made
//! without it, and [`Timed`] applies it here, unless the request runs under a cache's deadline
//! that is no longer ([`caller_deadline`]): one timer per request either way. The backend
//! reports that deadline as its [`own_deadline`](steadycache_api::Backend::own_deadline), so a
//! cache bounds its operations by the shorter of the two.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::time::Duration;
use steadycache_api::plumbing::caller_deadline;

/// A connection manager whose requests wait at most `limit` for their reply, unless a cache
/// runs them under a deadline no longer than `limit`.
#[derive(Clone)]
pub(crate) struct Timed {
    conn: ConnectionManager,
    limit: Duration,
}

impl Timed {
    /// `conn` (made without a response timeout), its requests bounded by `limit`.
    pub(crate) fn new(conn: ConnectionManager, limit: Duration) -> Timed {
        Timed { conn, limit }
    }

    /// The limit this connection puts on a request now: none when the caller's timer already
    /// bounds it.
    fn own_limit(&self) -> Option<Duration> {
        let bounded = caller_deadline().is_some_and(|d| d <= self.limit);
        (!bounded).then_some(self.limit)
    }
}

/// The error of a request that got no reply in time: what `redis-rs`'s own response timeout
/// returns (an I/O `TimedOut`, which does not make the connection reconnect).
fn timed_out() -> RedisError {
    std::io::Error::from(std::io::ErrorKind::TimedOut).into()
}

/// `reply`, within `limit` when there is one (as the client's own response timeout would have
/// it).
fn bound<'a, T: Send + 'a>(
    limit: Option<Duration>,
    reply: RedisFuture<'a, T>,
) -> RedisFuture<'a, T> {
    match limit {
        None => reply,
        Some(limit) => Box::pin(async move {
            tokio::time::timeout(limit, reply)
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        }),
    }
}

impl ConnectionLike for Timed {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let limit = self.own_limit();
        bound(limit, self.conn.req_packed_command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let limit = self.own_limit();
        bound(
            limit,
            self.conn.req_packed_commands(pipeline, offset, count),
        )
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

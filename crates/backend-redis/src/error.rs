//! `redis` errors into [`steadycache_api::Error`], by meaning: what may pass (connection refused or
//! dropped, a reply cut in the middle, timeouts, a cluster resharding or failing over, a server loading its data) is
//! [`Error::Unavailable`]; the rest (wrong password, a key of another type, a bad script) is
//! [`Error::Backend`].

use redis::{ErrorKind, RedisError, ServerErrorKind};
use steadycache_api::Error;

pub(crate) const NAME: &str = "redis";

/// Whether retrying later may help. A reply that does not parse is one: a connection reset in
/// the middle of a reply leaves a truncated one (redis-rs reports "Unexpected end of input"),
/// and a new connection answers whole.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.kind() == ErrorKind::Parse
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        )
}

/// Convert an error of operation `op`.
pub(crate) fn convert(op: &str, e: RedisError) -> Error {
    let transient = is_transient(&e);
    Error::from_backend(NAME, format!("{op}: {e}"), transient, e)
}

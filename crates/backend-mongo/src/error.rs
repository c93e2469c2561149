//! Driver errors into [`steadycache_api::Error`], by meaning: what may pass (network errors, no
//! reachable server, a pool cleared after a failure, errors the driver labels retryable) is
//! [`Error::Unavailable`]; the rest (authentication, a bad query, a document of another shape)
//! is [`Error::Backend`].

use mongodb::error::{
    CommandError, ErrorKind, WriteError, WriteFailure, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR,
};
use steadycache_api::Error;

pub(crate) const NAME: &str = "mongodb";

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Whether `e` is a duplicate-key error (a unique `_id` taken).
pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(WriteError { code, .. })) => {
            *code == DUPLICATE_KEY
        }
        ErrorKind::Command(CommandError { code, .. }) => *code == DUPLICATE_KEY,
        ErrorKind::InsertMany(im) => im
            .write_errors
            .as_ref()
            .is_some_and(|v| v.iter().any(|w| w.code == DUPLICATE_KEY)),
        _ => false,
    }
}

fn is_transient(e: &mongodb::error::Error) -> bool {
    matches!(
        &*e.kind,
        ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::ServerSelection { .. }
    ) || e.contains_label(RETRYABLE_WRITE_ERROR)
        || e.contains_label(RETRYABLE_ERROR)
}

/// Convert an error of operation `op`.
pub(crate) fn convert(op: &str, e: mongodb::error::Error) -> Error {
    let transient = is_transient(&e);
    Error::from_backend(NAME, format!("{op}: {e}"), transient, e)
}

//! I/O errors into [`cache_api::Error`], by meaning.

use cache_api::Error;
use std::io;

/// Map an I/O error of backend `backend` during `what`: permission denied, read-only storage and
/// a full disk are permanent ([`Error::Backend`]); anything else may pass ([`Error::Unavailable`]).
pub(crate) fn io_error(backend: &'static str, what: &str, e: io::Error) -> Error {
    let permanent = matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
    );
    Error::from_backend(backend, format!("{what}: {e}"), !permanent, e)
}

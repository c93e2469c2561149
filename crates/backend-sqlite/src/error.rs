//! SQLite errors into [`steadycache_api::Error`], by meaning: what may pass (busy / locked past
//! the busy timeout, interrupted or aborted, out of memory, I/O and file-locking failures, a
//! schema changed under a statement) is [`Error::Unavailable`]; the rest (read-only or
//! permission denied, a full disk, a corrupt database or a file that is not a database, a table
//! of another shape) is [`Error::Backend`]. Common causes get a hint in the message.

use rusqlite::ErrorCode;
use steadycache_api::{Error, Result};

pub(crate) const NAME: &str = "sqlite";

/// A SQLite error of operation `what`, by meaning (see the module docs).
fn sql_error(what: &str, e: rusqlite::Error) -> Error {
    let transient = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::OperationInterrupted
                | ErrorCode::OperationAborted
                | ErrorCode::SystemIoFailure
                | ErrorCode::SchemaChanged
                | ErrorCode::FileLockingProtocolFailed
        )
    );
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => " (the file exists but is not a SQLite database)",
        Some(ErrorCode::DatabaseCorrupt) => {
            " (the database file is corrupt; delete it to start an empty cache)"
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            " (another connection or process held the database past the busy timeout)"
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => " (the database is read-only)",
        Some(ErrorCode::DiskFull) => " (the disk is full)",
        _ => "",
    };
    let message = format!("{what}: {e}{hint}");
    Error::from_backend(NAME, message, transient, e)
}

/// `.ctx("operation")` on a `rusqlite` result: its error through [`sql_error`].
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| sql_error(what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn errors_are_classified_by_meaning() {
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_NOMEM,
            rusqlite::ffi::SQLITE_INTERRUPT,
        ] {
            assert!(sql_error("op", failure(code)).is_transient(), "code {code}");
        }
        for code in [
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_CORRUPT,
            rusqlite::ffi::SQLITE_NOTADB,
            rusqlite::ffi::SQLITE_ERROR,
        ] {
            let e = sql_error("op", failure(code));
            assert!(matches!(e, Error::Backend { .. }), "code {code}: {e}");
        }
        let e = rusqlite::Result::<()>::Err(failure(rusqlite::ffi::SQLITE_NOTADB))
            .ctx("opening x.db")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("opening x.db") && e.contains("not a SQLite database"),
            "{e}"
        );
    }
}

//! The one public error type of steadycache.
//!
//! Backend crates keep private error enums and convert them into [`Error`] at their edge, as
//! `object_store` does: callers match on meaning (`NotFound`, `Unsupported`, `Corrupt`, ...), never
//! on which store produced it.

use std::borrow::Cow;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside steadycache.
///
/// Use [`Error::is_transient`] to decide whether retrying can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend cannot be reached or answered with a failure that may pass (connection
    /// refused, timeout, server loading). Retrying may help.
    #[error("backend `{backend}` is unavailable: {message}")]
    Unavailable {
        /// Which backend (for example `"redis"`).
        backend: Cow<'static, str>,
        /// What happened.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The backend refused the operation for a reason retrying will not fix (bad credentials,
    /// permission denied, read-only storage, disk full).
    #[error("backend `{backend}` refused the operation: {message}")]
    Backend {
        /// Which backend.
        backend: Cow<'static, str>,
        /// What happened.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A stored entry could not be read back: truncated, tampered with, written by another codec,
    /// or not a steadycache entry at all. The engine treats it as a miss and removes it.
    #[error("corrupt cache entry: {0}")]
    Corrupt(String),
    /// A value could not be serialized or deserialized by the codec.
    #[error("codec `{codec}` failed: {message}")]
    Codec {
        /// The codec's name.
        codec: &'static str,
        /// What happened.
        message: String,
    },
    /// The backend does not support this operation natively; steadycache never fakes it.
    #[error("`{operation}` is not supported by backend `{backend}`")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
        /// The backend asked.
        backend: Cow<'static, str>,
    },
    /// A configuration value (URL, option, duration) is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bulk operation (a clear, a removal by prefix or pattern) stopped part way: `removed`
    /// keys are gone, the rest are not. Running it again goes on where it stopped.
    #[error("stopped part way, after removing {removed} keys: {source}")]
    Partial {
        /// How many keys it removed before it stopped.
        removed: u64,
        /// Why it stopped.
        #[source]
        source: Box<Error>,
    },
    /// A call was refused before (or instead of) finishing: it timed out, was rate limited, or
    /// its call breaker is open. Not an outage of a store: nothing is wrong with the cache, the
    /// call was turned away on purpose. Retrying later may succeed ([`Error::is_transient`]).
    #[error(transparent)]
    Refused(Refusal),
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::Refused(_) => true,
            Error::Partial { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// The refusal, when this is an [`Error::Refused`] (a timeout, a rate limit, an open call
    /// breaker) rather than a failure of a store.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::Refused(r) => Some(*r),
            _ => None,
        }
    }

    /// A backend failure with its underlying error: [`Error::Unavailable`] when `transient`
    /// (retrying may help), else [`Error::Backend`]. Backend crates classify their own errors
    /// and convert them with this at their edge.
    pub fn from_backend(
        backend: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        transient: bool,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let (backend, message, source) =
            (backend.into(), message.into(), Some(Box::new(source) as _));
        if transient {
            Error::Unavailable {
                backend,
                message,
                source,
            }
        } else {
            Error::Backend {
                backend,
                message,
                source,
            }
        }
    }

    /// An [`Error::Unavailable`] without a source.
    pub fn unavailable(backend: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::Unavailable {
            backend: backend.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Backend`] (permanent) without a source.
    pub fn backend(backend: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::Backend {
            backend: backend.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Unsupported`].
    pub fn unsupported(operation: &'static str, backend: impl Into<Cow<'static, str>>) -> Self {
        Error::Unsupported {
            operation,
            backend: backend.into(),
        }
    }
}

/// A memoized function did not finish within its `hard_timeout` and no old value could be
/// served: the error its caller gets, converted into the function's error type with `From`
/// (implemented here for [`Error`] (as [`Error::Refused`]), [`Refusal`], `std::io::Error`
/// (kind `TimedOut`) and, through `std::error::Error`, `Box<dyn Error + Send + Sync>`;
/// implement `From<FactoryTimeout>` for your own error type). The computation itself goes on in
/// the background and stores its value, unless `background_completion = false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the call timed out after {after:?} (hard_timeout); the function goes on in the background"
)]
pub struct FactoryTimeout {
    /// How long the caller waited.
    pub after: std::time::Duration,
}

/// A call refused by a rate limit (`#[rate_limit(on_exceed = "error")]`, or
/// `RateLimiter::try_acquire`): converted into the function's error type with `From`
/// (implemented for [`Error`] (as [`Error::Refused`]), [`Refusal`] and `std::io::Error`, kind
/// `WouldBlock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: retry in {retry_after:?}")]
pub struct RateLimited {
    /// How long until a call may be admitted (an estimate with fixed windows).
    pub retry_after: std::time::Duration,
}

/// A call refused because its call breaker is open (`#[call_breaker]`): the function
/// failed too often lately and is not called until the breaker half-opens. Converted into the
/// function's error type with `From` (implemented for [`Error`] (as [`Error::Refused`]),
/// [`Refusal`] and `std::io::Error`, kind `ConnectionRefused`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the call breaker is open: the function failed too often; a probe is let through within {retry_after:?}"
)]
pub struct CircuitOpen {
    /// At most how long until a probe call is let through.
    pub retry_after: std::time::Duration,
}

/// Why a call was refused: the payload of [`Error::Refused`]. A refusal is not an outage: the
/// store is fine, the call was turned away (it took too long, came too often, or its function
/// has been failing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The call did not finish within its `hard_timeout`.
    #[error(transparent)]
    TimedOut(FactoryTimeout),
    /// A rate limit refused the call.
    #[error(transparent)]
    RateLimited(RateLimited),
    /// The call's breaker is open.
    #[error(transparent)]
    CircuitOpen(CircuitOpen),
}

/// The conversions every refusal of a guard or timeout offers a function's error type: into
/// [`Refusal`], [`Error`] (as [`Error::Refused`]) and `std::io::Error` (of `kind`).
macro_rules! refusal_conversions {
    ($($ty:ident => $variant:ident, $kind:ident;)*) => {$(
        impl From<$ty> for Refusal {
            fn from(e: $ty) -> Self {
                Refusal::$variant(e)
            }
        }

        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::Refused(Refusal::$variant(e))
            }
        }

        impl From<$ty> for std::io::Error {
            fn from(e: $ty) -> Self {
                std::io::Error::new(std::io::ErrorKind::$kind, e)
            }
        }
    )*};
}

refusal_conversions! {
    FactoryTimeout => TimedOut, TimedOut;
    RateLimited => RateLimited, WouldBlock;
    CircuitOpen => CircuitOpen, ConnectionRefused;
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refusals_are_refused_not_unavailable_and_say_what_happened() {
        let cases: [(Error, &str); 3] = [
            (
                FactoryTimeout {
                    after: Duration::from_secs(2),
                }
                .into(),
                "the call timed out after 2s (hard_timeout); the function goes on in the background",
            ),
            (
                RateLimited {
                    retry_after: Duration::from_millis(300),
                }
                .into(),
                "rate limited: retry in 300ms",
            ),
            (
                CircuitOpen {
                    retry_after: Duration::from_secs(30),
                }
                .into(),
                "the call breaker is open: the function failed too often; a probe is let \
                 through within 30s",
            ),
        ];
        for (e, shown) in cases {
            assert_eq!(e.to_string(), shown);
            assert!(matches!(e, Error::Refused(_)), "{e:?}");
            assert!(!matches!(e, Error::Unavailable { .. }), "{e:?}");
            assert!(e.refusal().is_some());
            assert!(e.is_transient(), "retrying later may succeed, as before");
            assert!(!e.to_string().contains("unavailable"), "{e}");
        }
        let timeout = FactoryTimeout {
            after: Duration::from_secs(1),
        };
        assert_eq!(
            Error::from(timeout).refusal(),
            Some(Refusal::TimedOut(timeout))
        );
        assert_eq!(Error::unavailable("redis", "down").refusal(), None);
        let io: std::io::Error = timeout.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    }
}

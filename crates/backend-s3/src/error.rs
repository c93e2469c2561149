//! SDK errors into [`steadycache_api::Error`], by meaning. What may pass is
//! [`Error::Unavailable`]: no connection, a timeout, a cut or malformed response, a 5xx, 429
//! (but 501 Not Implemented) or `SlowDown`. The rest is [`Error::Backend`], with a message that says what to fix:
//! refused credentials (403 `InvalidAccessKeyId`, `SignatureDoesNotMatch`, `AccessDenied`), a
//! missing bucket, no credentials in the AWS chain.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use steadycache_api::Error;

pub(crate) const NAME: &str = "s3";

/// The HTTP status of a failed call, when a response came back.
pub(crate) fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// 412: a conditional write (`If-None-Match`, `If-Match`) or delete did not hold.
pub(crate) fn is_precondition_failed<E>(e: &SdkError<E, HttpResponse>) -> bool {
    status(e) == Some(412)
}

/// 409 `ConditionalRequestConflict`: another conditional write of the same key was in flight.
pub(crate) fn is_conflict<E>(e: &SdkError<E, HttpResponse>) -> bool {
    status(e) == Some(409)
}

/// 404 of an object (not of the bucket: `NoSuchBucket` stays an error).
pub(crate) fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    status(e) == Some(404) && e.code() != Some("NoSuchBucket")
}

const BUCKET_HINT: &str = " (the bucket does not exist: create it, or set create_bucket=true)";

/// Convert the error of operation `op` (`"get"`, `"put"`) on `what` (a key or the bucket).
pub(crate) fn convert<E>(op: &str, what: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = status(&e);
    let code = e.code().map(str::to_owned);
    let transient = match &e {
        SdkError::ConstructionFailure(_) => false,
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
        SdkError::ServiceError(_) => {
            matches!(status, Some(s) if (s >= 500 && s != 501) || s == 429 || s == 408)
                || matches!(
                    code.as_deref(),
                    Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable")
                )
        }
        _ => true,
    };
    let hint = match (status, code.as_deref()) {
        (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken")) => {
            " (the store refused the credentials: check the access key id and secret, from \
             S3Config::with_credentials or the AWS credential chain)"
        }
        (Some(403), _) | (_, Some("AccessDenied")) => {
            " (access denied: the credentials lack permission for this bucket, or are wrong)"
        }
        (_, Some("NoSuchBucket")) => BUCKET_HINT,
        (Some(404), _) if op == "head bucket" => BUCKET_HINT,
        _ => "",
    };
    let detail = match (status, code.as_deref()) {
        (Some(s), Some(c)) => format!("HTTP {s} {c}"),
        (Some(s), None) => format!("HTTP {s}"),
        _ => DisplayErrorContext(&e).to_string(),
    };
    Error::from_backend(NAME, format!("{op} `{what}`: {detail}{hint}"), transient, e)
}

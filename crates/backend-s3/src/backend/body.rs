//! Reading an object's body: into one buffer sized by its `Content-Length`, within the
//! operation timeout.

use super::S3Backend;
use crate::error::NAME;
use aws_sdk_s3::primitives::ByteStream;
use steadycache_api::{Error, Result};

/// Largest body size trusted from `Content-Length` for preallocation (bigger ones grow).
const MAX_PREALLOC: usize = 256 << 20;

/// Read a body into one buffer sized by its `Content-Length`; a body shorter than announced is
/// a transient error (the connection was cut), never a short value.
async fn read_body(key: &str, mut body: ByteStream, len: Option<i64>) -> Result<Vec<u8>> {
    let cut = |e: aws_sdk_s3::primitives::ByteStreamError| {
        Error::from_backend(NAME, format!("get `{key}`: reading the body: {e}"), true, e)
    };
    let expected = len.and_then(|l| usize::try_from(l).ok());
    let mut out: Vec<u8> = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(cut)? {
        if out.is_empty() && Some(chunk.len()) == expected {
            // The whole body in one chunk: take its buffer without a copy when it is unshared.
            out = Vec::from(chunk);
            continue;
        }
        if out.capacity() == 0 {
            out.reserve(expected.unwrap_or(0).min(MAX_PREALLOC));
        }
        out.extend_from_slice(&chunk);
    }
    if let Some(n) = expected {
        if out.len() != n {
            return Err(Error::unavailable(
                NAME,
                format!(
                    "get `{key}`: the body ended after {} of {n} bytes",
                    out.len()
                ),
            ));
        }
    }
    Ok(out)
}

impl S3Backend {
    /// Read a body, within the operation timeout (the SDK's ends once the headers are in).
    pub(crate) async fn read(
        &self,
        key: &str,
        body: ByteStream,
        len: Option<i64>,
    ) -> Result<Vec<u8>> {
        match self.inner.body_timeout {
            None => read_body(key, body, len).await,
            Some(t) => tokio::time::timeout(t, read_body(key, body, len))
                .await
                .map_err(|_| {
                    Error::unavailable(
                        NAME,
                        format!("get `{key}`: reading the body took longer than {t:?}"),
                    )
                })?,
        }
    }
}

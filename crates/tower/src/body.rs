//! [`HttpCacheBody`]: the body of every response the layer answers (a stored one, or the
//! upstream's passed through), and the bounded buffering of an upstream body.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The error type of [`HttpCacheBody`]: the upstream body's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a response from [`HttpCache`](crate::HttpCache): a whole stored body, or the
/// upstream's body passed through (after the part already read, when it was too large to
/// store).
pub struct HttpCacheBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    /// A body held whole (a stored response); `None` once sent.
    Full(Option<Bytes>),
    /// The upstream's body: `prefix` (what was read of it before the size limit) first.
    Stream {
        prefix: Option<Bytes>,
        rest: Pin<Box<B>>,
    },
    /// An upstream body that failed after `prefix` was read: `prefix`, then `error`.
    Broken {
        prefix: Option<Bytes>,
        error: Option<BoxError>,
    },
}

impl<B> std::fmt::Debug for HttpCacheBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Full(_) => "full",
            Kind::Stream { .. } => "stream",
            Kind::Broken { .. } => "broken",
        };
        f.debug_struct("HttpCacheBody")
            .field("kind", &kind)
            .finish()
    }
}

impl<B> HttpCacheBody<B> {
    /// A whole body.
    pub(crate) fn full(bytes: Bytes) -> Self {
        HttpCacheBody {
            kind: Kind::Full(Some(bytes).filter(|b| !b.is_empty())),
        }
    }

    /// The upstream's body, `prefix` first.
    pub(crate) fn stream(prefix: Bytes, rest: Pin<Box<B>>) -> Self {
        HttpCacheBody {
            kind: Kind::Stream {
                prefix: Some(prefix).filter(|b| !b.is_empty()),
                rest,
            },
        }
    }

    /// A body that yields `prefix`, then fails with `error`.
    pub(crate) fn broken(prefix: Bytes, error: BoxError) -> Self {
        HttpCacheBody {
            kind: Kind::Broken {
                prefix: Some(prefix).filter(|b| !b.is_empty()),
                error: Some(error),
            },
        }
    }
}

impl<B> Body for HttpCacheBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream { prefix, rest } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => rest.as_mut().poll_frame(cx).map_err(Into::into),
            },
            Kind::Broken { prefix, error } => match (prefix.take(), error.take()) {
                (Some(p), e) => {
                    *error = e;
                    Poll::Ready(Some(Ok(Frame::data(p))))
                }
                (None, e) => Poll::Ready(e.map(Err)),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Stream { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
            Kind::Broken { prefix, error } => prefix.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(len(bytes)),
            Kind::Stream { prefix, rest } => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(len(prefix)));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(len(prefix)));
                }
                hint
            }
            Kind::Broken { prefix, .. } => {
                let mut hint = SizeHint::new();
                hint.set_lower(len(prefix));
                hint
            }
        }
    }
}

/// An upstream body read up to a limit.
pub(crate) enum Buffered<B> {
    /// The whole body, within the limit.
    Whole(Bytes),
    /// Longer than the limit: what was read, and the rest unread.
    TooLarge(Bytes, B),
    /// The body failed after `prefix` was read.
    Failed(Bytes, BoxError),
}

/// Read `body` while it stays within `limit` bytes (a body whose size hint is already above it
/// is not read at all). Trailers are dropped: a stored response has none.
pub(crate) async fn buffer<B>(mut body: B, limit: usize) -> Buffered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let limit = limit as u64;
    if body.size_hint().lower() > limit {
        return Buffered::TooLarge(Bytes::new(), body);
    }
    let mut held = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Buffered::Whole(held.freeze()),
            Some(Err(e)) => return Buffered::Failed(held.freeze(), e.into()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    held.extend_from_slice(&data);
                    if held.len() as u64 > limit {
                        return Buffered::TooLarge(held.freeze(), body);
                    }
                }
            }
        }
    }
}

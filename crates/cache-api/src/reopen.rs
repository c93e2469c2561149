//! The backend of a cache whose URL could not be opened yet
//! ([`Cache::from_url_failing_open`](crate::Cache::from_url_failing_open)): memory meanwhile,
//! the URL's backend, opened again in the background, from its first success on.

use crate::backend::{Backend, BlockingBackend, Capabilities};
use crate::error::{Error, Result};
use crate::memory::MemoryBackend;
use crate::scheme::SchemeOpener;
use async_trait::async_trait;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// The first pause before opening a failed URL again; it doubles up to [`MAX_REOPEN_DELAY`].
const FIRST_REOPEN_DELAY: Duration = Duration::from_millis(500);
const MAX_REOPEN_DELAY: Duration = Duration::from_secs(30);

/// Where a failed open stands.
pub(crate) struct OpenState {
    pub(crate) error: String,
    pub(crate) attempts: u64,
    pub(crate) retrying: bool,
}

/// The backend of a cache whose URL could not be opened: memory until the URL's backend opens
/// (in the background), then that backend for good. The URL itself (secrets included) lives
/// only in the reopening task.
pub(crate) struct Reopening {
    real: OnceLock<Arc<dyn Backend>>,
    fallback: MemoryBackend,
    state: Mutex<OpenState>,
    redacted: String,
}

impl Reopening {
    /// Serving from memory, after a first attempt that failed with `error`.
    pub(crate) fn new(error: String, retrying: bool, redacted: String) -> Arc<Reopening> {
        Arc::new(Reopening {
            real: OnceLock::new(),
            fallback: MemoryBackend::default(),
            state: Mutex::new(OpenState {
                error,
                attempts: 1,
                retrying,
            }),
            redacted,
        })
    }

    /// Whether the URL's backend is open (and serves every call).
    pub(crate) fn is_open(&self) -> bool {
        self.real.get().is_some()
    }

    /// The URL, redacted.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, OpenState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[inline]
    fn target(&self) -> &dyn Backend {
        match self.real.get() {
            Some(b) => b.as_ref(),
            None => &self.fallback,
        }
    }

    /// Open `url` again with `open` in the background until it opens, a configuration error
    /// says it never will, or the cache is dropped.
    pub(crate) fn start(self: &Arc<Self>, url: String, open: SchemeOpener) {
        let rt = match crate::runtime::library_runtime() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "steadycache: no runtime to open the cache again; serving from memory");
                self.state().retrying = false;
                return;
            }
        };
        let me: Weak<Reopening> = Arc::downgrade(self);
        rt.spawn(async move {
            let mut delay = FIRST_REOPEN_DELAY;
            loop {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_REOPEN_DELAY);
                if me.strong_count() == 0 {
                    return;
                }
                let u = url.clone();
                // Openers are blocking (files, SQLite): off the runtime's workers.
                let opened = match tokio::task::spawn_blocking(move || open(&u)).await {
                    Ok(r) => r,
                    Err(e) => Err(Error::unavailable("cache", format!("opening task: {e}"))),
                };
                let Some(r) = me.upgrade() else { return };
                match opened {
                    Ok(b) => {
                        let _ = r.real.set(b);
                        r.state().retrying = false;
                        tracing::info!(url = %r.redacted, "steadycache: cache opened; memory fallback dropped");
                        let _ = r.fallback.delete_prefix("").await;
                        return;
                    }
                    Err(e) => {
                        let permanent = matches!(e, Error::Config(_));
                        let mut st = r.state();
                        st.attempts = st.attempts.saturating_add(1);
                        st.error = e.to_string();
                        if permanent {
                            st.retrying = false;
                            tracing::error!(url = %r.redacted, error = %e, "steadycache: cannot open cache (configuration); no more retries");
                            return;
                        }
                        tracing::debug!(url = %r.redacted, error = %e, "steadycache: cache still cannot be opened; retrying");
                    }
                }
            }
        });
    }
}

impl fmt::Debug for Reopening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reopening")
            .field("url", &self.redacted)
            .field("open", &self.real.get().is_some())
            .finish()
    }
}

#[async_trait]
impl Backend for Reopening {
    fn name(&self) -> &str {
        self.target().name()
    }
    fn capabilities(&self) -> Capabilities {
        self.target().capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.target().get(key).await
    }
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        self.target().set(key, value, ttl).await
    }
    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.target().set_if_absent(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.target().delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.target().delete_prefix(prefix).await
    }
    async fn delete_matching(&self, pattern: &crate::glob::Glob) -> Result<u64> {
        self.target().delete_matching(pattern).await
    }
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        self.target().publish(channel, message).await
    }
    async fn subscribe(&self, channel: &str) -> Result<crate::backend::Subscription> {
        self.target().subscribe(channel).await
    }
    async fn track(&self, beat: Duration) -> Result<crate::backend::Tracking> {
        self.target().track(beat).await
    }
    async fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<crate::KeyPage> {
        self.target().list_keys(prefix, cursor, limit).await
    }
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        self.target().incr(key, by, ttl).await
    }
    async fn admit_rate(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
    ) -> Result<Option<Duration>> {
        self.target().admit_rate(key, limit, period).await
    }
    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.target().acquire_lock(key, token, ttl).await
    }
    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        self.target().release_lock(key, token).await
    }
    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.target().extend_lock(key, token, ttl).await
    }
    async fn ping(&self) -> Result<()> {
        self.target().ping().await
    }
    fn blocking(&self) -> Option<&dyn BlockingBackend> {
        self.target().blocking()
    }
}

//! The invalidation bus: keeps a cache's in-process copies (L1 values, tag times) coherent with
//! what other processes do to the shared store.
//!
//! Every change a process makes (a stored value, an invalidation, a tag invalidation, a clear)
//! is applied to its own copies at once and sent as a small [`Message`]; every other process
//! applies what it hears. Two carriers:
//!
//! * **pub/sub**, on a store that has one (Redis): a channel per cache, heard as soon as it is
//!   published (about a round trip);
//! * **a polled feed**, on the other shared stores (files, SQLite, MongoDB, S3; see [`feed`]):
//!   heard within [`BusConfig::poll`].
//!
//! **Auto-recovery.** Copies are trusted only while the bus is heard: each message heard (a
//! process hears its own heartbeat every `grace / 4` on pub/sub; each successful poll on the
//! feed) vouches for them for [`BusConfig::grace`] more ([`Watch`]). When the bus breaks (the
//! connection is killed, the store restarts or is unreachable), no copy is served past that
//! bound: calls go to the store (or run their function). When it is heard again, the copies are
//! flushed first (messages may have been missed), then trusted again.

pub(crate) mod event;
pub(crate) mod feed;
mod tracking;

use super::budget::{Budget, Forget};
use super::clock;
use super::watch::{TagTable, Voucher, Watch};
use crate::backend::Backend;
use crate::error::Result;
use crate::glob::Glob;
use crate::manager::CacheManager;
use crate::time::unix_millis;
pub(crate) use event::{Event, Message};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How a cache's invalidation bus runs ([`CacheBuilder::bus`](crate::CacheBuilder::bus), or the
/// URL options `bus`, `bus_channel`, `bus_poll_ms`, `bus_grace_ms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Whether the bus runs at all (default on). Off, another process's changes reach this
    /// process's L1 copies only when they expire, and tag times are read from the store at
    /// every check.
    pub enabled: bool,
    /// The pub/sub channel (default `steadycache:bus`): caches that share a store and a
    /// channel share their invalidations.
    pub channel: String,
    /// How often a polled feed is read (default 100 ms): the latency of an invalidation
    /// between processes on stores without pub/sub.
    pub poll: Duration,
    /// How long in-process copies are served after the bus was last heard (default 1 s, at
    /// least twice the poll): the most a value invalidated elsewhere can be served while the
    /// bus is down.
    pub grace: Duration,
    /// Whether the store itself tells which keys changed (default off; the URL option
    /// `tracking=on`): on Redis, `CLIENT TRACKING` in broadcast mode on the backend's key
    /// prefix, so that a key written or removed by **any** client (one that does not use this
    /// library too, `redis-cli`, an expiry, an eviction, a `FLUSHALL`) drops the L1 copies at
    /// once. It vouches for the copies beside the bus (each must be heard: a broken tracking
    /// connection stops L1 serving within [`grace`](Self::grace), and the copies are flushed
    /// when it is back), and works with the bus off too. On a Redis Cluster one connection
    /// tracks each master. Only caches with an L1 track. The price: every write under the
    /// prefix, this process's own included, reaches every tracking process, so a value this
    /// process stores is read back from Redis once before its copy is kept (the report of a
    /// write cannot say whose write it was). A store that cannot track refuses the URL option
    /// (a builder's cache logs an error and relies on the bus).
    pub tracking: bool,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            enabled: true,
            channel: "steadycache:bus".into(),
            poll: Duration::from_millis(100),
            grace: Duration::from_secs(1),
            tracking: false,
        }
    }
}

impl BusConfig {
    /// The grace actually used: at least twice the poll plus 100 ms, at most an hour.
    pub(crate) fn effective_grace(&self) -> Duration {
        let floor = self
            .poll
            .saturating_mul(2)
            .saturating_add(Duration::from_millis(100));
        self.grace.max(floor).min(Duration::from_secs(3600))
    }
}

/// How this cache hears other processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// No other process writes the store (memory): the copies are the truth.
    Local,
    /// The store's pub/sub.
    PubSub,
    /// The polled feed.
    Feed,
    /// The bus is turned off on a shared store.
    Off,
}

/// One cache's bus (see the module docs).
pub(crate) struct Bus {
    origin: u64,
    pub(crate) watch: Arc<Watch>,
    pub(crate) tags: TagTable,
    /// The cache's in-process tiers (none on a cache without an L1).
    budget: Option<Arc<Budget>>,
    manager: Arc<dyn CacheManager>,
    config: BusConfig,
    /// A memory cache: no other process writes its store.
    local: bool,
    started: AtomicBool,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("carrier", &self.carrier())
            .field("channel", &self.config.channel)
            .finish()
    }
}

/// Which processes may write a cache's store, as far as its bus can know when it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// This process alone (a memory cache).
    Process,
    /// Whoever the store's capabilities say (`shared`).
    Store,
    /// Not known yet: the store is not open (`Cache::from_url_failing_open`: its capabilities
    /// are the memory fallback's until it opens, so the carrier is chosen at each use, and
    /// copies wait for the bus meanwhile).
    Opening,
}

impl Bus {
    /// The bus of a cache over `manager` whose in-process tiers share `budget`, its store
    /// written by `reach`.
    pub(crate) fn new(
        manager: Arc<dyn CacheManager>,
        budget: Option<Arc<Budget>>,
        reach: Reach,
        config: BusConfig,
    ) -> Arc<Bus> {
        let local = reach == Reach::Process;
        let alone = match reach {
            Reach::Process => true,
            Reach::Store => !manager.backend().capabilities().shared,
            Reach::Opening => false,
        };
        // Tracking vouches for L1 copies: a cache without one does not track.
        let tracking = config.tracking && budget.is_some();
        let (watch, authoritative) = match () {
            _ if alone => (Watch::local(), true),
            // The bus off: copies are served until they expire (or the store's tracking drops
            // them), tag times read at every check.
            _ => (Watch::vouched_by(config.enabled, tracking), false),
        };
        Arc::new(Bus {
            origin: fastrand::u64(..),
            watch: Arc::new(watch),
            tags: TagTable::new(authoritative),
            budget,
            manager,
            config,
            local,
            started: AtomicBool::new(false),
        })
    }

    /// How this cache hears other processes (from the store's capabilities now: a store opened
    /// late changes it once).
    pub(crate) fn carrier(&self) -> Carrier {
        let caps = self.manager.backend().capabilities();
        match () {
            _ if self.local || !caps.shared => Carrier::Local,
            _ if !self.config.enabled => Carrier::Off,
            _ if caps.pubsub => Carrier::PubSub,
            _ => Carrier::Feed,
        }
    }

    /// Whether this process's copies are the truth (a memory cache, or a store no other
    /// process writes): nothing to hear, nothing to read back.
    pub(crate) fn is_alone(&self) -> bool {
        self.tags.is_authoritative()
    }

    /// Whether this cache listens to its bus (it keeps copies: an L1, or tag times).
    pub(crate) fn is_listening(&self) -> bool {
        self.started.load(Relaxed)
    }

    /// Whether the store is shared and the bus carries changes (stores are then announced).
    pub(crate) fn carries(&self) -> bool {
        matches!(self.carrier(), Carrier::PubSub | Carrier::Feed)
    }

    /// Start listening (once; on the library's runtime), unless this process is alone or the
    /// bus is off. Until the bus is heard, in-process copies are not served.
    pub(crate) fn listen(self: &Arc<Self>) {
        let tracking = self.watch.uses(Voucher::Tracking);
        let silent = !self.config.enabled && !tracking;
        if self.is_alone() || silent || self.started.swap(true, Relaxed) {
            return;
        }
        if tracking {
            tracking::start(self);
        }
        if !self.config.enabled {
            return;
        }
        let weak = Arc::downgrade(self);
        let spawned = crate::runtime::library_runtime().map(|rt| {
            rt.spawn(async move {
                // A store not open yet (its memory fallback is not shared): wait for it.
                loop {
                    match weak.upgrade().map(|b| b.carrier()) {
                        Some(Carrier::PubSub) => return run_pubsub(weak).await,
                        Some(Carrier::Feed) => return run_feed(weak).await,
                        Some(Carrier::Local) => tokio::time::sleep(RETRY).await,
                        Some(Carrier::Off) | None => return,
                    }
                }
            })
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "steadycache: the invalidation bus cannot start; in-process copies are not served");
        }
    }

    /// The time `tag` was last invalidated, if this process knows it for sure (its copy of the
    /// store's tag times is trusted while the bus is heard).
    pub(crate) fn known_tag(&self, tag: &str) -> Option<u64> {
        if self.is_alone() {
            return self.tags.get(tag);
        }
        if !self.config.enabled || !self.watch.is_live() {
            return None; // nothing vouches for the copy: read the store
        }
        self.tags.get(tag)
    }

    /// Record a tag invalidation made here or heard: every tagged copy is checked again.
    pub(crate) fn learn_tag(&self, tag: &str, at: u64) {
        self.tags.learn(tag, at);
        self.watch.bump();
    }

    /// Record a tag time read from the store (`gen`: the table's generation before the read; a
    /// read that a flush overtook is not recorded). Tagged copies are checked again only when
    /// it is newer than what the table knew: a tag read for the first time was read by every
    /// check that stamped a copy carrying it.
    pub(crate) fn read_tag(&self, tag: &str, at: u64, gen: u64) {
        if self.tags.learn_read(tag, at, gen) {
            self.watch.bump();
        }
    }

    /// Apply `event` to this process's copies.
    pub(crate) fn apply(&self, event: &Event) {
        let forget = |what: Forget<'_>| {
            if let Some(b) = &self.budget {
                b.forget(what);
            }
        };
        match event {
            Event::Key(k) => forget(Forget::Key(k)),
            Event::Prefix(p) => forget(Forget::Prefix(p)),
            Event::Matching(g) => match Glob::new(g) {
                Ok(g) => forget(Forget::Matching(&g)),
                Err(_) => forget(Forget::All),
            },
            Event::Tag { tag, at } => self.learn_tag(tag, *at),
            Event::All => {
                forget(Forget::All);
                self.tags.clear_all(unix_millis());
                self.watch.bump();
            }
            Event::Beat => {}
        }
    }

    /// Drop every in-process copy (messages may have been missed).
    fn flush(&self) {
        if let Some(b) = &self.budget {
            b.forget(Forget::All);
        }
        self.tags.forget();
        self.watch.bump();
    }

    /// Send `event` to the other processes (nothing on a local or silent bus).
    pub(crate) async fn send(&self, event: Event) -> Result<()> {
        let message = Message {
            origin: self.origin,
            event,
        }
        .encode();
        let backend = self.manager.backend();
        match self.carrier() {
            Carrier::PubSub => backend.publish(&self.config.channel, &message).await,
            Carrier::Feed => feed::post(backend, message).await,
            Carrier::Local | Carrier::Off => Ok(()),
        }
    }

    /// Send `event` in the background (a stored value: the caller does not wait for it).
    pub(crate) fn send_later(self: &Arc<Self>, event: Event) {
        if !self.carries() {
            return;
        }
        let bus = self.clone();
        if let Ok(rt) = crate::runtime::library_runtime() {
            rt.spawn(async move {
                let t = bus.config.effective_grace();
                match tokio::time::timeout(t, bus.send(event)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "steadycache: a bus message was not sent")
                    }
                    Err(_) => tracing::debug!("steadycache: a bus message timed out"),
                }
            });
        }
    }

    /// `voucher` vouches for the copies for one grace from now, flushing them first if it had
    /// not (`live_until` is the task's own: it alone extends it).
    fn heard(&self, voucher: Voucher, live_until: &mut u64) {
        let now = clock::now_ms();
        if now >= *live_until {
            self.flush();
        }
        let grace = u64::try_from(self.config.effective_grace().as_millis()).unwrap_or(u64::MAX);
        *live_until = now.saturating_add(grace);
        self.watch.extend(voucher, *live_until);
    }

    fn hear(&self, bytes: &[u8], live_until: &mut u64) {
        let Some(m) = Message::decode(bytes) else {
            return; // another release's message, or garbage: dropped
        };
        self.heard(Voucher::Bus, live_until);
        if m.origin != self.origin {
            self.apply(&m.event);
        }
    }
}

/// Backoff between attempts to reach a broken bus.
const RETRY: Duration = Duration::from_millis(200);

/// What a voucher's task does until its cache is gone: open its source (within the grace;
/// `Ok(None)`: it never can, stop), hear it until it breaks, stop vouching, pause, again. A
/// failure to open is logged once per outage (`down`), then retried after a pause.
pub(super) async fn keep_hearing<R, F>(
    weak: Weak<Bus>,
    voucher: Voucher,
    down: &'static str,
    open: impl Fn(Arc<Bus>) -> F,
    hear: impl AsyncFn(&Weak<Bus>, R, &mut u64) -> bool,
) where
    F: std::future::Future<Output = Result<Option<R>>>,
{
    let mut live_until = 0u64;
    let mut logged = false;
    loop {
        let source = {
            let Some(bus) = weak.upgrade() else { return };
            let grace = bus.config.effective_grace();
            match tokio::time::timeout(grace, open(bus)).await {
                Ok(Ok(Some(source))) => Some(source),
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    if !std::mem::replace(&mut logged, true) {
                        tracing::warn!(error = %e, "{down}");
                    }
                    None
                }
                Err(_) => None,
            }
        };
        let Some(source) = source else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        logged = false;
        if !hear(&weak, source, &mut live_until).await {
            return;
        }
        if let Some(bus) = weak.upgrade() {
            bus.watch.lapse(voucher);
        }
        live_until = 0;
        tokio::time::sleep(RETRY).await;
    }
}

async fn run_pubsub(weak: Weak<Bus>) {
    let subscribe = |bus: Arc<Bus>| async move {
        let backend = bus.manager.backend();
        backend.subscribe(&bus.config.channel).await.map(Some)
    };
    let down = "steadycache: the invalidation bus is down; in-process copies are not served until it is back";
    keep_hearing(weak, Voucher::Bus, down, subscribe, listen_pubsub).await;
}

/// Hear one subscription until it breaks (`true`) or the cache is gone (`false`).
async fn listen_pubsub(
    weak: &Weak<Bus>,
    mut rx: crate::backend::Subscription,
    live_until: &mut u64,
) -> bool {
    let Some(beat_every) = weak.upgrade().map(|b| b.config.effective_grace() / 4) else {
        return false;
    };
    let mut beat = tokio::time::interval(beat_every.max(Duration::from_millis(10)));
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(bytes) = m else { return true };
                let Some(bus) = weak.upgrade() else { return false };
                bus.hear(&bytes, live_until);
                last_heard = tokio::time::Instant::now();
            }
            _ = beat.tick() => {
                let Some(bus) = weak.upgrade() else { return false };
                if last_heard.elapsed() > bus.config.effective_grace() * 2 {
                    return true; // the subscription went silent: subscribe again
                }
                let b = bus.clone();
                tokio::spawn(async move {
                    let t = b.config.effective_grace();
                    let _ = tokio::time::timeout(t, b.send(Event::Beat)).await;
                });
            }
        }
    }
}

async fn run_feed(weak: Weak<Bus>) {
    let mut live_until = 0u64;
    let mut cursor = feed::Cursor::default();
    let mut logged = false;
    loop {
        let poll_every = {
            let Some(bus) = weak.upgrade() else { return };
            let grace = bus.config.effective_grace();
            let backend: &dyn Backend = bus.manager.backend();
            match tokio::time::timeout(grace, feed::poll(backend, &mut cursor)).await {
                Ok(Ok(polled)) => {
                    logged = false;
                    for m in polled.messages {
                        if let Some(m) = Message::decode(&m) {
                            if m.origin != bus.origin {
                                bus.apply(&m.event);
                            }
                        }
                    }
                    if polled.lost {
                        bus.flush();
                    }
                    bus.heard(Voucher::Bus, &mut live_until);
                }
                Ok(Err(e)) => {
                    if !std::mem::replace(&mut logged, true) {
                        tracing::warn!(error = %e, "steadycache: the invalidation feed cannot be read; in-process copies are not served until it is back");
                    }
                }
                Err(_) => {}
            }
            bus.config.poll.max(Duration::from_millis(1))
        };
        tokio::time::sleep(poll_every).await;
    }
}

//! `CLIENT TRACKING` for a cache's L1 (Redis's server-assisted client-side caching): connections
//! of their own, in RESP3, with tracking on in broadcast mode (`BCAST`) on the backend's key
//! prefix, whose invalidation messages a task forwards as [`Tracked`] reports.
//!
//! **Why broadcast mode.** In the default mode the server remembers which keys each client read
//! and reports only those; but it must be the connection that reads (or one redirected to), and
//! the backend's reads go through a multiplexed connection that reconnects by itself, silently
//! losing its tracking state; the server also spends memory per key read and per client
//! (`tracking-table-max-keys`), and reports a key's eviction from that table as a change.
//! Broadcast mode needs no state per key: every write under the prefix is reported to every
//! tracking client, at the cost of the reports for keys a process never read (each is one
//! lookup in its L1). A key of the same name in another database of the server is reported too
//! (tracking is per server): a copy dropped for nothing, never one kept wrongly.
//!
//! **Liveness.** Every `beat` the task `PING`s each tracking connection (within the response
//! timeout) and reports [`Tracked::Beat`] when all answered; it ends the stream when one does
//! not, when a connection closes, and, on a cluster, when the set of masters changed (a new
//! master's keys would not be reported): the cache then tracks again and flushes its copies.

use crate::backend::{Client, Conn, RedisBackend};
use crate::error::{convert, NAME};
use redis::aio::MultiplexedConnection;
use redis::{
    cmd, AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, PushInfo, PushKind, Value,
};
use std::time::Duration;
use steadycache_api::{Error, Result, Tracked, Tracking};
use tokio::sync::mpsc;

/// How many reports wait for the cache before the forwarder waits for it.
const BUFFER: usize = 1024;
/// How many beats between two checks of a cluster's masters.
const TOPOLOGY_EVERY: u32 = 8;

impl RedisBackend {
    /// Track every key under the key prefix, on the server or on each master of a cluster (see
    /// the module docs). Connected on the library's runtime, where the forwarder runs.
    pub(crate) async fn track_keys(&self, beat: Duration) -> Result<Tracking> {
        let this = self.clone();
        let rt = steadycache_api::plumbing::library_runtime()?;
        match rt
            .spawn(async move { this.start_tracking(beat).await })
            .await
        {
            Ok(r) => r,
            Err(e) => Err(Error::unavailable(NAME, format!("CLIENT TRACKING: {e}"))),
        }
    }

    async fn start_tracking(&self, beat: Duration) -> Result<Tracking> {
        let (masters, targets) = self.tracking_targets().await?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let mut conns = Vec::with_capacity(targets.len());
        for info in targets {
            conns.push(self.tracking_connection(info, push_tx.clone()).await?);
        }
        let (tx, rx) = mpsc::channel(BUFFER);
        let forwarder = Forwarder {
            backend: self.clone(),
            conns,
            masters,
            push_rx,
            tx,
            beat: beat.max(Duration::from_millis(10)),
        };
        tokio::spawn(forwarder.run());
        Ok(rx)
    }

    /// Where to track: the server, or each master of a cluster (and the masters, to notice
    /// when they change).
    async fn tracking_targets(&self) -> Result<(Vec<(String, u16)>, Vec<ConnectionInfo>)> {
        match &self.inner.client {
            Client::Single(c) => Ok((Vec::new(), vec![c.get_connection_info().clone()])),
            Client::Cluster(_) => {
                let masters = self.cluster_masters().await?;
                let seed = self
                    .subscribe_clients()?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Config("no redis node to track".into()))?;
                let seed = seed.get_connection_info().clone();
                let targets = masters
                    .iter()
                    .map(|(host, port)| {
                        let addr = at(seed.addr(), host.clone(), *port);
                        seed.clone().set_addr(addr)
                    })
                    .collect();
                Ok((masters, targets))
            }
        }
    }

    async fn cluster_masters(&self) -> Result<Vec<(String, u16)>> {
        match self.conn().await? {
            Conn::Cluster(mut c) => self.masters(&mut c).await,
            Conn::Single(_) => Ok(Vec::new()),
        }
    }

    /// A RESP3 connection to `info` with tracking on, its pushes sent to `pushes`.
    async fn tracking_connection(
        &self,
        info: ConnectionInfo,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> Result<MultiplexedConnection> {
        let config = &self.inner.config;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|e| convert("CLIENT TRACKING", e))?;
        let setup = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_push_sender(pushes);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&setup)
            .await
            .map_err(|e| convert("CLIENT TRACKING", e))?;
        let mut on = cmd("CLIENT");
        on.arg("TRACKING").arg("ON").arg("BCAST");
        if !config.key_prefix.is_empty() {
            on.arg("PREFIX").arg(&config.key_prefix);
        }
        let () = on
            .query_async(&mut conn)
            .await
            .map_err(|e| convert("CLIENT TRACKING", e))?;
        Ok(conn)
    }
}

/// The connection `addr` with another host and port (its TLS settings kept).
fn at(addr: &ConnectionAddr, host: String, port: u16) -> ConnectionAddr {
    match addr {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    }
}

/// The task behind one [`Tracking`] (see the module docs).
struct Forwarder {
    backend: RedisBackend,
    conns: Vec<MultiplexedConnection>,
    /// A cluster's masters when tracking began (empty on a single server).
    masters: Vec<(String, u16)>,
    push_rx: mpsc::UnboundedReceiver<PushInfo>,
    tx: mpsc::Sender<Tracked>,
    beat: Duration,
}

impl Forwarder {
    async fn run(mut self) {
        let mut beat = tokio::time::interval(self.beat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beats = 0u32;
        loop {
            tokio::select! {
                push = self.push_rx.recv() => {
                    let Some(push) = push else { return };
                    if !self.forward(push).await {
                        return;
                    }
                }
                _ = beat.tick() => {
                    if !self.alive().await {
                        return;
                    }
                    beats = beats.wrapping_add(1);
                    if beats.is_multiple_of(TOPOLOGY_EVERY) && self.masters_changed().await {
                        return;
                    }
                    // What arrived before the answers is reported before the beat.
                    while let Ok(push) = self.push_rx.try_recv() {
                        if !self.forward(push).await {
                            return;
                        }
                    }
                    if self.tx.send(Tracked::Beat).await.is_err() {
                        return;
                    }
                }
                // The cache stopped listening: end now, and close the connections.
                () = self.tx.closed() => return,
            }
        }
    }

    /// Report one push; whether to go on (not after a disconnection or with no one listening).
    async fn forward(&self, push: PushInfo) -> bool {
        let report = match push.kind {
            PushKind::Invalidate => self.invalidated(&push.data),
            PushKind::Disconnection => return false,
            _ => return true,
        };
        match report {
            Some(r) => self.tx.send(r).await.is_ok(),
            None => true,
        }
    }

    /// The keys of an invalidation message, the key prefix taken off (`All` for a flush).
    fn invalidated(&self, data: &[Value]) -> Option<Tracked> {
        let prefix = self.backend.inner.config.key_prefix.as_bytes();
        let mut keys = Vec::new();
        for v in data {
            match v {
                Value::Nil => return Some(Tracked::All),
                Value::Array(items) | Value::Set(items) => {
                    for item in items {
                        if let Value::BulkString(k) = item {
                            let ours = k.strip_prefix(prefix).map(std::str::from_utf8);
                            if let Some(Ok(key)) = ours {
                                keys.push(key.to_owned());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        (!keys.is_empty()).then_some(Tracked::Keys(keys))
    }

    /// Whether every tracking connection answers a `PING`.
    async fn alive(&self) -> bool {
        let timeout = self.backend.inner.config.response_timeout;
        let ping_cmd = cmd("PING");
        for conn in &self.conns {
            let mut conn = conn.clone();
            let ping = ping_cmd.query_async::<String>(&mut conn);
            match tokio::time::timeout(timeout, ping).await {
                Ok(Ok(_)) => {}
                _ => return false,
            }
        }
        true
    }

    /// Whether a cluster's masters are no longer those tracked (an unreadable topology is not
    /// a change: the pings tell whether the tracked masters answer).
    async fn masters_changed(&self) -> bool {
        if self.masters.is_empty() {
            return false;
        }
        match self.backend.cluster_masters().await {
            Ok(now) => now != self.masters,
            Err(_) => false,
        }
    }
}

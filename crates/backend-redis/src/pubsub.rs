//! `SUBSCRIBE` for the cache's invalidation bus: a connection of its own (a subscribed
//! connection carries nothing else), whose messages a task forwards until the connection breaks
//! or the bus stops listening.

use crate::backend::{tls_certificates, Client, RedisBackend};
use crate::error::convert;
use futures_core::Stream;
use steadycache_api::{Error, Result, Subscription};

/// How many messages wait for the bus before the forwarder waits for it.
const BUFFER: usize = 1024;

impl RedisBackend {
    /// `SUBSCRIBE` to `channel` (the full Redis channel name). The receiver ends when the
    /// connection breaks (killed, server restarted): the caller subscribes again. On a cluster,
    /// classic pub/sub reaches every node: the first seed that answers is listened to (with the
    /// backend's TLS settings).
    pub(crate) async fn subscribe_channel(&self, channel: &str) -> Result<Subscription> {
        let mut last = None;
        let clients = self.subscribe_clients()?;
        // A different first seed at each attempt, each within the connect timeout: a seed that
        // drops packets costs one timeout, not every attempt.
        let start = fastrand::usize(..clients.len().max(1));
        let timeout = self.inner.config.connect_timeout;
        for i in 0..clients.len() {
            let Some(client) = clients.get((start + i) % clients.len()) else {
                continue;
            };
            match tokio::time::timeout(timeout, subscribe_on(client, channel)).await {
                Ok(Ok(rx)) => return Ok(rx),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(Error::unavailable(
                        "redis",
                        "SUBSCRIBE: no answer within connect_timeout",
                    ))
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no redis node to subscribe to".into())))
    }

    pub(crate) fn subscribe_clients(&self) -> Result<Vec<redis::Client>> {
        let config = &self.inner.config;
        match &self.inner.client {
            Client::Single(c) => Ok(vec![c.clone()]),
            Client::Cluster(_) => {
                let certs = tls_certificates(config)?;
                let mut clients = Vec::new();
                for seed in config.seeds()? {
                    let client = match &certs {
                        #[cfg(feature = "tls")]
                        Some(certs) => redis::Client::build_with_tls(seed.as_str(), certs.clone()),
                        _ => redis::Client::open(seed.as_str()),
                    };
                    clients.push(client.map_err(|e| convert("SUBSCRIBE", e))?);
                }
                Ok(clients)
            }
        }
    }
}

async fn subscribe_on(client: &redis::Client, channel: &str) -> Result<Subscription> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| convert("SUBSCRIBE", e))?;
    pubsub
        .subscribe(channel)
        .await
        .map_err(|e| convert("SUBSCRIBE", e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(BUFFER);
    let mut stream = pubsub.into_on_message();
    let forward = async move {
        loop {
            let next = tokio::select! {
                m = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)) => m,
                // The bus stopped listening (its cache was dropped, or it subscribed again):
                // end now rather than at the next message, and close the connection.
                () = tx.closed() => return,
            };
            let Some(msg) = next else { return };
            if tx.send(msg.get_payload_bytes().to_vec()).await.is_err() {
                return;
            }
        }
    };
    steadycache_api::plumbing::library_runtime()?.spawn(forward);
    Ok(rx)
}

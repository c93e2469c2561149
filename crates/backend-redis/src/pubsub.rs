//! `SUBSCRIBE` for the cache's invalidation bus: a connection of its own (a subscribed
//! connection carries nothing else), whose messages a task forwards until it breaks.

use crate::backend::{Client, RedisBackend};
use crate::error::convert;
use futures_core::Stream;
use std::pin::Pin;
use steadycache_api::{Result, Subscription};

/// How many messages wait for the bus before the forwarder waits for it.
const BUFFER: usize = 1024;

/// Subscribe to `channel` (the full Redis channel name). The receiver ends when the connection
/// breaks (killed, server restarted): the caller subscribes again.
impl RedisBackend {
    /// `SUBSCRIBE` to `channel` (see the module docs).
    pub(crate) async fn subscribe_channel(&self, channel: &str) -> Result<Subscription> {
        let backend = self;
        let client = match &backend.inner.client {
            Client::Single(c) => c.clone(),
            // Classic pub/sub reaches every node of a cluster: listen on the first one.
            Client::Cluster(_) => {
                let seed = backend.inner.config.seeds()?.into_iter().next();
                let url = seed.unwrap_or_else(|| backend.inner.config.url.clone());
                redis::Client::open(url.as_str()).map_err(|e| convert("SUBSCRIBE", e))?
            }
        };
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
                let next = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
                let Some(msg) = next else { return };
                if tx.send(msg.get_payload_bytes().to_vec()).await.is_err() {
                    return; // the bus stopped listening
                }
            }
        };
        steadycache_api::plumbing::library_runtime()?.spawn(forward);
        Ok(rx)
    }
}

//! The S3 backend's locks and clocks against a real S3 server (s3s-fs): releases that never
//! delete unconditionally, and clients whose clocks differ.

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use steadycache_api::testing::unique_prefix;
use steadycache_api::Backend;
use steadycache_s3::testing::S3Server;
use steadycache_s3::{S3Backend, SKEW_MARGIN};

/// The bucket every case of this binary uses (each works under its own key prefix).
const BUCKET: &str = "locks-and-clocks";

/// One server for the whole test binary.
fn server() -> &'static S3Server {
    static S: OnceLock<S3Server> = OnceLock::new();
    S.get_or_init(S3Server::start)
}

fn backend(prefix: &str) -> S3Backend {
    S3Backend::open(server().config(BUCKET, prefix)).unwrap()
}

/// An expired object is a miss at once, but a read deletes it only once it is expired by more
/// than [`SKEW_MARGIN`]: within the margin, it may be live for a writer whose clock differs.
#[tokio::test]
async fn an_expired_object_is_a_miss_and_is_deleted_on_read_only_past_the_skew_margin() {
    let b = backend(&unique_prefix("lazy"));
    b.set("k", b"v".to_vec(), Some(Duration::from_millis(200)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = b.client().await.unwrap();
    let exists = || async {
        client
            .head_object()
            .bucket(BUCKET)
            .key(b.object_key("k"))
            .send()
            .await
            .is_ok()
    };
    assert!(exists().await, "S3 does not expire it by itself");
    assert_eq!(b.get("k").await.unwrap(), None, "expired: a miss");
    assert!(
        exists().await,
        "expired by less than the margin: the read kept it"
    );
    tokio::time::sleep(SKEW_MARGIN).await;
    assert_eq!(b.get("k").await.unwrap(), None);
    assert!(
        !exists().await,
        "expired by more than the margin: the read removed it"
    );
    assert!(!b.delete("k").await.unwrap());
}

/// Two clients of one bucket whose clocks differ by a minute (`holder_skew_ms`,
/// `other_skew_ms`): neither takes over a lock or an entry the other holds for 30 s, and
/// neither deletes the other's live entry on read.
async fn skewed_clients_leave_each_others_live_entries_alone(
    holder_skew_ms: i64,
    other_skew_ms: i64,
) {
    let prefix = unique_prefix("skew");
    let open =
        |skew| S3Backend::open(server().config(BUCKET, &prefix).with_clock_skew(skew)).unwrap();
    let (holder, other) = (open(holder_skew_ms), open(other_skew_ms));
    steadycache_api::testing::skew::skewed_clients_leave_each_others_live_entries_alone(
        &holder, &other,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_clock_runs_ahead_takes_over_nothing_and_deletes_nothing_live() {
    skewed_clients_leave_each_others_live_entries_alone(0, 60_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_clock_runs_behind_keeps_its_lock_and_entries() {
    skewed_clients_leave_each_others_live_entries_alone(-60_000, 0).await;
}

/// What a [`DeleteTap`] saw and what it does.
#[derive(Debug, Default)]
struct TapState {
    /// The status every conditional `DeleteObject` gets instead of reaching the object (0: they
    /// go through).
    force: AtomicU16,
    /// The request now in flight was diverted: its answer gets `force`.
    diverted: AtomicBool,
    /// Every `DeleteObject` sent: whether it carried `If-Match`.
    deletes: Mutex<Vec<bool>>,
}

impl TapState {
    fn unconditional_deletes(&self) -> usize {
        self.deletes.lock().unwrap().iter().filter(|c| !**c).count()
    }
    fn conditional_deletes(&self) -> usize {
        self.deletes.lock().unwrap().iter().filter(|c| **c).count()
    }
}

/// An SDK interceptor for one test at a time: it records every `DeleteObject` of the client and,
/// when told, makes each conditional one answer a chosen status (412: the version changed; 501:
/// the store has no conditional deletes) without touching the object: the request is diverted,
/// before it is signed, to a key nobody uses, and its answer's status is replaced.
#[derive(Debug)]
struct DeleteTap(Arc<TapState>);

impl Intercept for DeleteTap {
    fn name(&self) -> &'static str {
        "DeleteTap"
    }

    fn modify_before_signing(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = ctx.request_mut();
        if req.method() != "DELETE" || !req.uri().contains("x-id=DeleteObject") {
            return Ok(());
        }
        let conditional = req.headers().get("if-match").is_some();
        self.0.deletes.lock().unwrap().push(conditional);
        if conditional && self.0.force.load(SeqCst) != 0 {
            let uri = req
                .uri()
                .replacen("?x-id=", "-diverted-by-the-tap?x-id=", 1);
            req.set_uri(uri)?;
            self.0.diverted.store(true, SeqCst);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.diverted.swap(false, SeqCst) {
            *ctx.response_mut().status_mut() = self.0.force.load(SeqCst).try_into()?;
        }
        Ok(())
    }
}

/// `release_lock` deletes only `If-Match` the version it read: when every conditional delete
/// loses (412) it gives up, and on a store without conditional deletes (501) it expires the
/// lock in place; it never sends a plain `DeleteObject`, which could remove another holder's
/// lock taken in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_lock_never_deletes_unconditionally() {
    let tap = Arc::new(TapState::default());
    let own = backend("");
    let config = own
        .client()
        .await
        .unwrap()
        .config()
        .to_builder()
        .interceptor(DeleteTap(tap.clone()))
        .build();
    let prefix = format!("tap-{:08x}/", fastrand::u32(..));
    let b = S3Backend::from_client(aws_sdk_s3::Client::from_conf(config), BUCKET, prefix);
    let ttl = Duration::from_secs(30);

    // A store that answers conditional deletes with 501.
    assert!(b.acquire_lock("no-cond", "t1", ttl).await.unwrap());
    tap.force.store(501, SeqCst);
    let released = b.release_lock("no-cond", "t1").await;
    tap.force.store(0, SeqCst);
    assert_eq!(
        tap.unconditional_deletes(),
        0,
        "a plain DeleteObject was sent"
    );
    assert!(
        matches!(released, Ok(true)),
        "expired in place: {released:?}"
    );
    assert!(
        !b.extend_lock("no-cond", "t1", ttl).await.unwrap(),
        "the released lock is not live"
    );
    assert!(
        b.acquire_lock("no-cond", "t2", ttl).await.unwrap(),
        "the next taker takes the released lock over"
    );

    // Every conditional delete loses (412), round after round.
    assert!(b.acquire_lock("lost", "t1", ttl).await.unwrap());
    let before = tap.conditional_deletes();
    tap.force.store(412, SeqCst);
    let released = b.release_lock("lost", "t1").await;
    tap.force.store(0, SeqCst);
    assert_eq!(
        tap.unconditional_deletes(),
        0,
        "a plain DeleteObject was sent"
    );
    assert!(tap.conditional_deletes() > before + 1, "it looked again");
    assert!(
        matches!(&released, Ok(false)) || matches!(&released, Err(e) if e.is_transient()),
        "{released:?}"
    );
    assert!(
        !b.acquire_lock("lost", "t2", ttl).await.unwrap(),
        "the lock was not removed"
    );
    assert!(b.release_lock("lost", "t1").await.unwrap());
    assert_eq!(tap.unconditional_deletes(), 0);
}

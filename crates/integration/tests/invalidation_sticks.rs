//! An invalidation sticks on Redis (issue 21, item 2): two caches over one real Redis, each
//! with its own connection (as two processes have), race a computation against an invalidation
//! of its key, its prefix, a pattern and a clear; the old value is never kept. With and without
//! an in-process tier. The memory, file and SQLite runs are in the facade's
//! `tests/invalidation_sticks.rs`.

use std::sync::OnceLock;
use steadycache::Cache;
use steadycache_api::testing::sticks::{race, KINDS};
use steadycache_redis::testing::RedisServer;

fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

fn over(options: &str) {
    let url = format!("{}{options}", server().url());
    for (i, kind) in KINDS.into_iter().enumerate() {
        let (a, b) = (
            Cache::from_url_unshared(&url).unwrap(),
            Cache::from_url_unshared(&url).unwrap(),
        );
        race(a, b, kind, &format!("r{i}{}", options.len()));
    }
}

#[test]
fn on_redis() {
    over("?key_prefix=sticks:");
}

#[test]
fn on_redis_with_an_in_process_tier() {
    over("?key_prefix=sticks-l1:&local=1MiB");
}

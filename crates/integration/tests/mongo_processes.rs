//! The cache on a real MongoDB-wire server (nx-27017), across OS processes and through an
//! outage (issue 5). The test binary re-invokes itself as the children (`child_main`).

mod support;

use steadycache::{Cache, MongoBackend};
use steadycache_mongo::testing::MongoServer;
use support::{killed_holder_then_one_more, racers_then_a_reuser, ROLE};

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the mongo process tests as a child process"]
fn child_main() {
    if let Ok(role) = std::env::var(ROLE) {
        support::race_child(&role);
    }
}

#[test]
fn four_processes_times_twenty_tasks_run_the_body_once_and_later_processes_hit() {
    let server = MongoServer::start();
    racers_then_a_reuser(4, 20, &format!("{}&collection=xp", server.url()), &[]);
}

#[test]
fn a_lock_holder_killed_mid_computation_does_not_block_the_others() {
    let server = MongoServer::start();
    killed_holder_then_one_more(&format!("{}&collection=dead", server.url()), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_open_and_caching_resumes_after_a_restart() {
    let mut server = MongoServer::start();
    let url = format!(
        "{}&collection=outage&server_selection_timeout_ms=500",
        server.url()
    );
    let cache = Cache::builder()
        .backend(MongoBackend::from_url(&url).unwrap())
        .build();
    steadycache_api::testing::outage_fails_open(&cache, |up| {
        if up {
            server.restart()
        } else {
            server.kill()
        }
    })
    .await;
}

#[test]
fn a_lease_outlives_its_ttl_across_processes() {
    let server = MongoServer::start();
    support::a_lease_outlives_its_ttl(&format!("{}&collection=lease", server.url()), &[]);
}

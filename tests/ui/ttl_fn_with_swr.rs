use std::time::Duration;

fn ttl_for(_v: &u32) -> Duration {
    Duration::from_secs(5)
}

#[steadycache::cached(ttl_fn = ttl_for, stale_while_revalidate = "1m")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}

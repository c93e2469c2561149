#[steadycache::cached(ttl = "1s", stale_while_revalidate = "1m", refresh = "block")]
fn f(x: u32) -> u32 { x }
fn main() {}

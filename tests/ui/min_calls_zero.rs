#[steadycache::cached(ttl = "1m", min_calls = 0)]
fn f(x: u32) -> u32 { x }
fn main() {}

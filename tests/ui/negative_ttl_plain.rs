#[steadycache::cached(negative_ttl = "1m")]
fn f(x: u32) -> u32 { x }
fn main() {}

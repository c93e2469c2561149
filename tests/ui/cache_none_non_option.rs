#[steadycache::cached(cache_none = "1m")]
fn f(x: u32) -> u32 { x }
fn main() {}

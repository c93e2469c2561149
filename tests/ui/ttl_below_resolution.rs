#[steadycache::cached(ttl = "500us")]
fn f(x: u32) -> u32 { x }
fn main() {}

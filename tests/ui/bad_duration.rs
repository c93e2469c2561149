#[steadycache::cached(ttl = "ten minutes")]
fn f(x: u32) -> u32 { x }
fn main() {}

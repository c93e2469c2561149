#[steadycache::cached(lock = "global")]
fn f(x: u32) -> u32 { x }
fn main() {}

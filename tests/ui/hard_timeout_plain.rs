#[steadycache::cached(hard_timeout = "1s")]
fn f(x: u32) -> u32 { x }
fn main() {}

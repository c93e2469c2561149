#[steadycache::cached(ttl = "1s", refresh = "background")]
fn f(x: u32) -> u32 { x }
fn main() {}

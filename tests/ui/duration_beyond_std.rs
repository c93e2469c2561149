#[steadycache::cached(ttl = "18446744073709551616s")]
fn f(x: u32) -> u32 { x }
fn main() {}

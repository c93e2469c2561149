#[steadycache::cached(ttl = "1m", early_refresh = 0.0)]
fn f(x: u32) -> u32 { x }
fn main() {}

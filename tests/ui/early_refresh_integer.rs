#[steadycache::cached(ttl = "1m", early_refresh = 1)]
fn f(x: u32) -> u32 { x }
fn main() {}

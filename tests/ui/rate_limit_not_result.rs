#[steadycache::rate_limit(limit = 5, period = "1s")]
fn f(x: u32) -> u32 { x }
fn main() {}

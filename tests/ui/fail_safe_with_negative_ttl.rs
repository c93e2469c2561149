#[steadycache::cached(ttl = "1m", fail_safe = "1h", negative_ttl = "5s")]
fn f(x: u32) -> Result<u32, String> { Ok(x) }
fn main() {}

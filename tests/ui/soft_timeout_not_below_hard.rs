#[steadycache::cached(ttl = "1m", fail_safe = "1h", soft_timeout = "2s", hard_timeout = "2s")]
fn f(x: u32) -> Result<u32, String> { Ok(x) }
fn main() {}

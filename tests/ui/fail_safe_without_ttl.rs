#[steadycache::cached(fail_safe = "1h")]
fn f(x: u32) -> Result<u32, String> { Ok(x) }
fn main() {}

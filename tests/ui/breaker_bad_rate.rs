#[steadycache::call_breaker(error_rate = 1.5, min_calls = 5, period = "1m", half_open_after = "10s")]
fn f(x: u32) -> Result<u32, String> { Ok(x) }
fn main() {}

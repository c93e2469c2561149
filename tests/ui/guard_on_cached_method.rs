struct S;
impl S {
    #[steadycache::cached(ttl = "1m", key_self = false)]
    #[steadycache::rate_limit(limit = 5, period = "1s", name = "s")]
    fn f(&self, x: u32) -> Result<u32, steadycache::RateLimited> { Ok(x) }
}
fn main() {}

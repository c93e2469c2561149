#[steadycache::cached(ttl = "1m", tags = "user:{id}")]
fn profile(id: u64) -> u64 { id }
fn main() {}

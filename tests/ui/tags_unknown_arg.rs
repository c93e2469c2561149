#[steadycache::cached(ttl = "1m", tags = ["user:{nope}"])]
fn profile(id: u64) -> u64 { id }
fn main() {}

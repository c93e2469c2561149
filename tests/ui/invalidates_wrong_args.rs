#[steadycache::cached(ttl = "1m")]
fn profile(id: u64) -> u64 { id }
#[steadycache::invalidates(profile(id, 2))]
fn update(id: u64) -> Result<(), String> { let _ = id; Ok(()) }
fn main() {}

#[steadycache::invalidates(tags = ["user:{user}"])]
fn update(id: u64) -> Result<(), String> { let _ = id; Ok(()) }
fn main() {}

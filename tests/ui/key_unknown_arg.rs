#[steadycache::cached(key = "user:{uid}")]
fn f(id: u32) -> u32 { id }
fn main() {}

#[steadycache::cached(key = "page:{q.page}")]
fn f(x: u32) -> u32 { x }
fn main() {}

#[steadycache::cached(key = "{a}-{b}")]
fn f(a: u32, b: u32) -> u32 { a + b }
fn main() {}

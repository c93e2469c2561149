#[steadycache::cached(tll = "1s")]
fn f(x: u32) -> u32 { x }
fn main() {}

#[steadycache::cached(skip(client))]
fn f(x: u32) -> u32 { x }
fn main() {}

#[steadycache::cached]
fn f<T: serde::Serialize>(x: T) -> u32 { let _ = x; 1 }
fn main() {}

// An argument with neither serde nor `Hash` cannot be part of a key.
struct Conn;
#[steadycache::cached]
fn f(c: Conn) -> u32 { let _ = c; 1 }
fn main() {}

struct Conn;
#[steadycache::cached]
fn f(c: Conn) -> u32 { let _ = c; 1 }
fn main() {}

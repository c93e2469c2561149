struct Report;
#[derive(Clone)]
struct Plain(u32);
#[steadycache::cached]
fn f(x: u32) -> Plain { Plain(x) }
fn main() { let _ = Report; }

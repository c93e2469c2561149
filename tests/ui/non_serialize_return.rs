// A value without serde cannot go to a store known at compile time (in memory it can).
struct Report;
#[derive(Clone)]
struct Plain(u32);
#[steadycache::cached(cache = "file:///tmp/steadycache-ui")]
fn f(x: u32) -> Plain { Plain(x) }
fn main() { let _ = Report; }

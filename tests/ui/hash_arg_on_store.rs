// An argument that is only `Hash` keys a cache in memory, not a store known at compile time.
#[derive(Hash, PartialEq, Eq, Clone)]
struct Region(u8);
#[steadycache::cached(cache = "file:///tmp/steadycache-ui")]
fn f(r: Region) -> u32 { u32::from(r.0) }
fn main() {}

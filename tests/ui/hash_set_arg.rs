type FxHashSet<T> = std::collections::HashSet<T>;

#[steadycache::cached]
fn f(ids: Vec<std::collections::HashSet<u32>>) -> u32 { ids.len() as u32 }

#[steadycache::cached(ttl = "1m")]
fn g(ids: &FxHashSet<u32>) -> u32 { ids.len() as u32 }

fn main() {}

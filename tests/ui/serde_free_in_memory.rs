// In memory, neither the value nor a `Hash` argument needs serde.
use std::sync::Arc;
struct Client(u32);
#[derive(Hash, PartialEq, Eq, Clone)]
struct Region(u8);
#[steadycache::cached]
fn client(r: Region, shard: u32) -> Arc<Client> { Arc::new(Client(u32::from(r.0) + shard)) }
#[steadycache::cached(cache = "mem://")]
fn client_mem(r: &Region) -> Arc<Client> { Arc::new(Client(u32::from(r.0))) }
#[steadycache::cached(cache = steadycache::Cache::memory())]
fn client_memory(r: Region) -> Option<Arc<Client>> { Some(Arc::new(Client(u32::from(r.0)))) }
fn main() {
    let a = client(Region(1), 2);
    assert!(Arc::ptr_eq(&a, &client(Region(1), 2)));
    assert_eq!(client_mem(&Region(3)).0, 3);
    assert_eq!(client_memory(Region(4)).map(|c| c.0), Some(4));
}

#[steadycache::cached(ttl = "1m", key = "user:{id}", tags = ["user:{id}", "users"])]
fn profile(id: u64) -> u64 { id }
#[steadycache::invalidates(profile(id), tags = ["user:{id}"])]
fn update(id: u64, name: String) -> Result<usize, String> { let n = name; Ok(n.len() + id as usize) }
fn main() {
    assert_eq!(profile(1), 1);
    assert_eq!(update(1, "ab".into()), Ok(3));
}

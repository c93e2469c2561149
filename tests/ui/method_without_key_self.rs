struct Repo;
impl Repo {
    #[steadycache::cached(ttl = "1m")]
    fn load(&self, id: u32) -> u32 { id }
}
fn main() {}

struct S;
impl S {
    #[steadycache::cached(ttl = "1s", stale_while_revalidate = "1m")]
    fn f(&self, x: u32) -> u32 { x }
}
fn main() {}

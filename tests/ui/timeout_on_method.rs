struct S;
impl S {
    #[steadycache::cached(soft_timeout = "100ms", key_self = false)]
    fn f(&self, x: u32) -> u32 { x }
}
fn main() {}

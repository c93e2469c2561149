struct S;
impl S {
    #[steadycache::rate_limit(limit = 5, period = "1s", on_exceed = "wait")]
    fn f(&self, x: u32) -> u32 { x }
}
fn main() {}

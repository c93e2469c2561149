#[steadycache::cached(cache = 5)]
fn f(x: u32) -> u32 {
    x
}
fn main() {}

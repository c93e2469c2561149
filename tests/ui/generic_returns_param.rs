#[steadycache::cached(key = "{x}")]
fn f<T: std::fmt::Display + Clone>(x: T) -> Vec<T> { vec![x] }
fn main() {}

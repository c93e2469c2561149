//! Every invalid `#[cached]` use is a clear compile error (trybuild).
#[test]
fn invalid_uses_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

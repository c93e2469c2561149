//! `#[cached]` at compile time (trybuild): every invalid use is a clear compile error, and the
//! valid uses listed in `PASS` compile (and their `main` runs).
//!
//! Every `tests/ui/*.rs` not in `PASS` must fail to compile with its `.stderr` snapshot.

/// The `tests/ui` cases that must compile.
const PASS: &[&str] = &["cache_literal_and_expr.rs"];

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/ui is readable")
        .map(|e| {
            e.expect("tests/ui entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".rs"))
        .collect();
    cases.sort();
    for p in PASS {
        assert!(cases.iter().any(|c| c == p), "tests/ui/{p} is missing");
        t.pass(format!("tests/ui/{p}"));
    }
    for c in cases.iter().filter(|c| !PASS.contains(&c.as_str())) {
        t.compile_fail(format!("tests/ui/{c}"));
    }
}

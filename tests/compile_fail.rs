//! `#[cached]` at compile time (trybuild): every invalid use is a clear compile error, and the
//! valid uses listed in `PASS` compile (and their `main` runs).
//!
//! Every `tests/ui/*.rs` not in `PASS` must fail to compile with its `.stderr` snapshot.
//!
//! The snapshots are taken with the feature `file` alone: rustc's notes list the types that
//! implement `Serialize`, and that list grows with every backend crate in the build. So this
//! test is compiled out when another backend feature is on (as in `cargo test --workspace
//! --all-features`), and `scripts/test.sh` runs it on its own:
//! `cargo test -p steadycache --features file --test compile_fail`.
#![cfg(not(any(
    feature = "sqlite",
    feature = "redis",
    feature = "mongo",
    feature = "s3"
)))]

/// The `tests/ui` cases that must compile.
const PASS: &[&str] = &[
    "cache_literal_and_expr.rs",
    "invalidates_ok.rs",
    "serde_free_in_memory.rs",
];

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

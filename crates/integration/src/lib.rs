//! steadycache's integration tests (in `tests/`) and the Redis examples (in `examples/`), kept
//! out of the published packages: see the workspace's `README.md` and `ARCHITECTURE.md`.
#![deny(missing_docs)]

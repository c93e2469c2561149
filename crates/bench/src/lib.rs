//! steadycache's benchmarks (in `benches/`), side by side with the peers a user would pick
//! instead; see the README's "Speed" section for how to run them and what they measured.
#![deny(missing_docs)]

//! Criterion benchmarks of scorelab live in `benches/`; this library is empty.
//!
//! Run them on the shared development build (dependencies at opt-level 3):
//! `cargo bench -p scorelab-benches --profile dev`.

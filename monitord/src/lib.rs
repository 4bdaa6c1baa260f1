//! monitord as a library: `main.rs` is a thin shell over [`serve`], so socket activation,
//! tests on port 0 and benchmarks take one path.

pub mod alerts;

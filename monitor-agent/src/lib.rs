//! The agent's one library module, [`response`]: the parser of monitord's HTTP answers, kept
//! apart from the binary so the fuzz targets (`fuzz/`) can call it. Everything else of the
//! agent is its binary (`main.rs`).

pub mod response;

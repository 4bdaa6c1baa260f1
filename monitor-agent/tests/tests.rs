//! Integration tests of the agent binary: real runs of `monitor-agent` (the debug build cargo
//! makes for these tests, and the static build when `scripts/build-agent` has made it),
//! compared with what `free` and `df` say about the same host.
//!
//! Not here: end-to-end runs against monitord (monitord/tests), or the agent's internals
//! (unit tests in its modules: spool, disks, send, collect).

mod detach;
mod print;
mod settings;
mod static_build;
mod util;

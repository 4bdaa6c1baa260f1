//! The contract shared by monitord, monitor-deploy and monitor-agent.
//!
//! - [`config`]: config.xml, read into a model and validated, every problem with its line.
//! - [`envelope`]: per-client keys and the sealed wire format.
//! - [`sample`]: what an agent sends, with range checks.
//! - [`settings`]: the JSON the agent receives on stdin.
//! - [`agent`]: the agent's exit codes and state-directory file names, for those who run it.
//! - [`masterkey`]: the one file monitord and monitor-deploy share.
//! - [`time`]: unix time to a UTC date and clock, for what the programs print.
//!
//! No I/O frameworks live here (no actix, diesel, tokio or ssh), so the static agent stays
//! small and the contract fits on a screen.

pub mod agent;
pub mod config;
pub mod envelope;
pub mod masterkey;
pub mod sample;
pub mod settings;
pub mod time;

pub use envelope::{ClientKeys, Envelope};
pub use masterkey::MasterKey;
pub use sample::Sample;
pub use settings::AgentSettings;

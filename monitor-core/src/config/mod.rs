//! config.xml: the model every program reads, and [`load`], which builds it.
//!
//! Reading is two stages: `parse.rs` walks a position-aware XML tree (roxmltree; DTDs and
//! entity definitions refused, never expanded) into raw elements, and `validate.rs` (with
//! `client.rs` for clients, `<defaults>` and alerts, `values.rs` for single values) checks the
//! whole file and reports **every** problem at once, each as
//! `file:line: element: what is wrong, what is expected`. Only a file without errors becomes a
//! [`Config`]; warnings (no clients, a client without mail, an unreadable key file, a
//! world-readable file holding passwords) come back beside it, each saying whom it concerns
//! ([`Audience`]): a client's SSH key or password file that exists but this user cannot read
//! matters to monitor-deploy, which reads it, not to monitord (the service user never may).
//!
//! `<defaults>` is applied here, so the rest of the code sees each client complete.

use std::path::Path;

mod checker;
mod client;
mod duration;
mod history;
mod model;
mod parse;
mod validate;
mod values;
mod web;

pub use duration::{format_duration, parse_duration};
pub use history::default_history;
pub use model::*;
pub use values::is_client_name;
pub use web::is_loopback;

/// Reads and validates config.xml at `path`.
pub fn load(path: &Path) -> Result<Loaded, Invalid> {
    match std::fs::read(path) {
        Ok(bytes) => parse_bytes(&bytes, path),
        Err(e) => Err(Invalid {
            errors: vec![Diagnostic {
                severity: Severity::Error,
                audience: Audience::Everyone,
                file: path.display().to_string(),
                line: 0,
                element: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
            warnings: Vec::new(),
        }),
    }
}

/// Validates config.xml content; `path` names the file in messages and anchors relative paths.
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Loaded, Invalid> {
    let raw = parse::parse(bytes, path)?;
    validate::validate(raw, path)
}

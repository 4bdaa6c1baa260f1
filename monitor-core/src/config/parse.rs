//! Stage one: XML text to raw elements with their lines. (Being written; see issue 2.)

use std::path::Path;

use super::{Diagnostic, Invalid, Severity};

pub(super) struct RawConfig;

pub(super) fn parse(_bytes: &[u8], path: &Path) -> Result<RawConfig, Invalid> {
    Err(Invalid {
        errors: vec![Diagnostic {
            severity: Severity::Error,
            file: path.display().to_string(),
            line: 0,
            element: String::new(),
            message: "config.xml reading is not implemented yet".into(),
        }],
        warnings: Vec::new(),
    })
}

//! Stage two: raw elements to a checked [`Config`]. (Being written; see issue 2.)

use std::path::Path;

use super::parse::RawConfig;
use super::{Invalid, Loaded};

pub(super) fn validate(_raw: RawConfig, _path: &Path) -> Result<Loaded, Invalid> {
    unreachable!("parse never yields a RawConfig yet")
}

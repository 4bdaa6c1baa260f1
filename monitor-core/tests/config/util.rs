//! Helpers for the config.xml tests: the data folder, private temporary copies (so file
//! modes and relative paths are the test's, not the checkout's), and generated files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use monitor_core::config::{self, Invalid, Loaded};

pub fn data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(relative)
}

/// A fresh empty directory under cargo's per-target temporary folder.
pub fn temp_dir(label: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("config-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `content` to `config.xml` in a fresh directory with the given mode.
pub fn write_config(label: &str, content: &[u8], mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = temp_dir(label).join("config.xml");
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Loads a copy of `tests/data/<relative>` placed alone in a fresh directory (mode 0600).
pub fn load_copy(relative: &str) -> (PathBuf, Result<Loaded, Invalid>) {
    let content = std::fs::read(data(relative)).unwrap();
    let path = write_config(relative.replace('/', "-").as_str(), &content, 0o600);
    let loaded = config::load(&path);
    (path, loaded)
}

pub fn expect_ok(result: Result<Loaded, Invalid>) -> Loaded {
    match result {
        Ok(loaded) => loaded,
        Err(invalid) => panic!("expected a valid config, got:\n{invalid}"),
    }
}

//! `ssh-keygen` for the throwaway keys: a server's host key, a test user's key, a foreign host's
//! key. A module of its own because the server (`mod.rs`) and the accounts (`users`) both make
//! keys, and neither should import the other for it.

use std::path::Path;
use std::process::{Command, Stdio};

/// A new ed25519 key pair without a passphrase: `path` and `path.pub`.
pub(super) fn keygen(path: &Path, comment: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

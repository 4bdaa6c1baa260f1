//! The 32-byte master key file that monitord and monitor-deploy share, and nothing else.
//!
//! Loading refuses a file of the wrong size, one that other users can access (any bit of
//! mode 007) and one its group may change (group write or execute): the group may read,
//! which is how the packaged `root:monitord 0640` key works.
//! Every error names the file and says what to do. Creating a key never overwrites one.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// The master key. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; MASTER_KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key {path} does not exist; create it with `monitord gen-key {path}`")]
    Missing { path: PathBuf },
    #[error("cannot read master key {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error(
        "master key {path} is {len} bytes, expected {MASTER_KEY_LEN}; create a new one with `monitord gen-key`"
    )]
    WrongLength { path: PathBuf, len: u64 },
    #[error(
        "master key {path} has mode {mode:04o}, so other users can access it; run `chmod o-rwx {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "master key {path} has mode {mode:04o}, so its group can change it; run `chmod g-wx {path}` (the group may only read it)"
    )]
    GroupWritable { path: PathBuf, mode: u32 },
    #[error(
        "master key {path} already exists; refusing to overwrite it (remove it first if you really mean to replace every client's keys)"
    )]
    Exists { path: PathBuf },
    #[error("cannot create master key {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> MasterKey {
        MasterKey(bytes)
    }

    pub fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }

    /// Reads and checks the key file.
    pub fn load(path: &Path) -> Result<MasterKey, KeyError> {
        let path_buf = path.to_path_buf();
        let meta = fs::metadata(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => KeyError::Missing {
                path: path_buf.clone(),
            },
            _ => KeyError::Unreadable {
                path: path_buf.clone(),
                source,
            },
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(KeyError::TooOpen {
                path: path_buf,
                mode,
            });
        }
        // The group may read (root:monitord 0640), never write or execute.
        if mode & 0o030 != 0 {
            return Err(KeyError::GroupWritable {
                path: path_buf,
                mode,
            });
        }
        if meta.len() != MASTER_KEY_LEN as u64 {
            return Err(KeyError::WrongLength {
                path: path_buf,
                len: meta.len(),
            });
        }
        let bytes = fs::read(path).map_err(|source| KeyError::Unreadable {
            path: path_buf.clone(),
            source,
        })?;
        let key: [u8; MASTER_KEY_LEN] =
            bytes
                .try_into()
                .map_err(|b: Vec<u8>| KeyError::WrongLength {
                    path: path_buf,
                    len: b.len() as u64,
                })?;
        Ok(MasterKey(key))
    }

    /// Creates a new random key at `path` with the given mode, never overwriting a file.
    pub fn generate(path: &Path, mode: u32) -> Result<MasterKey, KeyError> {
        let mut key = [0u8; MASTER_KEY_LEN];
        getrandom::fill(&mut key).expect("the operating system's random source works");
        let create_err = |source: io::Error| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_path_buf(),
            },
            _ => KeyError::Create {
                path: path.to_path_buf(),
                source,
            },
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(create_err)?;
        file.write_all(&key)
            .and_then(|()| file.sync_all())
            .map_err(create_err)?;
        Ok(MasterKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("monitor-core-key-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("master.key")
    }

    #[test]
    fn generate_then_load() {
        let path = temp_path("gen");
        let made = MasterKey::generate(&path, 0o600).unwrap();
        assert_eq!(MasterKey::load(&path).unwrap().bytes(), made.bytes());
        assert!(matches!(
            MasterKey::generate(&path, 0o600),
            Err(KeyError::Exists { .. })
        ));
    }

    #[test]
    fn refuses_open_modes_and_wrong_sizes() {
        let path = temp_path("modes");
        MasterKey::generate(&path, 0o600).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod o-rwx"), "{err}");
        for mode in [0o660, 0o620, 0o650] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = MasterKey::load(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::GroupWritable { .. })
                    && err.to_string().contains("chmod g-wx"),
                "{mode:o}: {err}"
            );
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        MasterKey::load(&path).expect("group-readable is allowed");
        fs::write(&path, b"short").unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(KeyError::WrongLength { len: 5, .. })
        ));
        fs::remove_file(&path).unwrap();
        let err = MasterKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("monitord gen-key"), "{err}");
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(
            format!("{:?}", MasterKey::from_bytes([1; 32])),
            "MasterKey(***)"
        );
    }
}

//! Why the agent could not be stored or run on a host, in words: after a failed upload or an
//! agent the shell could not execute, `remote/diagnose.sh` reports facts about the agent's
//! directory (the errors mkdir and a test file got, the free space, the mount and its
//! options), and this module turns them into the cause and what to do: a read-only file
//! system, a full one, a directory the user may not write, a `noexec` mount. SFTP itself
//! cannot say: its protocol (v3) reports all of these as "Failure" or "Permission denied".
//! Not here: running the script (the callers, [`crate::upload`] and [`crate::start`]).

use std::time::Duration;

use crate::remote;
use crate::ssh::{self, Connection};

/// What `diagnose.sh` printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The deepest part of the directory that exists.
    pub exists: String,
    pub mkdir_error: Option<String>,
    pub write_error: Option<String>,
    pub avail_kib: Option<u64>,
    /// The mount point holding `exists`, and its options (`rw,nosuid,noexec,…`).
    pub mount: String,
    pub mount_options: String,
}

impl Facts {
    pub fn parse(stdout: &str) -> Facts {
        let mut facts = Facts::default();
        for line in stdout.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.to_owned();
            match key {
                "exists" => facts.exists = value,
                "mkdir_error" => facts.mkdir_error = Some(value),
                "write_error" => facts.write_error = Some(value),
                "avail_kib" => facts.avail_kib = value.trim().parse().ok(),
                "mount" => facts.mount = value,
                "mount_options" => facts.mount_options = value,
                _ => {}
            }
        }
        facts
    }

    /// Runs `diagnose.sh` for agent `version`'s directory over `conn`; `None` when it cannot
    /// run (the connection is gone, say): the caller keeps its own message then.
    pub async fn gather(
        conn: &Connection,
        version: &str,
        write_test: bool,
        timeout: Duration,
    ) -> Option<Facts> {
        let out = ssh::run_script(
            &conn.session,
            &remote::diagnose(version, write_test),
            None,
            timeout,
        )
        .await
        .ok()?;
        (out.code == Some(0)).then(|| Facts::parse(&out.stdout))
    }

    fn has_option(&self, option: &str) -> bool {
        self.mount_options.split(',').any(|o| o == option)
    }

    fn errors(&self) -> impl Iterator<Item = &str> {
        self.mkdir_error
            .iter()
            .chain(&self.write_error)
            .map(String::as_str)
    }

    fn error_says(&self, text: &str) -> bool {
        self.errors().any(|e| e.contains(text))
    }

    /// Why `need_kib` of agent could not be written to `dir` (`where_` names it for the user,
    /// e.g. `~/.cache/monitor-agent/0.1.0`), with what to do; `None` when the facts do not
    /// show a cause.
    pub fn write_failure(&self, where_: &str, user: &str, need_kib: u64) -> Option<String> {
        let mount = &self.mount;
        if self.has_option("ro") || self.error_says("Read-only file system") {
            return Some(format!(
                "{where_} is on a read-only file system on the host ({mount} is mounted read-only), so the agent cannot be stored there; remount {mount} read-write, or give user `{user}` a home on a writable file system"
            ));
        }
        let short = self.avail_kib.filter(|&avail| avail < need_kib);
        if short.is_some() || self.error_says("No space left on device") {
            return Some(format!(
                "no space left on the host's file system at {mount} ({} KiB free, the agent needs {need_kib} KiB in {where_}); free some space there (`df -h {mount}`), then deploy again",
                self.avail_kib.map_or("?".to_owned(), |a| a.to_string())
            ));
        }
        if self.error_says("Disk quota exceeded") {
            return Some(format!(
                "user `{user}` is over its disk quota on the host's {mount} (the agent needs {need_kib} KiB in {where_}); check `quota -s {user}` there"
            ));
        }
        if self.error_says("Permission denied") || self.error_says("Operation not permitted") {
            let exists = &self.exists;
            return Some(format!(
                "user `{user}` may not write {exists} on the host (permission denied), so {where_} cannot be made; check its owner and mode (`ls -ld {exists}`) and the immutable flag (`lsattr -d {exists}`)"
            ));
        }
        None
    }

    /// Why the agent in a directory on this mount could not be executed, when the facts show
    /// it: a `noexec` mount.
    pub fn exec_failure(&self, where_: &str, user: &str) -> Option<String> {
        let mount = &self.mount;
        self.has_option("noexec").then(|| {
            format!(
                "the agent was uploaded but cannot run: {mount} is mounted noexec on the host, and the agent lives in {where_} there; remount {mount} with exec (`mount -o remount,exec {mount}`, and drop noexec from its /etc/fstab line), or give user `{user}` a home on a file system that allows programs"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHERE: &str = "~/.cache/monitor-agent/0.1.0";

    fn facts(text: &str) -> Facts {
        Facts::parse(text)
    }

    #[test]
    fn facts_are_parsed() {
        let f = facts(
            "mkdir_error=mkdir: cannot create directory '/h/.cache': Read-only file system\n\
             exists=/h\navail_kib=1024\nmount=/h s\nmount_options=ro,relatime\n",
        );
        assert_eq!(f.exists, "/h");
        assert_eq!(f.avail_kib, Some(1024));
        assert_eq!(f.mount, "/h s");
        assert!(f.has_option("ro") && !f.has_option("relatime,"));
        assert!(f.write_error.is_none());
    }

    #[test]
    fn each_cause_gets_its_words() {
        let read_only = facts("exists=/h\nmount=/h\nmount_options=ro,nosuid\navail_kib=9999\n");
        let msg = read_only.write_failure(WHERE, "u", 1400).unwrap();
        assert!(msg.contains("read-only file system") && msg.contains("remount /h read-write"));

        let full = facts("exists=/h/.cache\nmount=/h\nmount_options=rw\navail_kib=0\n");
        let msg = full.write_failure(WHERE, "u", 1400).unwrap();
        assert!(
            msg.contains("no space left") && msg.contains("0 KiB free"),
            "{msg}"
        );

        let denied = facts(
            "write_error=sh: 1: cannot create /h/x: Permission denied\nexists=/h\nmount=/\n\
             mount_options=rw\navail_kib=99999\n",
        );
        let msg = denied.write_failure(WHERE, "u", 1400).unwrap();
        assert!(
            msg.contains("may not write /h") && msg.contains("lsattr -d /h"),
            "{msg}"
        );

        let fine = facts("exists=/h\nmount=/\nmount_options=rw\navail_kib=99999\n");
        assert_eq!(fine.write_failure(WHERE, "u", 1400), None);

        let noexec = facts("exists=/h\nmount=/h\nmount_options=rw,nosuid,noexec\n");
        let msg = noexec.exec_failure(WHERE, "u").unwrap();
        assert!(
            msg.contains("mounted noexec") && msg.contains("remount,exec"),
            "{msg}"
        );
        assert_eq!(fine.exec_failure(WHERE, "u"), None);
    }
}

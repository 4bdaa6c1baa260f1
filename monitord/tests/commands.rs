//! The operator commands against a real monitord's database: what `monitord samples` says
//! when there is nothing to show, and that commands run as root next to a daemon of another
//! user leave no file that user cannot open.

use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Output};

use testkit::monitord::{Monitord, now_ms, sample};
use testkit::util;

use crate::support::{bin, expect_status};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn samples_with_nothing_to_show_is_empty_not_an_error() {
    let m = Monitord::start(bin(), &["quiet", "old"]);
    // `old` sent one sample, collected two hours ago (an agent draining its spool).
    let two_hours_ago = now_ms() - 2 * 3600 * 1000;
    let r = m
        .put_sample("old", &sample("spool", 0, two_hours_ago))
        .unwrap();
    expect_status(&r, 200, "a sample from two hours ago", &[]);

    // `quiet` is configured but never sent; `old` has nothing within the last hour.
    for name in ["quiet", "old"] {
        let out = m.command(&["samples", name, "--since", "1h", "--json"]);
        assert!(out.status.success(), "{name} --json: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "[]", "{name} --json");
        let out = m.command(&["samples", name, "--since", "1h"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("no samples from {name} in the last 1h")),
            "{name}: {}",
            stdout(&out)
        );
    }
    let out = m.command(&["samples", "old", "--since", "3h", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items.len(), 1, "the old sample within 3h: {}", stdout(&out));

    // A name nobody knows is an error that names it, with or without --json.
    for json in [true, false] {
        let mut args = vec!["samples", "nosuch", "--since", "1h"];
        if json {
            args.push("--json");
        }
        let out = m.command(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("\"nosuch\""),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
}

/// uid and gid of `nobody:nogroup` on Debian, standing in for the packaged `monitord` user.
const NOBODY: u32 = 65_534;

fn owners(dir: &std::path::Path) -> Vec<(String, u32, u32)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                meta.uid(),
                meta.gid(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn commands_run_as_root_leave_no_file_monitord_cannot_open() {
    if !util::runnable_as_root("running the commands as root next to another user's database") {
        return;
    }
    let mut m = Monitord::start(bin(), &["web1"]);
    let r = m.put_sample("web1", &sample("root", 0, now_ms())).unwrap();
    expect_status(&r, 200, "a sample", &[]);
    assert!(m.terminate().success(), "{}", m.stderr());
    // As the package has it: the state directory and the database belong to the daemon's user.
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .arg(m.dir())
        .status()
        .unwrap();
    assert!(chown.success());

    for args in [
        &["clients"][..],
        &["samples", "web1", "--since", "1h", "--json"],
        &["stats", "--json"],
        &["alerts"],
        &["compact"],
    ] {
        m.command_ok(args);
        for (name, uid, gid) in owners(m.dir()) {
            assert_eq!(
                (uid, gid),
                (NOBODY, NOBODY),
                "after `monitord {args:?}` as root, {name} belongs to {uid}:{gid}"
            );
        }
    }
    // The daemon's user can still write the database (its -wal and -shm included).
    let write = Command::new("setpriv")
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
        ])
        .arg("--clear-groups")
        .arg("sqlite3")
        .arg(m.db_path())
        .arg("INSERT INTO clients (name) VALUES ('written-by-nobody');")
        .output()
        .unwrap();
    assert!(
        write.status.success(),
        "nobody cannot write the database: {}",
        String::from_utf8_lossy(&write.stderr)
    );

    // No command creates a database that is not there (it would be root's).
    std::fs::remove_file(m.db_path()).unwrap();
    for args in [&["compact"][..], &["stats"], &["clients"]] {
        let out = m.command(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} without a database");
        assert!(
            stderr(&out).contains("does not exist yet"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !m.db_path().exists(),
            "`monitord {args:?}` created the database"
        );
    }
}

#[test]
fn every_command_prints_config_warnings_on_stderr() {
    // The test config's clients have no mail: check-config warns about it, and so must
    // every command that reads config.xml, or the operator never sees it outside the daemon.
    let m = Monitord::start(bin(), &["web1"]);
    let r = m.put_sample("web1", &sample("warn", 1, now_ms())).unwrap();
    expect_status(&r, 200, "a sample", &[]);
    let check = m.command(&["check-config"]);
    let warning = stderr(&check);
    assert!(
        warning.contains("mailed to nobody"),
        "check-config: {warning}"
    );
    for args in [
        &["clients"][..],
        &["samples", "web1", "--since", "1h"],
        &["stats"],
        &["alerts"],
    ] {
        let out = m.command(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("mailed to nobody"),
            "{args:?} dropped the config warning; stderr: {}",
            stderr(&out)
        );
    }
}

#[test]
fn samples_tell_two_agent_instances_apart() {
    // monitor-deploy's first-sample run and the continuous agent are two processes, each
    // counting SEQ from 1: the listing says which is which, and why.
    let m = Monitord::start(bin(), &["web1"]);
    let now = now_ms();
    for (instance, ts) in [
        ("firstrun-0001", now - 20_000),
        ("continuous-02", now - 10_000),
    ] {
        let r = m.put_sample("web1", &sample(instance, 1, ts)).unwrap();
        expect_status(&r, 200, instance, &[]);
    }
    let listing = m.command_ok(&["samples", "web1", "--since", "1h"]);
    println!("{listing}");
    assert!(listing.contains("INSTANCE"), "{listing}");
    assert!(
        listing.contains("firstrun") && listing.contains("continuo"),
        "{listing}"
    );
    assert!(listing.contains("2 agent instances"), "{listing}");
}

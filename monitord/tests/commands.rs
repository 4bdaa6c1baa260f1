//! The operator commands against a real monitord's database: what `monitord samples` says
//! when there is nothing to show.

use std::process::Output;

use testkit::monitord::{Monitord, now_ms, sample};

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

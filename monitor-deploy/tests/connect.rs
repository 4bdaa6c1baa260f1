//! Every way reaching a host can fail, each reported with host, step and advice, and none of
//! them holding up the run: unknown name, refused, silent peer, changed and unknown host keys,
//! wrong password, refused key. No agent is needed: these stop before the upload.

use std::fs;
use std::time::Duration;

use testkit::sshd::{self, SilentPeer, Sshd, SshdOptions};
use testkit::util;

use crate::support::{self, Deployer};

#[test]
fn unknown_host_name_fails_at_resolve() {
    let d = Deployer::new();
    d.write_config(
        None,
        &[r#"<client name="ghost" ip="ghost.invalid" username="nobody"/>"#.into()],
    );
    let run = d.run(&["--all"]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("ghost");
    assert!(row.contains("FAILED") && row.contains("resolve"), "{run}");
    assert!(
        row.contains("ghost.invalid") && row.contains("DNS"),
        "{run}"
    );
}

#[test]
fn refused_connection_fails_at_connect() {
    let d = Deployer::new();
    let port = util::free_port();
    d.write_config(
        None,
        &[format!(
            r#"<client name="closed" ip="127.0.0.1" port="{port}" username="nobody"/>"#
        )],
    );
    let run = d.run(&["closed"]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("closed");
    assert!(row.contains("connect") && row.contains("refused"), "{run}");
    assert!(row.contains(&format!("port {port}")), "{run}");
}

#[test]
fn silent_peer_times_out_at_connect() {
    let peer = SilentPeer::start();
    let d = Deployer::new();
    d.write_config(
        None,
        &[format!(
            r#"<client name="mute" ip="127.0.0.1" port="{}" username="nobody"/>"#,
            peer.addr().port()
        )],
    );
    let run = d.run(&["--all", "--timeout", "2s"]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("mute");
    assert!(
        row.contains("connect") && row.contains("did not answer"),
        "{run}"
    );
    assert!(run.elapsed < Duration::from_secs(15), "{run}");
}

#[test]
fn changed_host_key_is_refused_with_both_fingerprints() {
    if !support::have_sshd() {
        return;
    }
    let server = Sshd::start(SshdOptions::default());
    let Some(user) = support::login(&server, None) else {
        return;
    };
    let d = Deployer::new();
    fs::write(
        d.known_hosts(),
        sshd::foreign_known_hosts_line(server.port()) + "\n",
    )
    .unwrap();
    d.write_config(None, &[support::key_client("moved", &server, &user, "10s")]);
    let run = d.run(&["moved"]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("moved");
    assert!(row.contains("host key") && row.contains("CHANGED"), "{run}");
    assert_eq!(row.matches("SHA256:").count(), 2, "{run}");
    assert!(row.contains("ssh-keygen -R"), "{run}");
    // The recorded key is left alone: trusting the new one is the admin's decision.
    assert_eq!(
        fs::read_to_string(d.known_hosts()).unwrap().lines().count(),
        1
    );
}

#[test]
fn strict_host_keys_refuses_an_unknown_host() {
    if !support::have_sshd() {
        return;
    }
    let server = Sshd::start(SshdOptions::default());
    let Some(user) = support::login(&server, None) else {
        return;
    };
    let d = Deployer::new();
    d.write_config(None, &[support::key_client("new", &server, &user, "10s")]);
    let run = d.run(&["new", "--strict-host-keys"]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("new");
    assert!(
        row.contains("host key") && row.contains("--strict-host-keys"),
        "{run}"
    );
    assert!(
        !fs::read_to_string(d.known_hosts())
            .unwrap_or_default()
            .contains("ssh-ed25519")
    );
}

#[test]
fn wrong_password_fails_at_auth() {
    if !support::have_sshd() {
        return;
    }
    let server = Sshd::start(SshdOptions::default());
    let Some(user) = support::login(&server, Some("right-horse-battery")) else {
        return;
    };
    let d = Deployer::new();
    d.write_config(
        None,
        &[support::password_client(
            "pw",
            &server,
            &user.name,
            "wrong-staple",
        )],
    );
    let run = d.run(&["pw"]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("pw");
    assert!(
        row.contains("auth") && row.contains("wrong password"),
        "{run}"
    );
    assert!(!run.stdout.contains("wrong-staple") && !run.stderr.contains("wrong-staple"));
}

#[test]
fn unauthorized_key_fails_at_auth() {
    if !support::have_sshd() || !util::runnable_as_root("a test account") {
        return;
    }
    let server = Sshd::start(SshdOptions::default());
    // An account whose key the server was never told about.
    let user = sshd::TestUser::create(None);
    let d = Deployer::new();
    d.write_config(None, &[support::key_client("nokey", &server, &user, "10s")]);
    let run = d.run(&["nokey"]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("nokey");
    assert!(
        row.contains("auth") && row.contains("authorized_keys"),
        "{run}"
    );
}

#[test]
fn dry_run_connects_nowhere() {
    let d = Deployer::new();
    let port = util::free_port();
    d.write_config(
        None,
        &[
            r#"<client name="ghost" ip="ghost.invalid" username="nobody"/>"#.into(),
            format!(
                r#"<client name="closed" ip="127.0.0.1" port="{port}" username="u" password="pw"/>"#
            ),
        ],
    );
    let run = d.run(&["--all", "--dry-run"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("ghost: nobody@ghost.invalid port 22"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains(&format!("closed: u@127.0.0.1 port {port}, password,")),
        "{run}"
    );
    assert!(
        !d.known_hosts().exists(),
        "a dry run touches no host: {run}"
    );
}

#[test]
fn unknown_name_is_a_usage_error() {
    let d = Deployer::new();
    d.write_config(
        None,
        &[r#"<client name="web1" ip="ghost.invalid" username="nobody"/>"#.into()],
    );
    let run = d.run(&["web2"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("no client named web2") && run.stderr.contains("web1"),
        "{run}"
    );
}

/// README's `monitor-deploy --dry-run` (and --status, --stop) without a target means every
/// client; with no action either, the clients must be named.
#[test]
fn dry_run_without_a_target_shows_every_client_and_a_bare_run_is_a_usage_error() {
    let d = Deployer::new();
    d.write_config(
        None,
        &[
            r#"<client name="a" ip="a.invalid" username="nobody"/>"#.into(),
            r#"<client name="b" ip="b.invalid" username="nobody"/>"#.into(),
        ],
    );
    let run = d.run(&["--dry-run"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("a: nobody@a.invalid") && run.stdout.contains("b: nobody@b.invalid"),
        "{run}"
    );
    let run = d.run(&[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("NAME…, --all, or --failed") && run.stdout.is_empty(),
        "{run}"
    );
}

#[test]
fn all_without_clients_says_the_file_has_none() {
    let d = Deployer::new();
    d.write_config(None, &[]);
    let run = d.run(&["--all"]);
    assert_eq!(run.code, 0, "{run}");
    let expected = format!("there are no clients in {}", d.config().display());
    assert!(run.stdout.contains(&expected), "{run}");
    assert!(!run.stdout.contains("previous run"), "{run}");
}

/// `--known-hosts FILE` moves the known_hosts file only: the failed list is written to the
/// state directory, never next to FILE (which may be ~/.ssh/known_hosts).
#[test]
fn failed_hosts_are_kept_in_the_state_directory_not_next_to_known_hosts() {
    if !support::have_sshd() || !util::runnable_as_root("a test account") {
        return;
    }
    let server = Sshd::start(SshdOptions::default());
    let user = sshd::TestUser::create(None); // its key is not authorized: fails at auth
    let d = Deployer::new();
    d.write_config(None, &[support::key_client("nokey", &server, &user, "10s")]);
    let run = d.run(&["nokey"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.row("nokey").contains("auth"), "{run}");
    assert_eq!(
        fs::read_to_string(d.state_dir().join("failed")).unwrap_or_default(),
        "nokey\n",
        "{run}"
    );
    let beside = d.known_hosts().with_file_name("failed");
    assert!(!beside.exists(), "{} written: {run}", beside.display());
    let rerun = d.run(&["--failed"]);
    assert_eq!(rerun.code, 1, "{rerun}");
    assert!(rerun.row("nokey").contains("FAILED"), "{rerun}");
}

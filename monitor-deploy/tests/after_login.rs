//! Deploys that log in and then fail, each with its step and what to check: no SFTP
//! subsystem (upload), monitord unreachable from the host, and monitord refusing the first
//! sample (first sample: 401 keys, 404 unknown client, 422 clock).

use testkit::sshd::{Sshd, SshdOptions};
use testkit::util;

use crate::support::{self, Deployer, agent_arg, setup, setup_without_monitord};

#[test]
fn no_sftp_subsystem_fails_at_upload() {
    let Some((d, agent)) = setup_without_monitord() else {
        return;
    };
    let server = Sshd::start(SshdOptions {
        sftp: false,
        ..SshdOptions::default()
    });
    let user = support::login(&server, None).expect("root checked");
    d.write_config(
        Some("http://127.0.0.1:9"),
        &[support::key_client("nosftp", &server, &user, "10s")],
    );
    let run = d.run(&["nosftp", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("nosftp");
    assert!(
        row.contains("upload") && row.contains("SFTP subsystem"),
        "{run}"
    );
}

#[test]
fn unreachable_monitord_fails_at_first_sample() {
    let Some((d, agent)) = setup_without_monitord() else {
        return;
    };
    let server = Sshd::start(SshdOptions::default());
    let user = support::login(&server, None).expect("root checked");
    let closed = format!("http://127.0.0.1:{}", util::free_port());
    d.write_config(
        Some(&closed),
        &[support::key_client("lost", &server, &user, "10s")],
    );
    let run = d.run(&["lost", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("lost");
    assert!(
        row.contains("first sample") && row.contains(&closed),
        "{run}"
    );
}

/// monitord reached and refused the first sample: the advice fits its status (404: the client
/// is not in monitord's config.xml; 401: the master keys differ), not the network.
#[test]
fn a_refused_first_sample_says_what_its_status_means() {
    let Some((monitord, server, _, agent)) = setup(&["known"]) else {
        return;
    };
    let users = [
        support::login(&server, None).expect("root checked"),
        support::login(&server, None).expect("root checked"),
    ];
    // A master key of the deployer's own: monitord finds the name `known` but not its key.
    let d = Deployer::new();
    d.write_config(
        Some(&monitord.url()),
        &[
            support::key_client("known", &server, &users[0], "10s"),
            support::key_client("stranger", &server, &users[1], "10s"),
        ],
    );
    let run = d.run(&["--all", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 1, "{run}");
    for (name, status, advice) in [
        ("known", "HTTP 401", "same master key"),
        (
            "stranger",
            "HTTP 404",
            "monitord does not know a client named `stranger`: add it to config.xml on the monitord host",
        ),
    ] {
        let row = run.row(name);
        assert!(
            row.contains("first sample") && row.contains(status) && row.contains(advice),
            "{name}: {run}"
        );
        assert!(!row.contains("firewall"), "{name}: {run}");
    }
}

/// A 422 for the sample's time: the advice is the host's clock. monitord's own clock is this
/// test's, so the answer monitord gives a client ten minutes ahead comes from a stand-in.
#[test]
fn a_first_sample_refused_for_its_time_points_at_the_clock() {
    let Some((d, agent)) = setup_without_monitord() else {
        return;
    };
    let server = Sshd::start(SshdOptions::default());
    let user = support::login(&server, None).expect("root checked");
    let skewed = support::FixedAnswer::start(
        "422 Unprocessable Entity",
        r#"{"error":"ts is 1200 s ahead of the server clock (at most 600 s allowed): check the client's clock"}"#,
    );
    d.write_config(
        Some(&skewed.url()),
        &[support::key_client("ahead", &server, &user, "10s")],
    );
    let run = d.run(&["ahead", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("ahead");
    assert!(
        row.contains("first sample") && row.contains("HTTP 422") && row.contains("timedatectl"),
        "{run}"
    );
    assert!(!row.contains("firewall"), "{run}");
}

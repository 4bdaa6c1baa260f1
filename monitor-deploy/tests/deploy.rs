//! Deploys that reach the host, with the real static agent sending to a real monitord: key and
//! password logins, re-deploy without upload, replacing the running agent, `--status`,
//! `--stop`, `--failed`, a fleet with broken hosts. The failures after login are in
//! `after_login`.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use testkit::monitord::Monitord;
use testkit::sshd::{SilentPeer, Sshd, SshdOptions, TestUser};
use testkit::util;

use crate::support::{self, Deployer, agent_arg, setup};

#[test]
fn key_deploy_then_redeploy_status_and_stop() {
    let Some((mut monitord, server, d, agent)) = setup(&["web"]) else {
        return;
    };
    let user = support::login(&server, None).expect("root checked");
    d.write_config(
        Some(&monitord.url()),
        &[support::key_client("web", &server, &user, "2s")],
    );
    let agent = agent_arg(&agent);

    let run = d.run(&["--all", "--agent", &agent]);
    assert_eq!(run.code, 0, "{run}");
    let row = run.row("web");
    assert!(
        row.contains("uploaded agent") && row.contains("first sample sent"),
        "{run}"
    );
    assert!(row.contains("trusted on first use"), "{run}");
    let known = fs::read_to_string(d.known_hosts()).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", server.port())),
        "{known}"
    );
    let first = user.processes("monitor-agent");
    assert_eq!(first.len(), 1, "one agent runs: {first:?}");
    util::wait_until(
        Duration::from_secs(30),
        "samples from the deployed agent",
        || monitord.samples("web").len() >= 2,
    );
    let binary = user
        .home
        .join(".cache/monitor-agent")
        .read_dir()
        .unwrap()
        .flatten()
        .map(|e| e.path().join("monitor-agent"))
        .find(|p| p.is_file())
        .expect("agent uploaded under ~/.cache/monitor-agent/<ver>/");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        fs::metadata(&binary).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let uploaded = fs::metadata(&binary).unwrap().modified().unwrap();

    // Same agent, same settings: nothing uploaded, nothing restarted.
    let run = d.run(&["web", "--agent", &agent]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("web").contains("already running"), "{run}");
    assert_eq!(fs::metadata(&binary).unwrap().modified().unwrap(), uploaded);
    assert_eq!(user.processes("monitor-agent"), first, "{run}");

    // Changed settings (the interval): nothing uploaded, the agent replaced by exactly one.
    d.write_config(
        Some(&monitord.url()),
        &[support::key_client("web", &server, &user, "3s")],
    );
    let run = d.run(&["web", "--agent", &agent]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("web").contains("already there"), "{run}");
    assert!(run.row("web").contains("first sample sent"), "{run}");
    assert_eq!(fs::metadata(&binary).unwrap().modified().unwrap(), uploaded);
    let second = user.processes("monitor-agent");
    assert_eq!(second.len(), 1, "still one agent: {second:?}");
    assert_ne!(first, second, "the agent was restarted");

    let run = d.run(&["--status", "--all"]);
    assert_eq!(run.code, 0, "{run}");
    let row = run.row("web");
    assert!(row.contains(&format!("pid {}", second[0])), "{run}");
    // The agent delivers every 3 s, so its last send is a few seconds old at most.
    let age = last_send_age(&row).unwrap_or_else(|| panic!("no last send shown: {run}"));
    assert!(age <= 9, "last send {age} s ago: {run}");
    assert!(!row.contains("STALE"), "{run}");

    // monitord gone: after 3 intervals without a delivery, --status says so and fails.
    monitord.terminate();
    let mut run = d.run(&["--status", "--all"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while run.code == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        run = d.run(&["--status", "--all"]);
    }
    assert_eq!(run.code, 1, "{run}");
    let row = run.row("web");
    assert!(
        row.contains("STALE, more than 3 x its 3 s interval") && row.contains("NOT DELIVERING"),
        "{run}"
    );
    assert!(last_send_age(&row).is_some_and(|age| age > 9), "{run}");

    let run = d.run(&["--stop", "web"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("web").contains("stopped the agent"), "{run}");
    util::wait_until(Duration::from_secs(10), "the agent to exit", || {
        user.processes("monitor-agent").is_empty()
    });
    let run = d.run(&["--status", "--all"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.row("web").contains("not running"), "{run}");
}

/// README's `monitor-deploy --status` and `--stop`, without a target: every client.
#[test]
fn status_and_stop_without_a_target_work_on_every_client() {
    let Some((monitord, server, d, agent)) = setup(&["t1", "t2"]) else {
        return;
    };
    let users = [
        support::login(&server, None).expect("root checked"),
        support::login(&server, None).expect("root checked"),
    ];
    d.write_config(
        Some(&monitord.url()),
        &[
            support::key_client("t1", &server, &users[0], "10s"),
            support::key_client("t2", &server, &users[1], "10s"),
        ],
    );
    let run = d.run(&["--all", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 0, "{run}");
    let run = d.run(&["--status"]);
    assert_eq!(run.code, 0, "{run}");
    for (name, user) in ["t1", "t2"].iter().zip(&users) {
        let pids = user.processes("monitor-agent");
        assert!(
            run.row(name).contains(&format!("running, pid {}", pids[0])),
            "{run}"
        );
    }
    let run = d.run(&["--stop"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("2 of 2 hosts stopped"), "{run}");
    for user in &users {
        util::wait_until(Duration::from_secs(10), "the agent to exit", || {
            user.processes("monitor-agent").is_empty()
        });
    }
}

/// `N` from `last successful send 2026-11-28 12:00:00 UTC (N s ago…` in a status row.
fn last_send_age(row: &str) -> Option<u64> {
    let rest = row.split_once("last successful send ")?.1;
    let rest = rest.split_once(" UTC (")?.1;
    rest.split_once(" s ago")?.0.parse().ok()
}

#[test]
fn password_deploy_never_shows_the_password() {
    let Some((monitord, server, d, agent)) = setup(&["pw", "pwfile"]) else {
        return;
    };
    let password = format!("pw-{}-secret", std::process::id());
    let user = support::login(&server, Some(&password)).expect("root checked");
    // The second host reads its password from a file, as config.xml prefers.
    let other = support::login(&server, Some(&password)).expect("root checked");
    let file = d.dir.path().join("pw-file.pass");
    fs::write(&file, format!("{password}\n")).unwrap();
    d.write_config(
        Some(&monitord.url()),
        &[
            support::password_client("pw", &server, &user.name, &password),
            format!(
                r#"<client name="pwfile" ip="127.0.0.1" port="{}" username="{}" password-file="{}" interval="10s"/>"#,
                server.port(),
                other.name,
                file.display()
            ),
        ],
    );
    let mut leaks = Vec::new();
    let mut scans = 0;
    let run = d.run_watching(&["--all", "--agent", &agent_arg(&agent)], |_| {
        scans += 1;
        leaks.extend(processes_showing(&password));
    });
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("pw").contains("first sample sent"), "{run}");
    assert!(run.row("pwfile").contains("first sample sent"), "{run}");
    assert!(scans > 3, "the run was watched ({scans} scans)");
    assert!(leaks.is_empty(), "password visible in: {leaks:?}");
    assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password));
}

/// Processes whose command line, or whose environment, holds `secret`.
fn processes_showing(secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        for file in ["cmdline", "environ"] {
            let bytes = fs::read(entry.path().join(file)).unwrap_or_default();
            if String::from_utf8_lossy(&bytes).contains(secret) {
                let cmd = fs::read(entry.path().join("cmdline")).unwrap_or_default();
                found.push(format!("{file} of {}", String::from_utf8_lossy(&cmd)));
            }
        }
    }
    found
}

/// SFTP starting somewhere else than the home (`internal-sftp -d`): the agent still lands in
/// `$HOME/.cache/monitor-agent`, where the start script runs it from.
#[test]
fn upload_goes_to_home_when_sftp_starts_elsewhere() {
    let Some((monitord, _, d, agent)) = setup(&["elsewhere"]) else {
        return;
    };
    let server = Sshd::start(SshdOptions {
        sftp_elsewhere: true,
        ..SshdOptions::default()
    });
    let user = support::login(&server, None).expect("root checked");
    d.write_config(
        Some(&monitord.url()),
        &[support::key_client("elsewhere", &server, &user, "10s")],
    );
    let run = d.run(&["elsewhere", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("elsewhere").contains("uploaded agent"), "{run}");
    let uploaded: Vec<PathBuf> = fs::read_dir(user.home.join(".cache/monitor-agent"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("monitor-agent"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(uploaded.len(), 1, "{uploaded:?}");
    assert_eq!(user.processes("monitor-agent").len(), 1, "{run}");
    assert!(!monitord.samples("elsewhere").is_empty(), "{run}");
}

#[test]
fn fleet_with_broken_hosts_then_failed_reruns_only_those() {
    let names: Vec<String> = (0..20).map(|i| format!("h{i:02}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let Some((monitord, server, d, agent)) = setup(&name_refs) else {
        return;
    };
    let peer = SilentPeer::start();
    let refused = util::free_port();
    let mut users: Vec<TestUser> = Vec::new();
    let mut clients = Vec::new();
    for (i, name) in names.iter().enumerate() {
        clients.push(match i {
            3 => format!(r#"<client name="{name}" ip="{name}.invalid" username="x"/>"#),
            9 => format!(r#"<client name="{name}" ip="127.0.0.1" port="{refused}" username="x"/>"#),
            15 => format!(
                r#"<client name="{name}" ip="127.0.0.1" port="{}" username="x"/>"#,
                peer.addr().port()
            ),
            _ => {
                let user = support::login(&server, None).expect("root checked");
                let line = support::key_client(name, &server, &user, "10s");
                users.push(user);
                line
            }
        });
    }
    d.write_config(Some(&monitord.url()), &clients);
    let run = d.run(&["--all", "--timeout", "5s", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 1, "{run}");
    for (i, name) in names.iter().enumerate() {
        let row = run.row(name);
        let broken = matches!(i, 3 | 9 | 15);
        assert_eq!(row.contains("FAILED"), broken, "{name}: {run}");
    }
    assert!(
        run.stdout.contains("17 of 20 hosts deployed, 3 failed"),
        "{run}"
    );
    for user in &users {
        assert_eq!(
            user.processes("monitor-agent").len(),
            1,
            "{}: {run}",
            user.name
        );
    }

    let rerun = d.run(&["--failed", "--timeout", "5s", "--agent", &agent_arg(&agent)]);
    assert_eq!(rerun.code, 1, "{rerun}");
    assert!(
        rerun.stdout.contains("0 of 3 hosts deployed, 3 failed"),
        "{rerun}"
    );
    for name in ["h03", "h09", "h15"] {
        assert!(rerun.row(name).contains("FAILED"), "{rerun}");
    }
    assert!(!rerun.stdout.contains("h00"), "{rerun}");
}

#[test]
fn new_binary_replaces_the_agent_and_the_boot_hook_brings_it_back() {
    let Some((monitord, server, d, agent)) = setup(&["boot"]) else {
        return;
    };
    if !testkit::sshd::have_crontab() {
        return;
    }
    let user = support::login(&server, None).expect("root checked");
    d.write_config(
        Some(&monitord.url()),
        &[support::key_client("boot", &server, &user, "2s")],
    );
    let run = d.run(&["boot", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("boot").contains("@reboot crontab"), "{run}");
    let before = user.processes("monitor-agent");
    assert_eq!(before.len(), 1, "{run}");

    // Same version, different bytes: uploaded again, and the old process replaced by one new.
    let newer = d.dir.path().join("monitor-agent");
    let mut bytes = fs::read(&agent).unwrap();
    bytes.extend_from_slice(b"\0rebuilt");
    fs::write(&newer, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&newer, fs::Permissions::from_mode(0o755)).unwrap();
    let run = d.run(&["boot", "--agent", &agent_arg(&newer)]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("boot").contains("uploaded agent"), "{run}");
    let after = user.processes("monitor-agent");
    assert_eq!(
        after.len(),
        1,
        "exactly one agent after the upgrade: {after:?}"
    );
    assert_ne!(before, after);

    // A reboot, as far as the agent can tell: it is killed, then started by its @reboot line
    // with nothing on stdin; it must find its settings and keep sending.
    let crontab = user.crontab().unwrap_or_default();
    let hook = crontab
        .lines()
        .find_map(|l| l.strip_prefix("@reboot "))
        .unwrap_or_else(|| panic!("no @reboot line in {crontab:?}"))
        .to_owned();
    for pid in after {
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap();
    }
    util::wait_until(Duration::from_secs(10), "the agent to exit", || {
        user.processes("monitor-agent").is_empty()
    });
    let stored = monitord.samples("boot").len();
    let mut booted = std::process::Command::new("su")
        .args([&user.name, "-s", "/bin/sh", "-c", &hook])
        .spawn()
        .unwrap();
    util::wait_until(
        Duration::from_secs(30),
        "samples from the agent the hook started",
        || monitord.samples("boot").len() >= stored + 2,
    );
    // --status finds the agent the hook started, and sees it delivering.
    let run = d.run(&["--status", "boot"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("boot").contains("last successful send"), "{run}");
    let _ = booted.kill();
    let _ = booted.wait();

    let run = d.run(&["--stop", "boot"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.row("boot").contains("removed its crontab boot hook"),
        "{run}"
    );
    // The @reboot line was the user's whole crontab: none is left.
    assert_eq!(user.crontab(), None, "{run}");
}

/// What is not ours stays: a process of the user named monitor-agent that is not our binary
/// survives the deploy's restart and `--stop`, and so do the user's own crontab lines.
#[test]
fn deploy_and_stop_leave_what_is_not_ours() {
    let Some((monitord, server, d, agent)) = setup(&["mine"]) else {
        return;
    };
    if !testkit::sshd::have_crontab() {
        return;
    }
    let user = support::login(&server, None).expect("root checked");
    let own_line = "*/5 * * * * true # the user's own";
    user.set_crontab(&format!("{own_line}\n"));
    let mut foreign = support::ForeignAgent::start(&user);
    d.write_config(
        Some(&monitord.url()),
        &[support::key_client("mine", &server, &user, "10s")],
    );
    let run = d.run(&["mine", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        foreign.alive(),
        "the deploy killed the foreign monitor-agent: {run}"
    );
    let ours: Vec<u32> = user
        .processes("monitor-agent")
        .into_iter()
        .filter(|&p| p != foreign.pid())
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}: {run}");
    let crontab = user.crontab().unwrap_or_default();
    assert!(
        crontab.contains(own_line) && crontab.contains("@reboot"),
        "{crontab}"
    );

    let run = d.run(&["--stop", "mine"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.row("mine")
            .contains(&format!("stopped the agent (pid {})", ours[0])),
        "{run}"
    );
    assert!(
        foreign.alive(),
        "--stop killed the foreign monitor-agent: {run}"
    );
    assert_eq!(user.processes("monitor-agent"), [foreign.pid()], "{run}");
    let crontab = user.crontab().unwrap_or_default();
    assert_eq!(
        crontab
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        [own_line],
        "{crontab}"
    );
}

#[test]
fn once_sends_one_sample_and_leaves_nothing_running() {
    let Some((monitord, server, d, agent)) = setup(&["one"]) else {
        return;
    };
    let user = support::login(&server, None).expect("root checked");
    d.write_config(
        Some(&monitord.url()),
        &[support::key_client("one", &server, &user, "10s")],
    );
    let run = d.run(&["--once", "one", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.row("one").contains("sent one sample"), "{run}");
    assert_eq!(monitord.samples("one").len(), 1, "{run}");
    assert!(user.processes("monitor-agent").is_empty(), "{run}");
}

#[test]
fn without_server_url_the_agent_sends_to_where_ssh_came_from() {
    if !support::have_sshd() {
        return;
    }
    let Some((monitord_bin, agent)) = support::monitord_and_agent() else {
        return;
    };
    if !util::runnable_as_root("a network namespace as a separate host") {
        return;
    }
    let server = Sshd::start(SshdOptions {
        netns: true,
        ..SshdOptions::default()
    });
    let outside = server.outside_addr().expect("namespaced sshd");
    // monitord on this machine's end of the link, at the contract's port 8750: the address is
    // this test's own, so the port cannot be taken.
    let mut monitord = Monitord::prepare(&monitord_bin, &["far"]);
    fs::write(
        monitord.config_path(),
        format!(
            r#"<monitor><server listen="{outside}:8750" database="db.sqlite3" key-file="master.key"/><client name="far" ip="{}" username="x" mail=""/></monitor>"#,
            server.addr().ip()
        ),
    )
    .unwrap();
    monitord.spawn();
    let user = support::login(&server, None).expect("root checked");
    let d = Deployer::with_key(&monitord.key_path());
    d.write_config(
        None,
        &[format!(
            r#"<client name="far" ip="{}" username="{}" key="{}" interval="2s"/>"#,
            server.addr().ip(),
            user.name,
            user.key.display()
        )],
    );
    let run = d.run(&["far", "--agent", &agent_arg(&agent)]);
    assert_eq!(run.code, 0, "{run}");
    let expected = format!("first sample sent to http://{outside}:8750");
    assert!(run.row("far").contains(&expected), "{run}");
    util::wait_until(
        Duration::from_secs(30),
        "samples from the namespaced host",
        || monitord.samples("far").len() >= 2,
    );
    assert!(
        fs::read_to_string(d.known_hosts())
            .unwrap()
            .starts_with(&format!("{} ", server.addr().ip())),
        "port 22 is recorded without brackets"
    );
}

//! The deploy faults real fleets have, each against a real sshd whose account is broken in one
//! way (testkit's `HostFaults`: mounts in the sshd's own mount namespace, another machine type,
//! an SFTP server that drops the connection), next to a healthy host in the same run: the
//! broken one fails with one line naming the step, the cause and what to do, the healthy one is
//! deployed, and the run exits 1. A login shell that is not POSIX is not a fault: it deploys.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use testkit::monitord::Monitord;
use testkit::sshd::{HostFaults, Sshd, SshdOptions, TestUser};
use testkit::util;

use crate::support::{self, Deployer, Run, agent_arg};

/// A run's one live line for `host` (`ok  host [step, 1.2 s] message` or `FAIL …`): exactly
/// one, and the message on it whole.
fn line(run: &Run, host: &str) -> String {
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            matches!(words.next(), Some("ok" | "FAIL")) && words.next() == Some(host)
        })
        .collect();
    assert_eq!(lines.len(), 1, "one line for {host}:\n{run}");
    lines[0].to_owned()
}

/// The failed host's line: FAIL at `step`, with every one of `words`; the healthy host's line
/// is ok at the first sample; the run exits 1.
fn assert_fault(run: &Run, host: &str, step: &str, words: &[&str]) -> String {
    assert_eq!(run.code, 1, "{run}");
    let ok = line(run, "healthy");
    assert!(
        ok.starts_with("ok") && ok.contains("[first sample"),
        "{run}"
    );
    let failed = line(run, host);
    assert!(
        failed.starts_with(&format!("FAIL {host} [{step},")),
        "{host} failed at {step}:\n{run}"
    );
    for word in words {
        assert!(failed.contains(word), "{host}: {word:?} missing:\n{run}");
    }
    println!("{failed}");
    failed
}

/// monitord, a deployer sharing its key, and a healthy account on `server`.
struct Fleet {
    monitord: Monitord,
    d: Deployer,
    healthy: TestUser,
}

impl Fleet {
    /// `None` (printed why) where these tests cannot run: they need root, sshd, monitord and
    /// the agent.
    fn new(names: &[&str]) -> Option<Fleet> {
        if !support::have_sshd() || !util::runnable_as_root("accounts with broken homes") {
            return None;
        }
        let (monitord_bin, _) = support::monitord_and_agent()?;
        let monitord = Monitord::start(&monitord_bin, names);
        let d = Deployer::with_key(&monitord.key_path());
        Some(Fleet {
            monitord,
            d,
            healthy: TestUser::create(None),
        })
    }

    /// config.xml with `healthy` on `healthy_server` and `host` as `user` on `server`.
    fn configure(&self, healthy_server: &Sshd, host: &str, server: &Sshd, user: &TestUser) {
        healthy_server.authorize(&self.healthy);
        server.authorize(user);
        self.d.write_config(
            Some(&self.monitord.url()),
            &[
                support::key_client("healthy", healthy_server, &self.healthy, "10s"),
                support::key_client(host, server, user, "10s"),
            ],
        );
    }
}

fn agent() -> String {
    agent_arg(&testkit::agent::binary())
}

/// A home on a read-only mount, and one its user may not write (mode 0555), in the same run:
/// the upload cannot create `~/.cache/monitor-agent`, each says why.
#[test]
fn read_only_home_fails_at_upload() {
    let Some(fleet) = Fleet::new(&["healthy", "rohome", "locked"]) else {
        return;
    };
    let user = TestUser::create(None);
    let locked = TestUser::create(None);
    fs::set_permissions(&locked.home, fs::Permissions::from_mode(0o555))
        .expect("chmod 0555 the home");
    let server = Sshd::start_with_faults(
        SshdOptions::default(),
        &HostFaults::new().read_only_home(&user),
    );
    fleet.configure(&server, "rohome", &server, &user);
    server.authorize(&locked);
    let clients = [
        support::key_client("healthy", &server, &fleet.healthy, "10s"),
        support::key_client("rohome", &server, &user, "10s"),
        support::key_client("locked", &server, &locked, "10s"),
    ];
    fleet.d.write_config(Some(&fleet.monitord.url()), &clients);
    let run = fleet.d.run(&["--all", "--agent", &agent()]);
    assert_fault(
        &run,
        "rohome",
        "upload",
        &["read-only file system", ".cache/monitor-agent", "remount"],
    );
    assert_fault(
        &run,
        "locked",
        "upload",
        &["permission denied", "ls -ld", "lsattr -d"],
    );
}

/// A home on a `noexec` mount: the upload works, the agent cannot be run.
#[test]
fn noexec_home_fails_at_start_saying_noexec() {
    let Some(fleet) = Fleet::new(&["healthy", "noexec"]) else {
        return;
    };
    let user = TestUser::create(None);
    let server = Sshd::start_with_faults(
        SshdOptions::default(),
        &HostFaults::new().noexec_home(&user),
    );
    fleet.configure(&server, "noexec", &server, &user);
    let run = fleet.d.run(&["--all", "--agent", &agent()]);
    assert_fault(&run, "noexec", "start", &["noexec", "mount"]);
}

/// A full file system under the home: the upload fails with ENOSPC, said in words.
#[test]
fn full_disk_fails_at_upload_saying_no_space() {
    let Some(fleet) = Fleet::new(&["healthy", "full"]) else {
        return;
    };
    let user = TestUser::create(None);
    let server =
        Sshd::start_with_faults(SshdOptions::default(), &HostFaults::new().full_home(&user));
    fleet.configure(&server, "full", &server, &user);
    let run = fleet.d.run(&["--all", "--agent", &agent()]);
    assert_fault(&run, "full", "upload", &["no space left", "free"]);
}

/// A host whose kernel says aarch64 (the probe reads `/proc/sys/kernel/arch`, bind-mounted
/// over in the sshd's namespace: monitor-deploy picks the agent from the probe's answer, so
/// this is what it sees on a real aarch64 host), with no aarch64 agent anywhere. No `--agent`:
/// the healthy x86_64 host gets the build output's agent.
#[test]
fn another_machine_type_without_an_agent_fails_at_upload() {
    let Some(fleet) = Fleet::new(&["healthy", "arm"]) else {
        return;
    };
    let healthy_server = Sshd::start(SshdOptions::default());
    let user = TestUser::create(None);
    let server = Sshd::start_with_faults(
        SshdOptions::default(),
        &HostFaults::new().machine("aarch64"),
    );
    fleet.configure(&healthy_server, "arm", &server, &user);
    let run = fleet.d.run(&["--all"]);
    assert_fault(
        &run,
        "arm",
        "upload",
        &[
            "aarch64",
            "/usr/lib/monitord/agents/monitor-agent-aarch64",
            "aarch64-unknown-linux-gnu/agent/monitor-agent",
            "--agent PATH",
        ],
    );
}

/// The x86_64 agent named by `--agent` for a host that says it is aarch64: refused before the
/// upload, naming both machine types.
#[test]
fn an_agent_of_another_machine_type_is_refused_at_upload() {
    let Some(fleet) = Fleet::new(&["healthy", "arm"]) else {
        return;
    };
    let healthy_server = Sshd::start(SshdOptions::default());
    let user = TestUser::create(None);
    let server = Sshd::start_with_faults(
        SshdOptions::default(),
        &HostFaults::new().machine("aarch64"),
    );
    fleet.configure(&healthy_server, "arm", &server, &user);
    let run = fleet.d.run(&["--all", "--agent", &agent()]);
    assert_fault(&run, "arm", "upload", &["x86_64", "aarch64", "--agent"]);
}

/// Login shells that are not POSIX (fish, tcsh): sshd runs every command through them, and
/// the deploy works all the same, `--status` and `--stop` too.
#[test]
fn non_posix_login_shells_deploy() {
    let Some(fleet) = Fleet::new(&["healthy", "fish", "tcsh"]) else {
        return;
    };
    let shells = [("fish", "/usr/bin/fish"), ("tcsh", "/usr/bin/tcsh")];
    for (_, path) in shells {
        if !util::runnable(
            std::path::Path::new(path).is_file(),
            &format!("{path} is not installed (apt-get install fish tcsh)"),
        ) {
            return;
        }
    }
    let server = Sshd::start(SshdOptions::default());
    let users = shells.map(|(_, path)| {
        let user = TestUser::create(None);
        user.set_shell(path);
        server.authorize(&user);
        user
    });
    server.authorize(&fleet.healthy);
    let mut clients = vec![support::key_client(
        "healthy",
        &server,
        &fleet.healthy,
        "10s",
    )];
    for ((name, _), user) in shells.iter().zip(&users) {
        clients.push(support::key_client(name, &server, user, "10s"));
    }
    fleet.d.write_config(Some(&fleet.monitord.url()), &clients);
    let agent = agent();
    let run = fleet.d.run(&["--all", "--agent", &agent]);
    assert_eq!(run.code, 0, "{run}");
    for (name, _) in shells {
        let ok = line(&run, name);
        assert!(ok.contains("running, first sample sent"), "{name}:\n{run}");
        // persist.sh ran whole: cron is there, as for the healthy host.
        assert!(ok.contains("(@reboot crontab line)"), "{name}:\n{run}");
    }
    let status = fleet.d.run(&["--status"]);
    assert_eq!(status.code, 0, "{status}");
    let stop = fleet.d.run(&["--stop"]);
    assert_eq!(stop.code, 0, "{stop}");
    for user in &users {
        assert!(user.processes("monitor-agent").is_empty(), "{stop}");
    }
}

/// The host closes the connection partway through the upload (the sshd process serving it is
/// killed after 256 KiB of SFTP requests: what a crash, a reboot or a firewall's reset looks
/// like from here): the step is upload, the message says the connection dropped, and the next
/// run deploys.
#[test]
fn connection_closed_mid_upload_fails_at_upload_and_a_rerun_works() {
    let Some(fleet) = Fleet::new(&["healthy", "cut"]) else {
        return;
    };
    let server = Sshd::start(SshdOptions {
        drop_uploads: true,
        ..SshdOptions::default()
    });
    let user = TestUser::create(None);
    fleet.configure(&server, "cut", &server, &user);
    server.drop_next_upload(&user);
    let agent = agent();
    let run = fleet.d.run(&["--all", "--agent", &agent]);
    assert_fault(&run, "cut", "upload", &["connection", "dropped", "again"]);
    let rerun = fleet.d.run(&["--failed", "--agent", &agent]);
    assert_eq!(rerun.code, 0, "{rerun}");
    assert!(line(&rerun, "cut").contains("uploaded agent"), "{rerun}");
}

//! The scripts run by the real `sh` (and checked by `shellcheck`), on state directories made
//! here, and the parsing of what they print.

use super::*;

/// A home whose name starts with `prefix`, holding an agent where a deploy puts it:
/// `(home, base, exe)` with `exe` = `base/0.1.0/monitor-agent` (not written yet).
fn agent_home(prefix: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let home = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let base = home.path().join(".cache/monitor-agent");
    let exe = base.join("0.1.0/monitor-agent");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    (home, base, exe)
}

/// `sh -c` running `call` after `persist.sh`'s functions, with `$1` = `arg`.
fn persist_sh(call: &str, arg: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("{PERSIST_SH}\n{call}"))
        .arg("sh")
        .arg(arg);
    sh
}

#[test]
fn probe_output_is_parsed() {
    let out = "machine=x86_64\nconn=10.0.0.5 51234 10.0.0.11 22\nhome=/home/u s \n\
               have=abc /home/u/.cache/monitor-agent/0.1.0/monitor-agent\n\
               addr=10.0.0.5\naddr=10.0.0.5\naddr=fe80::1\n";
    let p = Probe::parse(out);
    assert_eq!(p.machine, "x86_64");
    assert_eq!(p.home.as_deref(), Some("/home/u s "));
    assert_eq!(p.client_addr.as_deref(), Some("10.0.0.5"));
    assert!(p.has_agent("0.1.0", "abc"));
    assert!(!p.has_agent("0.1.0", "abd"));
    assert!(!p.has_agent("0.2.0", "abc"));
    assert_eq!(p.resolved, ["10.0.0.5", "fe80::1"]);
    assert!(p.running_unchanged("0.1.0", 10, "s").is_none());
    let p = Probe::parse("running=42\ndeployed=0.1.0 10 s\n");
    assert_eq!(p.running_unchanged("0.1.0", 10, "s"), Some("42"));
    assert!(p.running_unchanged("0.1.0", 10, "t").is_none());
    assert!(p.running_unchanged("0.1.0", 1, "s").is_none());
    assert!(p.running_unchanged("0.2.0", 10, "s").is_none());
    // Samples spooled: left alone only while the last send is recent (3 intervals).
    let spooling = |ago: i64| {
        Probe::parse(&format!(
            "running=42\ndeployed=0.1.0 10 s\nspooled=1\nlast_sent={}\nnow=1800000000\n",
            (1_800_000_000 - ago) * 1000
        ))
    };
    assert_eq!(spooling(25).running_unchanged("0.1.0", 10, "s"), Some("42"));
    assert!(spooling(31).running_unchanged("0.1.0", 10, "s").is_none());
    let never = Probe::parse("running=42\ndeployed=0.1.0 10 s\nspooled=1\nnow=1800000000\n");
    assert!(never.running_unchanged("0.1.0", 10, "s").is_none());
    // A stamp without a live agent means nothing.
    assert!(
        Probe::parse("deployed=0.1.0 10 s\n")
            .running_unchanged("0.1.0", 10, "s")
            .is_none()
    );
}

/// The probe, run by the real `sh` on a state directory made here, with a live process
/// named monitor-agent: the unchanged case starts nothing but the shell and reports the
/// stamp; a binary changed after its hash was recorded is hashed again.
#[test]
fn probe_reads_the_stamp_and_recorded_hashes() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;
    let home = tempfile::tempdir().unwrap();
    let base = home.path().join(".cache/monitor-agent");
    let dir = base.join("0.1.0");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("monitor-agent");
    std::fs::copy("/bin/sleep", &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut agent = Command::new(&exe).arg("30").spawn().unwrap();
    let pid = agent.id();
    std::fs::write(base.join("settings.json"), "{}").unwrap();
    std::fs::write(base.join("agent.pid"), format!("{pid}\n")).unwrap();
    std::fs::write(base.join("deployed"), format!("{pid} 0.1.0 10 feed\n")).unwrap();
    std::fs::write(dir.join("monitor-agent.sha256"), "recorded\n").unwrap();
    let run = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(probe(None))
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        Probe::parse(&String::from_utf8_lossy(&out.stdout))
    };
    let p = run();
    assert_eq!(p.running.as_deref(), Some(pid.to_string().as_str()));
    assert_eq!(
        p.running_unchanged("0.1.0", 10, "feed"),
        Some(pid.to_string().as_str())
    );
    assert!(p.has_agent("0.1.0", "recorded"));
    assert_eq!(p.machine, std::env::consts::ARCH);
    assert_eq!(p.home.as_deref(), home.path().to_str());

    // Settings changed since the deploy: no longer what the deploy started.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(base.join("settings.json"), "{ }").unwrap();
    assert!(run().deployed.is_none());
    std::fs::write(base.join("deployed"), format!("{pid} 0.1.0 10 feed\n")).unwrap();
    assert!(run().deployed.is_some());

    // The binary replaced after its hash was recorded: hashed again, not trusted, and the
    // running agent is no longer that binary.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.join("new"), b"other").unwrap();
    std::fs::rename(dir.join("new"), &exe).unwrap();
    let p = run();
    assert!(p.deployed.is_none());
    assert!(!p.has_agent("0.1.0", "recorded"));
    assert!(p.has_agent("0.1.0", &crate::agentbin::sha256_hex(b"other")));
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(run().running.is_none());
}

/// The unit the start script installs for boot (system unit for root, user unit where
/// lingering is on) passes `systemd-analyze verify` both ways, for a home with a space and
/// one with `%` and `$` (a specifier and a variable, were they not escaped; verify checks
/// that the program's path, resolved, is the binary). Booting with it is for the nspawn
/// system test; this checks the text systemd will read.
#[test]
fn boot_units_pass_systemd_analyze_verify() {
    use std::process::Command;
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !testkit::util::runnable(
        have,
        "systemd-analyze is not installed (apt install systemd)",
    ) {
        return;
    }
    for prefix in ["home with space ", "home 100% $USER %h "] {
        let (home, base, exe) = agent_home(prefix);
        std::fs::copy("/bin/true", &exe).unwrap();
        let runtime = tempfile::tempdir().unwrap(); // --user wants a runtime directory
        for (target, scope) in [
            ("multi-user.target", "--system"),
            ("default.target", "--user"),
        ] {
            let out = persist_sh(
                &format!("unit_safe \"$1\" && unit_text \"$1\" 10 {target}"),
                &exe,
            )
            .env("base", &base)
            .output()
            .unwrap();
            assert!(out.status.success());
            let unit_dir = home.path().join(scope.trim_start_matches('-'));
            std::fs::create_dir_all(&unit_dir).unwrap();
            let unit = unit_dir.join("monitor-agent.service");
            std::fs::write(&unit, &out.stdout).unwrap();
            let verify = Command::new("systemd-analyze")
                .args([scope, "verify"])
                .arg(&unit)
                .env("XDG_RUNTIME_DIR", runtime.path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let complaints = String::from_utf8_lossy(&verify.stderr);
            assert!(
                verify.status.success() && !complaints.contains("monitor-agent"),
                "{scope} unit:\n{text}\nsystemd-analyze verify: {complaints}"
            );
            assert!(text.contains(&format!("WantedBy={target}")), "{text}");
        }
    }
}

/// A path systemd refuses as a program (it holds `"`, `'` or `\\`) gets no unit: the
/// crontab line is used instead.
#[test]
fn unit_safe_refuses_what_systemd_refuses() {
    for (path, safe) in [
        ("/home/a b/x", true),
        ("/home/a%b$c/x", true),
        ("/home/a\"b/x", false),
        ("/home/a'b/x", false),
        ("/home/a\\b/x", false),
    ] {
        let ok = persist_sh("unit_safe \"$1\"", path)
            .status()
            .unwrap()
            .success();
        assert_eq!(ok, safe, "{path}");
    }
}

/// The `@reboot` line for a home holding what sh and cron would read otherwise (`%` cuts a
/// cron command, `$ " ' \\` are special to sh), put through cron's own rule (`\\%` is a
/// `%`, a bare `%` ends the command: do_command.c) and run by sh, runs the agent with
/// exactly its path and `--dir`.
#[test]
fn cron_line_survives_cron_and_sh() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;
    let (_home, base, exe) = agent_home(r#"home 100% $USER 'q' "d" \n "#);
    // Stands in for the agent: records how it was called.
    std::fs::write(
        &exe,
        "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > \"${0%/*}/args\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = persist_sh("cron_line \"$1\" 10", &exe)
        .env("base", &base)
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let line = line.trim_end_matches('\n');
    assert!(line.ends_with("# monitor-agent"), "{line}");
    let mut command = String::new();
    let mut chars = line.strip_prefix("@reboot ").expect("@reboot").chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('%')) => {
                command.push('%');
                chars.next();
            }
            ('%', _) => panic!("a bare % cron would cut the command at: {line}"),
            _ => command.push(c),
        }
    }
    let run = Command::new("sh").arg("-c").arg(&command).status().unwrap();
    assert!(run.success(), "{command}");
    let args = std::fs::read_to_string(exe.with_file_name("args")).unwrap();
    let expected = format!(
        "{}\n--interval\n10\n--dir\n{}\n",
        exe.display(),
        base.display()
    );
    assert_eq!(args, expected, "{line}");
}

#[test]
fn quoting_survives_quotes() {
    assert_eq!(quote("a'b"), r"'a'\''b'");
}

/// Every script as it is sent (the files with their variables) passes `shellcheck -s sh`
/// without a finding, and every file in `remote/` is part of one of them. Checked whole
/// rather than file by file: the variables and functions a file uses are set by the others.
#[test]
fn scripts_pass_shellcheck() {
    use std::process::Command;
    use std::time::Duration;
    let have = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !testkit::util::runnable(
        have,
        "shellcheck is not installed (apt-get install shellcheck)",
    ) {
        return;
    }
    let scripts = [
        ("probe", probe(Some("monitord.example"))),
        ("start", start("0.1.0", 10, "feed")),
        ("once", once("0.1.0")),
        ("stop", stop()),
        ("status", status()),
        ("diagnose", diagnose("0.1.0", true)),
    ];
    let mut findings = Vec::new();
    for (name, text) in &scripts {
        let out = testkit::process::output_within(
            Command::new("shellcheck").args(["-s", "sh", "-"]),
            text.as_bytes(),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("shellcheck: {e}"));
        if !out.status.success() {
            findings.push(format!(
                "{name} script:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(findings.is_empty(), "{}", findings.join("\n"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/remote");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "sh") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                scripts.iter().any(|(_, s)| s.contains(&text)),
                "{} is sent in no script, so shellcheck never saw it",
                path.display()
            );
        }
    }
}

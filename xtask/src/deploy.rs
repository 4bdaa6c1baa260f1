//! `xtask bench deploy N`: how long monitor-deploy takes to put the agent on N hosts and start
//! it, next to what the same machine does with plain OpenSSH and with Ansible, in one run.
//!
//! Each host is a real `sshd` in a network namespace of its own (testkit::sshd, so root only)
//! with its own test account. Timed, in this order, at the same parallelism (`--jobs`):
//! (a) the floor: `ssh host true` plus an `scp` of the agent per host; (b) `monitor-deploy --all`;
//! (c) `ansible-core` (pip, in a cached venv) copying the agent and running it once, forks = jobs;
//! (d) `monitor-deploy --all` again on the unchanged fleet; (e) `ssh host true` alone, one
//! connection per host, which is all a re-deploy of an unchanged host should cost. Prints the
//! times, the ratios, the CPU time the machine spent in each phase and the load average. Not here: anything a test asserts (the deploy tests are in monitor-deploy).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use testkit::monitord::Monitord;
use testkit::sshd::{Sshd, SshdOptions, TestUser};

use crate::procstat::{load_average, machine_busy};
use crate::server;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Number of hosts (network namespaces with their own sshd).
    #[arg(default_value_t = 200)]
    hosts: usize,
    /// Hosts at once, for every contender (ansible: forks).
    #[arg(long, default_value_t = 32)]
    jobs: usize,
    /// Skip the Ansible run (no pip download).
    #[arg(long)]
    no_ansible: bool,
}

/// One host of the fleet.
struct Host {
    server: Sshd,
    user: TestUser,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    ensure!(
        testkit::util::is_root(),
        "bench deploy needs root (network namespaces, test accounts)"
    );
    ensure!(
        opts.hosts > 0 && opts.jobs > 0,
        "hosts and --jobs must be above 0"
    );
    let deploy = server::release_binary(
        None,
        "monitor-deploy",
        "cargo build --release -p monitor-deploy",
        None,
    )?;
    let monitord_bin = server::monitord_binary(None)?;
    let agent = server::agent_binary(None)?;

    eprintln!("creating {} hosts …", opts.hosts);
    let started = Instant::now();
    let hosts: Vec<Host> = (0..opts.hosts)
        .map(|_| {
            let server = Sshd::start(SshdOptions {
                netns: true,
                ..SshdOptions::default()
            });
            let user = TestUser::create(None);
            server.authorize(&user);
            Host { server, user }
        })
        .collect();
    eprintln!("  done in {:.1}s", started.elapsed().as_secs_f64());
    let names: Vec<String> = (0..hosts.len()).map(|i| format!("h{i:03}")).collect();
    let outside = hosts[0].server.outside_addr().expect("namespaced sshd");
    let url = format!("http://{outside}:8750");

    let monitord = start_monitord(&monitord_bin, &names, &format!("{outside}:8750"))?;
    let work = testkit::util::temp_dir("bench-deploy");
    let known_hosts = work.path().join("known_hosts");
    let lines: Vec<String> = hosts.iter().map(|h| h.server.known_hosts_line()).collect();
    fs::write(&known_hosts, lines.join("\n") + "\n")?;
    let config = work.path().join("config.xml");
    write_config(&config, &hosts, &names, &url, &monitord.key_path())?;

    let load_before = load_average();
    let floor = measure(|| time_floor(&hosts, &known_hosts, &agent, opts.jobs, true))?;
    let first = measure(|| time_deploy(&deploy, &config, &known_hosts, &agent, opts.jobs))?;
    let ansible = if opts.no_ansible {
        None
    } else {
        Some(measure(|| {
            time_ansible(
                &hosts,
                &names,
                &monitord,
                &known_hosts,
                &agent,
                opts.jobs,
                work.path(),
            )
        })?)
    };
    let again = measure(|| time_deploy(&deploy, &config, &known_hosts, &agent, opts.jobs))?;
    let connect = measure(|| time_floor(&hosts, &known_hosts, &agent, opts.jobs, false))?;
    let load_after = load_average();

    let ratio = |m: &Measured| m.wall.as_secs_f64() / floor.wall.as_secs_f64();
    println!("bench deploy: {} hosts, --jobs {}", hosts.len(), opts.jobs);
    println!("  (a) floor: ssh true + scp of the agent   {floor}");
    println!(
        "  (b) monitor-deploy --all (first)        {first}  = {:.2} x floor",
        ratio(&first)
    );
    if let Some(ansible) = &ansible {
        println!(
            "  (c) ansible-core copy + run, forks {:<4} {ansible}  = {:.2} x floor, monitor-deploy is {:.1} x faster",
            opts.jobs,
            ratio(ansible),
            ansible.wall.as_secs_f64() / first.wall.as_secs_f64()
        );
    }
    println!(
        "  (d) monitor-deploy --all (unchanged)    {again}  = {:.2} x floor",
        ratio(&again)
    );
    println!(
        "  (e) ssh true alone (one connection)     {connect}  = {:.2} x floor",
        ratio(&connect)
    );
    println!("  load average before: {load_before}   after: {load_after}");
    println!(
        "  goals at N = 200: (b) <= 1.3 x floor, (d) <= 0.6 x floor; (e) is what (d) cannot beat"
    );
    drop(monitord);
    Ok(())
}

fn start_monitord(bin: &Path, names: &[String], listen: &str) -> anyhow::Result<Monitord> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut monitord = Monitord::prepare(&bin.display().to_string(), &refs);
    let mut xml = format!(
        r#"<monitor><server listen="{listen}" database="db.sqlite3" key-file="master.key"/>"#
    );
    for name in names {
        xml.push_str(&format!(
            r#"<client name="{name}" ip="127.0.0.1" username="x" mail=""/>"#
        ));
    }
    xml.push_str("</monitor>\n");
    fs::write(monitord.config_path(), xml)?;
    monitord.spawn();
    Ok(monitord)
}

fn write_config(
    path: &Path,
    hosts: &[Host],
    names: &[String],
    url: &str,
    key_file: &Path,
) -> anyhow::Result<()> {
    let mut xml = format!(
        "<monitor>\n<server url=\"{url}\" key-file=\"{}\"/>\n<defaults interval=\"60s\" mail=\"\"/>\n",
        key_file.display()
    );
    for (host, name) in hosts.iter().zip(names) {
        xml.push_str(&format!(
            "<client name=\"{name}\" ip=\"{}\" username=\"{}\" key=\"{}\"/>\n",
            host.server.addr().ip(),
            host.user.name,
            host.user.key.display()
        ));
    }
    xml.push_str("</monitor>\n");
    fs::write(path, xml).context("writing config.xml")
}

/// A phase's wall time and the CPU time the machine was busy meanwhile.
struct Measured {
    wall: Duration,
    cpu: Duration,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8.2}s (machine CPU {:>6.1}s)",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64()
        )
    }
}

fn measure(phase: impl FnOnce() -> anyhow::Result<Duration>) -> anyhow::Result<Measured> {
    let busy = machine_busy();
    let wall = phase()?;
    Ok(Measured {
        wall,
        cpu: machine_busy().saturating_sub(busy),
    })
}

/// Runs `per_host` for every host index on `jobs` threads; the wall time of the whole.
fn parallel(
    count: usize,
    jobs: usize,
    per_host: impl Fn(usize) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<Duration> {
    let next = Mutex::new(0usize);
    let errors = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(count) {
            scope.spawn(|| {
                loop {
                    let i = {
                        let mut next = next.lock().expect("queue");
                        let i = *next;
                        *next += 1;
                        i
                    };
                    if i >= count {
                        break;
                    }
                    if let Err(e) = per_host(i) {
                        errors
                            .lock()
                            .expect("errors")
                            .push(format!("host {i}: {e:#}"));
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().expect("errors");
    if !errors.is_empty() {
        bail!("{} hosts failed, first: {}", errors.len(), errors[0]);
    }
    Ok(started.elapsed())
}

/// `ssh host true` per host, then (with `scp`) a copy of the agent.
fn time_floor(
    hosts: &[Host],
    known_hosts: &Path,
    agent: &Path,
    jobs: usize,
    scp: bool,
) -> anyhow::Result<Duration> {
    eprintln!("ssh true{} …", if scp { " + scp" } else { "" });
    let common = |h: &Host| -> Vec<String> {
        vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            h.user.key.display().to_string(),
        ]
    };
    parallel(hosts.len(), jobs, |i| {
        let h = &hosts[i];
        let target = format!("{}@{}", h.user.name, h.server.addr().ip());
        bounded(
            Command::new("ssh").args(common(h)).arg(&target).arg("true"),
            Duration::from_secs(120),
        )?;
        if !scp {
            return Ok(());
        }
        bounded(
            Command::new("scp")
                .arg("-q")
                .args(common(h))
                .arg(agent)
                .arg(format!("{target}:floor-agent")),
            Duration::from_secs(120),
        )?;
        Ok(())
    })
}

fn time_deploy(
    deploy: &Path,
    config: &Path,
    known_hosts: &Path,
    agent: &Path,
    jobs: usize,
) -> anyhow::Result<Duration> {
    eprintln!("monitor-deploy --all …");
    let started = Instant::now();
    let out = bounded(
        Command::new(deploy)
            .arg("--config")
            .arg(config)
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("--agent")
            .arg(agent)
            .args(["--jobs", &jobs.to_string(), "--all"]),
        Duration::from_secs(1800),
    )?;
    let elapsed = started.elapsed();
    let summary = String::from_utf8_lossy(&out.stdout);
    // Tells whether a re-deploy really skipped the hosts (or restarted agents with spooled samples).
    let skipped = summary
        .lines()
        .filter(|l| l.starts_with("ok") && l.contains("already running"))
        .count();
    eprintln!(
        "  {} ({skipped} left running untouched)",
        summary.lines().last().unwrap_or("")
    );
    Ok(elapsed)
}

#[allow(clippy::too_many_arguments)]
fn time_ansible(
    hosts: &[Host],
    names: &[String],
    monitord: &Monitord,
    known_hosts: &Path,
    agent: &Path,
    jobs: usize,
    work: &Path,
) -> anyhow::Result<Duration> {
    let playbook_bin = ansible_venv()?.join("bin/ansible-playbook");
    eprintln!("(c) ansible-playbook, forks {jobs} …");
    // YAML inventory (JSON is YAML) with the agent's settings as a host variable, the way an
    // Ansible user would pass them.
    let mut fleet = serde_json::Map::new();
    for (host, name) in hosts.iter().zip(names) {
        let settings: serde_json::Value = serde_json::from_str(&monitord.agent_settings(name))?;
        fleet.insert(
            name.clone(),
            serde_json::json!({
                "ansible_host": host.server.addr().ip().to_string(),
                "ansible_user": host.user.name,
                "ansible_ssh_private_key_file": host.user.key,
                "home": host.user.home,
                "settings": settings,
            }),
        );
    }
    let inventory = serde_json::json!({ "fleet": { "hosts": fleet } });
    fs::write(work.join("inventory.yml"), inventory.to_string())?;
    let playbook = format!(
        r#"- hosts: fleet
  gather_facts: false
  tasks:
    - name: its directory
      ansible.builtin.file:
        path: "{{{{ home }}}}/.cache/ansible-agent"
        state: directory
        mode: "0700"
    - name: upload the agent
      ansible.builtin.copy:
        src: {agent}
        dest: "{{{{ home }}}}/.cache/ansible-agent/monitor-agent"
        mode: "0700"
    - name: run it once
      ansible.builtin.command:
        argv: ["{{{{ home }}}}/.cache/ansible-agent/monitor-agent", "--once", "--dir", "{{{{ home }}}}/.cache/ansible-agent"]
        stdin: "{{{{ settings | to_json }}}}"
"#,
        agent = agent.display()
    );
    fs::write(work.join("playbook.yml"), playbook)?;
    let started = Instant::now();
    let out = bounded(
        Command::new(playbook_bin)
            .arg("-i")
            .arg(work.join("inventory.yml"))
            .arg(work.join("playbook.yml"))
            .args(["--forks", &jobs.to_string()])
            .env(
                "ANSIBLE_SSH_ARGS",
                format!(
                    "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={}",
                    known_hosts.display()
                ),
            )
            .env("ANSIBLE_PIPELINING", "True")
            .env("ANSIBLE_PYTHON_INTERPRETER", "auto_silent")
            .current_dir(work),
        Duration::from_secs(3600),
    )?;
    let elapsed = started.elapsed();
    let recap = String::from_utf8_lossy(&out.stdout);
    let failed = recap
        .lines()
        .filter(|l| l.contains("failed=") && !l.contains("failed=0"))
        .count();
    ensure!(failed == 0, "ansible failed on {failed} hosts:\n{recap}");
    Ok(elapsed)
}

/// `ansible-core` in a venv kept in the build cache, so only the first run downloads it.
fn ansible_venv() -> anyhow::Result<PathBuf> {
    let venv = testkit::util::target_dirs()[0].join("bench-ansible-venv");
    if venv.join("bin/ansible-playbook").is_file() {
        return Ok(venv);
    }
    eprintln!("installing ansible-core into {} …", venv.display());
    bounded(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        Duration::from_secs(300),
    )?;
    bounded(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", "ansible-core"]),
        Duration::from_secs(900),
    )?;
    Ok(venv)
}

/// Runs `cmd` to completion within `limit`; a non-zero exit is an error showing its output.
fn bounded(cmd: &mut Command, limit: Duration) -> anyhow::Result<Output> {
    let output = testkit::process::output_within(cmd, b"", limit)?;
    ensure!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

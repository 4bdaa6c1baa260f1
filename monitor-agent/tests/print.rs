//! `--print`: a whole, valid sample of this host, and its numbers agree with `free` and `df`.

use std::process::Command;

use monitor_core::Sample;
use testkit::monitord::now_ms;

use crate::util;

fn print_sample() -> Sample {
    let out = util::run(&["--print"], "");
    assert!(
        out.status.success(),
        "--print failed: {}",
        util::stderr(&out)
    );
    Sample::parse(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--print output is not a sample ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn command(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn print_is_a_valid_sample_with_every_field() {
    let before = now_ms();
    let sample = print_sample();
    sample.validate(now_ms()).unwrap();
    assert!(sample.ts >= before && sample.ts <= now_ms());
    assert_eq!(sample.seq, 1);
    assert_eq!(sample.agent.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert!(sample.instance.len() == 16 && sample.instance.bytes().all(|b| b.is_ascii_hexdigit()));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(sample.hostname.as_deref(), Some(hostname.trim()));
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let os = sample.os.clone().unwrap();
    assert!(
        os_release.contains(&format!("PRETTY_NAME=\"{os}\""))
            || os_release.contains(&format!("PRETTY_NAME={os}\n")),
        "{os}"
    );
    assert!(sample.uptime_s.unwrap() > 0);
    assert!(sample.load.is_some() && sample.swap.is_some());
    let processes = sample.processes.unwrap();
    let proc_count = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().bytes().all(|b| b.is_ascii_digit())
        })
        .count() as i64;
    assert!(
        (processes - proc_count).abs() <= 20,
        "{processes} processes, /proc has {proc_count}"
    );
    // The 5 largest RSS at least (fewer only on a nearly empty host), none twice.
    assert!(
        sample.top.len() >= 5.min(processes as usize),
        "{:?}",
        sample.top
    );
    let mut pids: Vec<i64> = sample.top.iter().map(|p| p.pid).collect();
    pids.dedup();
    assert_eq!(pids.len(), sample.top.len());
    assert!(sample.top.iter().any(|p| p.rss > 0));
}

/// `free -b`: (total, total − available) of the Mem line.
fn free() -> (i64, i64) {
    let text = command("free", &["-b"]);
    let mem: Vec<i64> = text
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    (mem[0], mem[0] - mem[5])
}

#[test]
fn memory_used_agrees_with_free() {
    let (total, used_before) = free();
    let sample = print_sample();
    let (_, used_after) = free();
    let m = &sample.memory;
    assert_eq!(m.total, total);
    assert_eq!(m.used, m.total - m.available);
    // Memory moves while the three commands run; allow that movement plus 32 MiB.
    let slack = 32 << 20;
    let (low, high) = (used_before.min(used_after), used_before.max(used_after));
    assert!(
        m.used >= low - slack && m.used <= high + slack,
        "agent says used {} bytes, free says {used_before}..{used_after}",
        m.used
    );
    let percent = m.used as f64 * 100.0 / m.total as f64;
    assert!(
        (m.percent - percent).abs() < 0.01,
        "{} vs {percent}",
        m.percent
    );
}

/// Mount options of each mount point, from the kernel's table.
fn mount_table() -> Vec<(String, String, String, String)> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mount = f[1].replace("\\040", " ");
            (f[0].to_owned(), mount, f[2].to_owned(), f[3].to_owned())
        })
        .collect()
}

#[test]
fn disks_are_real_writable_filesystems_as_df_shows_them() {
    let sample = print_sample();
    let table = mount_table();
    let virtual_fs = [
        "tmpfs",
        "devtmpfs",
        "squashfs",
        "overlay",
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "mqueue",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "autofs",
        "fusectl",
        "configfs",
        "bpf",
        "hugetlbfs",
        "ramfs",
        "nsfs",
    ];
    let mut devices = Vec::new();
    for disk in &sample.disks {
        assert!(!virtual_fs.contains(&disk.fs.as_str()), "{disk:?}");
        let (device, _, _, options) = table
            .iter()
            .rev()
            .find(|(_, mount, _, _)| *mount == disk.mount)
            .unwrap_or_else(|| panic!("{} is not in /proc/mounts", disk.mount));
        assert!(
            !options.split(',').any(|o| o == "ro"),
            "read-only: {disk:?}"
        );
        assert!(!devices.contains(device), "{device} listed twice");
        devices.push(device.clone());

        let df = command(
            "df",
            &["-B1", "--output=fstype,size,used,avail", &disk.mount],
        );
        let row: Vec<&str> = df.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row[0], disk.fs, "{df}");
        assert_eq!(row[1].parse::<i64>().unwrap(), disk.total, "{df}");
        let slack = 64 << 20; // files written in between
        let used: i64 = row[2].parse().unwrap();
        let avail: i64 = row[3].parse().unwrap();
        assert!((used - disk.used).abs() < slack, "{disk:?} vs {df}");
        assert!(
            (avail - disk.avail.unwrap()).abs() < slack,
            "{disk:?} vs {df}"
        );
    }
    // Every writable block-device mount is there, unless its device already is.
    for (device, mount, fs, options) in &table {
        let block_backed = device.starts_with("/dev/") && !virtual_fs.contains(&fs.as_str());
        let writable = !options.split(',').any(|o| o == "ro");
        let whole_fs = !["squashfs", "iso9660", "erofs"].contains(&fs.as_str());
        let is_dir = std::path::Path::new(mount).is_dir();
        if block_backed && writable && whole_fs && is_dir && !devices.contains(device) {
            panic!(
                "{device} on {mount} ({fs}) is missing from {:?}",
                sample.disks
            );
        }
    }
    assert!(
        sample.disks.iter().any(|d| d.mount == "/")
            || !table.iter().any(|t| t.1 == "/" && t.0.starts_with("/dev/")),
        "the root filesystem is missing: {:?}",
        sample.disks
    );
}

//! Which mounts are the host's disks, and their usage as `df` shows it.
//!
//! A disk is a mount of a block-device filesystem (a type `/proc/filesystems` lists without
//! `nodev`, as Python's psutil decides it, plus zfs) that is mounted read-write. That leaves
//! out tmpfs, devtmpfs, overlay, proc, sysfs, cgroup and network filesystems (whose `statvfs`
//! can hang on a dead server), and squashfs / iso9660, which are read-only. A device mounted
//! twice (bind mounts, btrfs subvolumes) is listed once, at its first mount.
//!
//! psutil parses `/proc/mounts` and calls `statvfs`; its own "physical" filter knows a fixed
//! list of types, so the choice is made here.

use monitor_core::sample::Disk;
use psutil::disk::Partition;

/// Block filesystems that are never a writable disk even when mounted read-write.
const NEVER: &[&str] = &["squashfs", "iso9660", "erofs", "udf"];

/// The host's disks now. Problems reading the mount table leave the list empty rather than
/// losing the whole sample.
pub fn collect() -> Vec<Disk> {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let block = block_filesystems(&filesystems);
    let partitions = psutil::disk::partitions().unwrap_or_default();
    let mounts = partitions.iter().map(|p| Mount {
        device: p.device(),
        fs: p.filesystem().as_str(),
        options: p.mount_options(),
        partition: p,
    });
    choose(mounts, &block)
        .into_iter()
        .filter_map(|m| {
            let usage = psutil::disk::disk_usage(m.partition.mountpoint()).ok()?;
            Some(Disk {
                mount: m.partition.mountpoint().to_string_lossy().into_owned(),
                fs: m.fs.to_owned(),
                total: usage.total() as i64,
                used: usage.used() as i64,
                avail: Some(usage.free() as i64),
            })
        })
        .collect()
}

struct Mount<'a> {
    device: &'a str,
    fs: &'a str,
    options: &'a str,
    partition: &'a Partition,
}

/// Filesystem types backed by a block device.
fn block_filesystems(proc_filesystems: &str) -> Vec<&str> {
    let mut types: Vec<&str> = proc_filesystems
        .lines()
        .filter(|line| !line.starts_with("nodev"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    types.push("zfs");
    types
}

/// The mounts that are disks, each device once.
fn choose<'a>(mounts: impl Iterator<Item = Mount<'a>>, block: &[&str]) -> Vec<Mount<'a>> {
    let mut chosen: Vec<Mount<'a>> = Vec::new();
    for m in mounts {
        let writable = !m.options.split(',').any(|o| o == "ro");
        let is_disk = writable && block.contains(&m.fs) && !NEVER.contains(&m.fs);
        if is_disk && !chosen.iter().any(|c| c.device == m.device) {
            chosen.push(m);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILESYSTEMS: &str = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n\tsquashfs\n\txfs\n\tbtrfs\nnodev\tnfs4\n";

    #[test]
    fn only_writable_block_filesystems_once_per_device() {
        let table = [
            "proc /proc proc rw,relatime 0 0",
            "devtmpfs /dev devtmpfs rw,relatime 0 0",
            "tmpfs /run tmpfs rw,nosuid 0 0",
            "overlay /var/lib/docker/x overlay rw 0 0",
            "/dev/sda1 / ext4 rw,relatime 0 0",
            "/dev/sda2 /home xfs rw 0 0",
            "/dev/sda1 /srv/bind ext4 rw,relatime 0 0",
            "/dev/loop0 /snap/core/1 squashfs ro,nodev 0 0",
            "/dev/sdb1 /mnt/backup ext4 ro,relatime 0 0",
            "/dev/sdc /data btrfs rw,subvol=/a 0 0",
            "/dev/sdc /data2 btrfs rw,subvol=/b 0 0",
            "tank/home /tank zfs rw,xattr 0 0",
            "srv:/export /nfs nfs4 rw 0 0",
        ];
        let parts: Vec<Partition> = table.iter().map(|l| l.parse().unwrap()).collect();
        let block = block_filesystems(FILESYSTEMS);
        let mounts = parts.iter().map(|p| Mount {
            device: p.device(),
            fs: p.filesystem().as_str(),
            options: p.mount_options(),
            partition: p,
        });
        let chosen: Vec<String> = choose(mounts, &block)
            .iter()
            .map(|m| m.partition.mountpoint().display().to_string())
            .collect();
        assert_eq!(chosen, ["/", "/home", "/data", "/tank"]);
    }

    #[test]
    fn escaped_mount_points_are_unescaped() {
        let p: Partition = "/dev/sda3 /mnt/my\\040disk ext4 rw 0 0".parse().unwrap();
        assert_eq!(p.mountpoint().to_str(), Some("/mnt/my disk"));
    }
}

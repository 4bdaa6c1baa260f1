//! Memory and swap from one read of `/proc/meminfo`, whose file stays open between samples.
//!
//! psutil's `virtual_memory` and `swap_memory` each read /proc/meminfo (the second also
//! /proc/vmstat, for swap-in/out counts the sample does not send) and split every line of both
//! into a `HashMap`: 40 % of the agent's user-space instructions per sample (callgrind,
//! 2026-11-28). The sample needs four numbers, read here with psutil's definitions:
//! `available` is `MemAvailable` (required, as psutil requires it; Linux has it since 3.14 and
//! RHEL 7's 3.10 has it too), swap used is `SwapTotal − SwapFree`.
//!
//! Not here: what `used` means (`collect` makes it `total − available`, as `free` shows it).

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use anyhow::{Context as _, bail};

const PATH: &str = "/proc/meminfo";

/// The lines of /proc/meminfo a sample needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    /// `(SwapTotal, SwapFree)`; `None` when the kernel has no swap support at all.
    pub swap: Option<(u64, u64)>,
}

/// Keeps /proc/meminfo open and its buffer, so a sample costs one `pread`.
#[derive(Debug)]
pub struct Reader {
    file: Option<File>,
    buf: Vec<u8>,
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            file: None,
            buf: vec![0; 4096],
        }
    }

    pub fn read(&mut self) -> anyhow::Result<MemInfo> {
        let file = match &mut self.file {
            Some(file) => file,
            none => none.insert(File::open(PATH).with_context(|| format!("opening {PATH}"))?),
        };
        // A pread at offset 0 makes procfs write the file afresh; a full buffer may have cut
        // it, so that read is repeated with a larger one.
        let n = loop {
            let n = file.read_at(&mut self.buf, 0);
            match n {
                Ok(n) if n == self.buf.len() => self.buf.resize(n * 2, 0),
                Ok(n) => break n,
                Err(e) => {
                    self.file = None; // opened afresh next time
                    return Err(e).with_context(|| format!("reading {PATH}"));
                }
            }
        };
        parse(&self.buf[..n])
    }
}

fn parse(text: &[u8]) -> anyhow::Result<MemInfo> {
    let (mut total, mut available, mut swap_total, mut swap_free) = (None, None, None, None);
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let slot = match &line[..colon] {
            b"MemTotal" => &mut total,
            b"MemAvailable" => &mut available,
            b"SwapTotal" => &mut swap_total,
            b"SwapFree" => &mut swap_free,
            _ => continue,
        };
        *slot = kilobytes(&line[colon + 1..]).map(|kb| kb.saturating_mul(1024));
    }
    let (Some(total), Some(available)) = (total, available) else {
        bail!(
            "{PATH} lacks MemTotal or MemAvailable, or they are not numbers of kB \
             (MemAvailable needs Linux 3.14 or later)"
        );
    };
    Ok(MemInfo {
        total,
        available,
        swap: swap_total.zip(swap_free),
    })
}

/// `   24684096 kB` → 24684096.
fn kilobytes(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    let digits = value.strip_suffix(b" kB").unwrap_or(value).trim_ascii_end();
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &[u8] = b"MemTotal:       24684096 kB\nMemFree:        12872336 kB\n\
MemAvailable:   22110548 kB\nBuffers:          345192 kB\nSwapCached:            0 kB\n\
SwapTotal:       2097148 kB\nSwapFree:        2000000 kB\nHugePages_Total:       0\n\
Hugepagesize:       2048 kB\n";

    #[test]
    fn reads_the_four_numbers_in_bytes() {
        assert_eq!(
            parse(MEMINFO).unwrap(),
            MemInfo {
                total: 24684096 * 1024,
                available: 22110548 * 1024,
                swap: Some((2097148 * 1024, 2000000 * 1024)),
            }
        );
    }

    #[test]
    fn no_swap_lines_is_no_swap_but_no_available_is_an_error() {
        let no_swap = b"MemTotal: 1000 kB\nMemAvailable: 500 kB\n";
        assert_eq!(parse(no_swap).unwrap().swap, None);
        let old_kernel = b"MemTotal: 1000 kB\nMemFree: 500 kB\n";
        let err = parse(old_kernel).unwrap_err().to_string();
        assert!(err.contains("MemAvailable"), "{err}");
        assert!(parse(b"MemTotal: x kB\nMemAvailable: 500 kB\n").is_err());
    }

    #[test]
    fn agrees_with_psutil_on_this_host() {
        let ours = Reader::new().read().unwrap();
        let vm = psutil::memory::virtual_memory().unwrap();
        let swap = psutil::memory::swap_memory().unwrap();
        assert_eq!(ours.total, vm.total());
        assert_eq!(ours.swap.map(|(total, _)| total), Some(swap.total()));
        // Read at different moments: only roughly equal.
        let close = |a: u64, b: u64| a.abs_diff(b) < 64 * 1024 * 1024;
        assert!(close(ours.available, vm.available()), "{ours:?} {vm:?}");
        let (total, free) = ours.swap.unwrap();
        assert!(close(total - free, swap.used()), "{ours:?} {swap:?}");
    }

    #[test]
    fn the_kept_file_reads_afresh() {
        let mut reader = Reader::new();
        let first = reader.read().unwrap();
        let second = reader.read().unwrap();
        assert_eq!(first.total, second.total);
        assert!(second.available > 0);
    }
}

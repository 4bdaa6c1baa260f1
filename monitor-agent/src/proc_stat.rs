//! Reading `/proc/<pid>/stat` for the per-process pass: only the fields a sample needs (name,
//! CPU ticks, start time, RSS), each process's file kept open from one sample to the next.
//!
//! psutil's `procfs_stat` does the same job with `read_to_string` — a `statx` and about five
//! `read`s, since /proc files report size 0 — and parses all 52 fields into Strings and
//! Durations. Over every process, every sample, that was most of the agent's CPU time
//! (2.8 ms per sample on a 116-process host), so this one piece reads /proc itself.
//! psutil still lists the pids.
//!
//! Opening and closing the file (the kernel's path walk through /proc and the file's
//! teardown) then cost about as much as reading it: a third of a sample's CPU time, 80 processes,
//! 2026-11-28. So a process's file stays open and is read again with `pread` at offset 0,
//! which makes procfs write it afresh. An open file belongs to its process, not to its pid:
//! once that process has exited, reading fails (ESRCH) even when the pid has been reused, and
//! the reader then opens the pid anew. At most [`MAX_KEPT`] files stay open, because each holds
//! a 4 KiB kernel buffer: that bounds the kernel memory to about 1.2 MiB and keeps the agent far
//! below the usual limit of 1,024 open files. Processes beyond that are opened every pass.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;

/// How many `/proc/<pid>/stat` files stay open between passes.
pub const MAX_KEPT: usize = 256;

/// The fields of one process the sample needs, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat<'a> {
    /// `comm`, as the kernel writes it (not always UTF-8).
    pub name: &'a [u8],
    /// utime + stime, in clock ticks.
    pub busy_ticks: u64,
    /// Start time after boot, in clock ticks: with the pid, identifies the process.
    pub start_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: i64,
}

/// Reads one pass over the processes at a time, keeping files open across passes and its
/// buffers across processes.
#[derive(Debug)]
pub struct Reader {
    /// Files read in the previous pass, by pid.
    kept: HashMap<u32, File>,
    /// Files read so far in this pass.
    next: HashMap<u32, File>,
    /// At most this many files stay open ([`MAX_KEPT`]).
    max_kept: usize,
    path: String,
    buf: Vec<u8>,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::keeping(MAX_KEPT)
    }

    fn keeping(max_kept: usize) -> Reader {
        Reader {
            kept: HashMap::new(),
            next: HashMap::new(),
            max_kept,
            path: String::with_capacity(32),
            buf: vec![0; 4096],
        }
    }

    /// `None` when the process is gone (or unreadable, which is the same to the sample).
    pub fn read(&mut self, pid: u32) -> Option<ProcStat<'_>> {
        let n = match self.kept.remove(&pid) {
            Some(file) => match file.read_at(&mut self.buf, 0) {
                Ok(n) if n > 0 => {
                    self.next.insert(pid, file);
                    n
                }
                // That process exited; the pid may be another one's by now.
                _ => self.open(pid)?,
            },
            None => self.open(pid)?,
        };
        parse(&self.buf[..n])
    }

    /// Ends a pass: closes the files of the processes it did not read, which have exited.
    pub fn end_pass(&mut self) {
        self.kept.clear();
        std::mem::swap(&mut self.kept, &mut self.next);
    }

    /// How many files are open now.
    pub fn open_files(&self) -> usize {
        self.kept.len() + self.next.len()
    }

    fn open(&mut self, pid: u32) -> Option<usize> {
        use std::fmt::Write as _;
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/stat");
        let file = File::open(&self.path).ok()?;
        // The whole line fits in one read: a name of at most 64 bytes and 52 numbers.
        let n = file.read_at(&mut self.buf, 0).ok()?;
        if self.next.len() < self.max_kept {
            self.next.insert(pid, file);
        }
        Some(n)
    }
}

/// Parses `pid (name) state ppid …`; the name may hold spaces and parentheses, so it ends at
/// the last `)`.
fn parse(line: &[u8]) -> Option<ProcStat<'_>> {
    let open = line.iter().position(|&b| b == b'(')?;
    let close = line.iter().rposition(|&b| b == b')')?;
    let name = line.get(open + 1..close)?;
    // Fields after the name, counted from 0 = state (field 3 of proc(5)).
    let mut fields = line
        .get(close + 2..)?
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let mut nth = |skip: usize| fields.nth(skip);
    let utime = number(nth(11)?)?; // field 14
    let stime = number(nth(0)?)?; // field 15
    let start_ticks = number(nth(6)?)?; // field 22
    let rss_pages = number(nth(1)?)?; // field 24
    Some(ProcStat {
        name,
        busy_ticks: utime + stime,
        start_ticks,
        rss_pages: i64::try_from(rss_pages).ok()?,
    })
}

/// A decimal number of /proc; the last field of the line carries the newline.
fn number(field: &[u8]) -> Option<u64> {
    let digits = field.strip_suffix(b"\n").unwrap_or(field);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))?
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A stat line with the given name: utime 71, stime 29, start 5555, RSS 321 pages.
    fn line(name: &str) -> Vec<u8> {
        format!(
            "1234 ({name}) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
             71 29 0 0 20 0 1 0 5555 12345678 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        )
        .into_bytes()
    }

    #[test]
    fn parses_the_fields_by_position_past_a_tricky_name() {
        for name in [
            "my (odd) name",
            "(sd-pam)",
            "a) b",
            "a b  c",
            ")",
            "",
            "kworker/0:0H-events_highpri",
        ] {
            let line = line(name);
            assert_eq!(
                parse(&line),
                Some(ProcStat {
                    name: name.as_bytes(),
                    busy_ticks: 100,
                    start_ticks: 5555,
                    rss_pages: 321,
                }),
                "{name:?}"
            );
        }
    }

    #[test]
    fn refuses_cut_or_malformed_lines() {
        assert_eq!(parse(b"1234 (cut"), None);
        assert_eq!(parse(b"1234 (short) S 1 2 3"), None);
        let bad = String::from_utf8(line("x"))
            .unwrap()
            .replace(" 71 ", " 7x ");
        assert_eq!(parse(bad.as_bytes()), None);
        let negative = String::from_utf8(line("x"))
            .unwrap()
            .replace(" 321 ", " -1 ");
        assert_eq!(parse(negative.as_bytes()), None);
    }

    #[test]
    fn the_last_field_may_carry_the_newline() {
        assert_eq!(number(b"42\n"), Some(42));
        assert_eq!(number(b"42"), Some(42));
        assert_eq!(number(b"\n"), None);
        assert_eq!(number(b"18446744073709551616"), None);
    }

    #[test]
    fn agrees_with_psutil_for_this_process() {
        let me = std::process::id();
        let mut reader = Reader::new();
        let ours = reader.read(me).unwrap();
        let theirs = psutil::process::os::linux::procfs_stat(me).unwrap();
        assert_eq!(ours.name, theirs.comm.as_bytes());
        assert_eq!(u128::from(ours.start_ticks), theirs.starttime_ticks);
        assert!(ours.busy_ticks <= theirs.utime_ticks + theirs.stime_ticks);
        assert!(ours.rss_pages > 0);
    }

    #[test]
    fn a_kept_file_is_read_afresh_and_closed_once_its_process_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (pid, me) = (child.id(), std::process::id());
        let mut reader = Reader::new();
        assert_eq!(reader.read(pid).unwrap().name, b"sleep");
        let before = reader.read(me).unwrap().busy_ticks;
        reader.end_pass();
        assert_eq!(reader.open_files(), 2);

        // Burn CPU between two reads of this process's kept file: the second sees more.
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            std::hint::black_box(0);
        }
        assert!(reader.read(me).unwrap().busy_ticks > before);
        reader.end_pass();
        // The pass that did not read the sleeper closed its file.
        assert_eq!(reader.open_files(), 1);

        assert!(reader.read(pid).is_some());
        reader.end_pass();
        child.kill().unwrap();
        child.wait().unwrap();
        // Reaped: its kept file fails, and opening the pid anew finds nothing.
        assert_eq!(reader.read(pid), None);
        reader.end_pass();
        assert_eq!(reader.open_files(), 0);
    }

    #[test]
    fn at_most_max_kept_files_stay_open() {
        let mut reader = Reader::keeping(2);
        for pid in [1, std::process::id(), std::os::unix::process::parent_id()] {
            assert!(reader.read(pid).is_some(), "{pid}");
        }
        reader.end_pass();
        assert_eq!(reader.open_files(), 2);
        // The one left out is still read, by opening it each pass.
        for pid in [1, std::process::id(), std::os::unix::process::parent_id()] {
            assert!(reader.read(pid).is_some(), "{pid}");
        }
        assert_eq!(reader.open_files(), 2);
    }
}

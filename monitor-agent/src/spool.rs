//! The spool: samples monitord has not taken yet, kept on disk in order, so an outage or a
//! restart of the agent loses nothing that fits the bounds.
//!
//! Layout in the state directory: `spool` holds one sample's JSON per line, appended at the end;
//! `spool.head` holds the byte offset of the oldest unsent line. Sending the oldest sample only
//! moves the head (a tiny file replaced by rename), so draining 10,000 samples never rewrites
//! the data; the file is compacted once the sent part is large, and truncated when empty.
//! Nothing is held in memory but counters: the agent's RSS does not grow with the spool.
//!
//! Crash safety: a torn last line is cut off on open; a head that points nowhere sensible
//! restarts from the beginning, which at worst resends samples that monitord already has —
//! harmless, since `(instance, seq)` is idempotent there.
//!
//! Not here: when to send, or what a response means.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use monitor_core::agent::file;

/// The default bounds: whichever is reached first drops the oldest sample.
pub const MAX_SAMPLES: usize = 10_000;
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Sent bytes before the head that trigger a compaction (when they are also half the file).
const COMPACT_AT: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    head_path: PathBuf,
    /// Offset of the oldest unsent line.
    head: u64,
    /// Length of the file; everything from `head` to here is pending.
    end: u64,
    count: usize,
    max_samples: usize,
    max_bytes: u64,
}

impl Spool {
    /// Opens (or starts) the spool in `dir`, repairing what a crash may have left.
    pub fn open(dir: &Path, max_samples: usize, max_bytes: u64) -> io::Result<Spool> {
        let path = dir.join(file::SPOOL);
        let head_path = dir.join(file::SPOOL_HEAD);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        let len = file.metadata()?.len();
        let mut head = fs::read_to_string(&head_path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if head > len || (head > 0 && byte_at(&file, head - 1)? != b'\n') {
            head = 0;
        }
        let (count, end) = scan(&file, head)?;
        if end < len {
            file.set_len(end)?; // a torn append
        }
        let spool = Spool {
            path,
            head_path,
            head,
            end,
            count,
            max_samples: max_samples.max(1),
            max_bytes,
        };
        spool.write_head()?;
        Ok(spool)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of pending samples.
    pub fn bytes(&self) -> u64 {
        self.end - self.head
    }

    /// Appends a sample (one line of JSON), first dropping the oldest ones if the bounds
    /// require; returns how many were dropped.
    pub fn push(&mut self, json: &str) -> io::Result<usize> {
        debug_assert!(!json.contains('\n'));
        let size = json.len() as u64 + 1;
        let mut dropped = 0;
        while self.count > 0
            && (self.count + 1 > self.max_samples || self.bytes() + size > self.max_bytes)
        {
            self.pop_front()?;
            dropped += 1;
        }
        let mut file = OpenOptions::new().append(true).open(&self.path)?;
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        // One write per line, and no fsync: a restart of the agent keeps what the page
        // cache holds; a power cut may cost the last few samples, which is cheaper than
        // a disk flush every interval on every host.
        file.write_all(&line)?;
        self.end += size;
        self.count += 1;
        Ok(dropped)
    }

    /// The oldest pending sample.
    pub fn front(&self) -> io::Result<Option<String>> {
        if self.count == 0 {
            return Ok(None);
        }
        let mut line = self.read_front()?;
        line.pop(); // the newline
        String::from_utf8(line)
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "spool line is not UTF-8"))
    }

    /// Forgets the oldest pending sample (sent, or refused for good).
    pub fn pop_front(&mut self) -> io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let len = self.read_front()?.len() as u64;
        self.head += len;
        self.count -= 1;
        if self.count == 0 {
            File::options().write(true).open(&self.path)?.set_len(0)?;
            self.head = 0;
            self.end = 0;
        } else if self.head >= COMPACT_AT && self.head * 2 >= self.end {
            self.compact()?;
        }
        self.write_head()
    }

    fn read_front(&self) -> io::Result<Vec<u8>> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.head))?;
        let mut line = Vec::new();
        BufReader::new(file).read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "spool changed under the agent (is another agent using this state directory?)",
            ));
        }
        Ok(line)
    }

    /// Copies the pending part to a fresh file. The head is set to 0 before the rename: a crash
    /// in between resends from the old file's start, which monitord deduplicates.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("new");
        let mut src = File::open(&self.path)?;
        src.seek(SeekFrom::Start(self.head))?;
        let mut dst = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        io::copy(&mut src.take(self.end - self.head), &mut dst)?;
        dst.sync_data()?;
        self.end -= self.head;
        self.head = 0;
        self.write_head()?;
        fs::rename(&tmp, &self.path)
    }

    fn write_head(&self) -> io::Result<()> {
        let tmp = self.head_path.with_extension("head.tmp");
        fs::write(&tmp, format!("{}\n", self.head))?;
        fs::rename(&tmp, &self.head_path)
    }
}

fn byte_at(file: &File, offset: u64) -> io::Result<u8> {
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0])
}

/// Counts whole lines from `head`; returns the count and where the last whole line ends.
fn scan(file: &File, head: u64) -> io::Result<(usize, u64)> {
    let mut f = file;
    f.seek(SeekFrom::Start(head))?;
    let mut reader = BufReader::new(f);
    let (mut count, mut end) = (0, head);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok((count, end));
        }
        count += 1;
        end += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("monitor-agent-spool-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn drain(spool: &mut Spool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = spool.front().unwrap() {
            out.push(line);
            spool.pop_front().unwrap();
        }
        out
    }

    #[test]
    fn first_in_first_out_across_reopen() {
        let dir = temp_dir("fifo");
        let mut spool = Spool::open(&dir, 100, MAX_BYTES).unwrap();
        for i in 0..5 {
            spool.push(&format!("{{\"seq\":{i}}}")).unwrap();
        }
        spool.pop_front().unwrap();
        drop(spool);
        let mut spool = Spool::open(&dir, 100, MAX_BYTES).unwrap();
        assert_eq!(spool.len(), 4);
        spool.push("{\"seq\":5}").unwrap();
        let got = drain(&mut spool);
        let want: Vec<String> = (1..=5).map(|i| format!("{{\"seq\":{i}}}")).collect();
        assert_eq!(got, want);
        assert!(spool.is_empty());
        assert_eq!(fs::metadata(dir.join("spool")).unwrap().len(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bounds_drop_the_oldest() {
        let dir = temp_dir("bounds");
        let mut spool = Spool::open(&dir, 3, MAX_BYTES).unwrap();
        let mut dropped = 0;
        for i in 0..5 {
            dropped += spool.push(&format!("s{i}")).unwrap();
        }
        assert_eq!(dropped, 2);
        assert_eq!(drain(&mut spool), ["s2", "s3", "s4"]);

        // By bytes: each line is 10 bytes with its newline; 35 bytes hold three.
        let mut spool = Spool::open(&dir, 100, 35).unwrap();
        for i in 0..6 {
            spool.push(&format!("sample-{i:02}")[..9]).unwrap();
        }
        assert_eq!(spool.len(), 3);
        assert!(spool.bytes() <= 35);
        assert_eq!(drain(&mut spool), ["sample-03", "sample-04", "sample-05"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_append_and_a_bad_head_are_repaired() {
        let dir = temp_dir("repair");
        fs::write(dir.join("spool"), "a\nb\nc\npartial").unwrap();
        fs::write(dir.join("spool.head"), "3\n").unwrap(); // mid-line: untrusted
        let mut spool = Spool::open(&dir, 100, MAX_BYTES).unwrap();
        assert_eq!(drain(&mut spool), ["a", "b", "c"]);

        fs::write(dir.join("spool"), "a\nb\nc\n").unwrap();
        fs::write(dir.join("spool.head"), "2\n").unwrap(); // after "a\n": trusted
        let mut spool = Spool::open(&dir, 100, MAX_BYTES).unwrap();
        assert_eq!(drain(&mut spool), ["b", "c"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn compaction_keeps_order_and_shrinks_the_file() {
        let dir = temp_dir("compact");
        let mut spool = Spool::open(&dir, MAX_SAMPLES, MAX_BYTES).unwrap();
        let line = "x".repeat(1000);
        for i in 0..3000 {
            spool.push(&format!("{i:05}{line}")).unwrap();
        }
        for _ in 0..2000 {
            spool.pop_front().unwrap();
        }
        let size = fs::metadata(dir.join("spool")).unwrap().len();
        assert!(size < 2_000_000, "not compacted: {size} bytes");
        drop(spool);
        let mut spool = Spool::open(&dir, MAX_SAMPLES, MAX_BYTES).unwrap();
        let rest = drain(&mut spool);
        assert_eq!(rest.len(), 1000);
        assert!(rest[0].starts_with("02000") && rest[999].starts_with("02999"));
        fs::remove_dir_all(dir).unwrap();
    }
}

//! The spill: append-only JSONL segment files in `HOLDER_STATE_DIR/spill/`, one envelope per line,
//! holding the oldest undelivered envelopes while the edge is down or slow. Each spill writes a new
//! segment (never appending to one being read back), a segment is deleted only once all of it was
//! delivered, and past `max_bytes` the oldest segments are dropped and reported as gaps. After a kill,
//! the segments found on disk are sent first; a torn last line (killed mid-write) is ignored, which is
//! safe because the durable cursor only moves after a write completes.

use super::batcher::Entry;
use std::{
    collections::VecDeque,
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub no: u64,
    pub first_id: u64,
    pub last_id: u64,
    pub count: usize,
    pub bytes: u64,
}

pub struct Spill {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    total_bytes: u64,
    max_bytes: u64,
    next_no: u64,
}

impl Spill {
    /// Opens (creating) the spill folder and indexes the segments already there, oldest first.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spill> {
        fs::create_dir_all(dir)?;
        let mut found = vec![];
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(no) = name
                .strip_prefix("segment-")
                .and_then(|s| s.strip_suffix(".jsonl"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                found.push(no);
            }
        }
        found.sort_unstable();
        let mut spill = Spill {
            dir: dir.to_path_buf(),
            segments: VecDeque::new(),
            total_bytes: 0,
            max_bytes,
            next_no: found.last().map_or(1, |n| n + 1),
        };
        for no in found {
            let entries = spill.read(no)?;
            match (entries.first(), entries.last()) {
                (Some(first), Some(last)) => {
                    let bytes = fs::metadata(spill.path(no))?.len();
                    spill.total_bytes += bytes;
                    spill.segments.push_back(Segment {
                        no,
                        first_id: first.id,
                        last_id: last.id,
                        count: entries.len(),
                        bytes,
                    });
                }
                _ => fs::remove_file(spill.path(no))?,
            }
        }
        Ok(spill)
    }

    fn path(&self, no: u64) -> PathBuf {
        self.dir.join(format!("segment-{no:010}.jsonl"))
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Envelopes in all segments.
    pub fn count(&self) -> usize {
        self.segments.iter().map(|s| s.count).sum()
    }

    pub fn oldest(&self) -> Option<&Segment> {
        self.segments.front()
    }

    /// Writes `entries` (in order) as a new segment. Returns once the bytes are in the file.
    pub fn append<'a>(&mut self, entries: impl IntoIterator<Item = &'a Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let (mut first, mut last, mut count) = (None, 0, 0);
        for e in entries {
            first.get_or_insert(e.id);
            last = e.id;
            count += 1;
            buf.extend_from_slice(&e.json);
            buf.push(b'\n');
        }
        let Some(first_id) = first else {
            return Ok(());
        };
        let no = self.next_no;
        let path = self.path(no);
        let mut f = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        if let Err(e) = f.write_all(&buf) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.next_no += 1;
        self.total_bytes += buf.len() as u64;
        self.segments.push_back(Segment {
            no,
            first_id,
            last_id: last,
            count,
            bytes: buf.len() as u64,
        });
        Ok(())
    }

    /// Reads a segment back; a torn or unreadable line ends it.
    pub fn read(&self, no: u64) -> io::Result<Vec<Entry>> {
        let data = fs::read(self.path(no))?;
        let mut out = vec![];
        for line in data.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match Entry::from_line(line) {
                Ok(e) => out.push(e),
                Err(e) => {
                    tracing::warn!(segment = no, error = %e, "spill segment ends in a torn line; ignoring the rest");
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Deletes a segment whose envelopes were all delivered (or dropped).
    pub fn remove(&mut self, no: u64) -> io::Result<()> {
        if let Some(pos) = self.segments.iter().position(|s| s.no == no) {
            let seg = self.segments.remove(pos).expect("position is in range");
            self.total_bytes -= seg.bytes;
        }
        match fs::remove_file(self.path(no)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Drops the oldest segments until `incoming` more bytes fit within the bound; returns what
    /// was dropped.
    pub fn make_room(&mut self, incoming: u64) -> io::Result<Vec<Segment>> {
        let mut dropped = vec![];
        while self.total_bytes + incoming > self.max_bytes {
            let Some(seg) = self.segments.front().cloned() else {
                break;
            };
            self.remove(seg.no)?;
            dropped.push(seg);
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::batcher::tests::entry;

    #[test]
    fn segments_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::open(dir.path(), 1 << 20).unwrap();
        let a: Vec<Entry> = (1..=3).map(entry).collect();
        let b: Vec<Entry> = (4..=5).map(entry).collect();
        s.append(&a).unwrap();
        s.append(&b).unwrap();
        assert_eq!(s.count(), 5);
        drop(s);

        let mut s = Spill::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.count(), 5);
        let oldest = s.oldest().unwrap().clone();
        assert_eq!((oldest.first_id, oldest.last_id), (1, 3));
        let back = s.read(oldest.no).unwrap();
        assert_eq!(back.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(back[1].json, a[1].json);
        s.remove(oldest.no).unwrap();
        assert_eq!(s.oldest().unwrap().first_id, 4);
    }

    #[test]
    fn a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::open(dir.path(), 1 << 20).unwrap();
        s.append(&[entry(1), entry(2)]).unwrap();
        let path = s.path(s.oldest().unwrap().no);
        let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(br#"{"version":"1.0","id":3,"sha"#).unwrap();
        drop(s);
        let s = Spill::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn over_the_bound_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let one = entry(1).json.len() as u64 + 1;
        let mut s = Spill::open(dir.path(), one * 4).unwrap();
        s.append(&[entry(1), entry(2)]).unwrap();
        s.append(&[entry(3), entry(4)]).unwrap();
        assert!(s.make_room(0).unwrap().is_empty());
        s.append(&[entry(5)]).unwrap();
        let dropped = s.make_room(0).unwrap();
        assert_eq!(dropped.len(), 1);
        assert_eq!((dropped[0].first_id, dropped[0].last_id), (1, 2));
        assert_eq!(s.count(), 3);
    }
}

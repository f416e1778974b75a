//! The forwarder's ordered buffer and the ingest batch encoding. Each envelope is encoded once, by
//! the session before it goes on the bus, and a batch body is those bytes joined, so a retried or split batch never
//! re-encodes anything and `d` stays the exact bytes Discord sent.
//!
//! Order is kept across three places, oldest first: `front` (a spill segment read back), the other
//! spill segments on disk, then `memory`. Everything on disk is older than everything in memory,
//! because a spill always moves the whole of memory, in order, into a new segment.

use super::spill::Spill;
use crate::bus::Item;
use bytes::Bytes;
use contracts::{GatewayState, HolderGap, ShardState};
use serde::Deserialize;
use std::{collections::VecDeque, io, sync::Arc, time::Instant};

/// One encoded envelope.
#[derive(Clone, Debug)]
pub struct Entry {
    pub shard: u32,
    pub id: u64,
    pub seq: u64,
    pub session_id: Arc<str>,
    pub kind: Arc<str>,
    /// The envelope, shared with the bus item (and its arena block), or read back from a spill.
    pub json: Bytes,
    /// When the dispatch came off the socket; unknown for envelopes read back from a spill.
    pub received: Option<Instant>,
}

impl Entry {
    pub fn from_dispatch(d: Item) -> Entry {
        Entry {
            shard: d.shard,
            id: d.id,
            seq: d.seq,
            session_id: d.session_id.clone(),
            kind: d.kind.clone(),
            received: Some(d.received),
            // Encoded once, by the session (`gateway/envelope.rs`); shared, not copied.
            json: d.json.clone(),
        }
    }

    /// Parses one spill line (an envelope as JSON).
    pub fn from_line(line: &[u8]) -> Result<Entry, serde_json::Error> {
        #[derive(Deserialize)]
        struct Head {
            shard: u32,
            id: u64,
            seq: u64,
            session_id: String,
            #[serde(rename = "type")]
            kind: String,
        }
        let head: Head = serde_json::from_slice(line)?;
        Ok(Entry {
            shard: head.shard,
            id: head.id,
            seq: head.seq,
            session_id: head.session_id.into(),
            kind: head.kind.into(),
            json: Bytes::copy_from_slice(line),
            received: None,
        })
    }
}

/// The batch-level fields.
pub struct BatchMeta<'a> {
    pub holder_id: &'a str,
    pub epoch: &'a str,
    pub batch: u64,
    pub gateway: GatewayState,
    /// Every shard's state (`gateway` is the least ready of them).
    pub shards: &'a [ShardState],
}

/// Encodes an `IngestBatch` (contracts) from pre-encoded envelopes.
pub fn encode_batch<'a, I>(meta: &BatchMeta<'_>, entries: I, gaps: &[HolderGap]) -> Vec<u8>
where
    I: IntoIterator<Item = &'a Entry>,
    I::IntoIter: Clone,
{
    let entries = entries.into_iter();
    // Sized once: growing a body of hundreds of envelopes re-copied it several times.
    let size: usize = entries.clone().map(|e| e.json.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 512 + gaps.len() * 96);
    out.extend_from_slice(br#"{"version":"1.0","holder_id":"#);
    push_json(&mut out, &meta.holder_id);
    out.extend_from_slice(br#","epoch":"#);
    push_json(&mut out, &meta.epoch);
    out.extend_from_slice(br#","batch":"#);
    out.extend_from_slice(meta.batch.to_string().as_bytes());
    out.extend_from_slice(br#","envelopes":["#);
    for (i, e) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&e.json);
    }
    out.push(b']');
    if !gaps.is_empty() {
        out.extend_from_slice(br#","gaps":"#);
        push_json(&mut out, &gaps);
    }
    out.extend_from_slice(br#","gateway":"#);
    push_json(&mut out, &meta.gateway);
    if !meta.shards.is_empty() {
        out.extend_from_slice(br#","shards":"#);
        push_json(&mut out, meta.shards);
    }
    out.push(b'}');
    out
}

fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("strings and plain structs always serialize");
}

/// Where the next batch comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Front,
    Memory,
}

/// A batch taken from the head of the buffer (not yet removed).
#[derive(Clone, Copy, Debug)]
pub struct Take {
    pub source: Source,
    pub n: usize,
}

/// The last envelope of one shard made durable by a commit or a spill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    pub shard: u32,
    pub session_id: Arc<str>,
    pub seq: u64,
    pub id: u64,
}

/// Keeps `e` as its shard's last envelope in `last` (a handful of shards: a linear scan).
fn keep_last(last: &mut Vec<Durable>, e: &Entry) {
    match last.iter_mut().find(|d| d.shard == e.shard) {
        Some(d) => *d = Durable::of(e),
        None => last.push(Durable::of(e)),
    }
}

impl Durable {
    fn of(e: &Entry) -> Durable {
        Durable {
            shard: e.shard,
            session_id: e.session_id.clone(),
            seq: e.seq,
            id: e.id,
        }
    }
}

pub struct Buffer {
    front: VecDeque<Entry>,
    front_segment: Option<u64>,
    spill: Spill,
    memory: VecDeque<Entry>,
    memory_bytes: usize,
    memory_limit: usize,
}

impl Buffer {
    pub fn new(spill: Spill, memory_limit: usize) -> Buffer {
        Buffer {
            front: VecDeque::new(),
            front_segment: None,
            spill,
            memory: VecDeque::new(),
            memory_bytes: 0,
            memory_limit,
        }
    }

    pub fn push(&mut self, e: Entry) {
        self.memory_bytes += e.json.len();
        self.memory.push_back(e);
    }

    pub fn is_empty(&self) -> bool {
        self.front.is_empty() && self.spill.is_empty() && self.memory.is_empty()
    }

    /// Envelopes waiting, wherever they are.
    pub fn depth(&self) -> usize {
        let front_on_disk = self
            .front_segment
            .and_then(|_| self.spill.oldest())
            .map_or(0, |s| s.count);
        self.front.len() + self.spill.count() - front_on_disk + self.memory.len()
    }

    pub fn spill_bytes(&self) -> u64 {
        self.spill.total_bytes()
    }

    /// When everything waiting is in memory: how many, and when the oldest came off the socket.
    pub fn memory_head(&self) -> Option<(usize, Option<Instant>)> {
        if !self.front.is_empty() || !self.spill.is_empty() {
            return None;
        }
        let oldest = self.memory.front()?;
        Some((self.memory.len(), oldest.received))
    }

    pub fn over_memory_limit(&self) -> bool {
        self.memory_bytes > self.memory_limit
    }

    /// Picks the next batch: at most `max_items` envelopes and about `max_bytes` (always at least
    /// one envelope when any is waiting), from the oldest place that has any.
    pub fn take(&mut self, max_items: usize, max_bytes: usize) -> io::Result<Take> {
        if self.front.is_empty() {
            if let Some(seg) = self.spill.oldest().cloned() {
                self.front = self.spill.read(seg.no)?.into();
                self.front_segment = Some(seg.no);
                if self.front.is_empty() {
                    // Nothing readable in it: it is done.
                    self.spill.remove(seg.no)?;
                    self.front_segment = None;
                    return self.take(max_items, max_bytes);
                }
            }
        }
        let (source, queue) = if self.front.is_empty() {
            (Source::Memory, &self.memory)
        } else {
            (Source::Front, &self.front)
        };
        let mut n = 0;
        let mut bytes = 0;
        for e in queue.iter().take(max_items.max(1)) {
            if n > 0 && bytes + e.json.len() > max_bytes {
                break;
            }
            bytes += e.json.len() + 1;
            n += 1;
        }
        Ok(Take { source, n })
    }

    pub fn entries(&self, t: Take) -> impl Iterator<Item = &Entry> + Clone {
        let q = match t.source {
            Source::Front => &self.front,
            Source::Memory => &self.memory,
        };
        q.iter().take(t.n)
    }

    /// Removes a delivered (or given up) batch; returns each shard's last envelope of it.
    pub fn commit(&mut self, t: Take) -> io::Result<Vec<Durable>> {
        let mut last = Vec::new();
        for _ in 0..t.n {
            let e = match t.source {
                Source::Front => self.front.pop_front(),
                Source::Memory => self.memory.pop_front().inspect(|e| {
                    self.memory_bytes -= e.json.len();
                }),
            };
            if let Some(e) = &e {
                keep_last(&mut last, e);
            }
        }
        if t.source == Source::Front && self.front.is_empty() {
            if let Some(no) = self.front_segment.take() {
                self.spill.remove(no)?;
            }
        }
        Ok(last)
    }

    /// Moves all of memory into a new spill segment, dropping the oldest envelopes first (whole
    /// segments, then from memory itself) so the spill stays within its bound. Returns each
    /// shard's last envelope now on disk, and gaps for whatever was dropped. If the disk refuses, the oldest
    /// half of memory is dropped instead (also a gap).
    pub fn spill_memory(&mut self) -> (Vec<Durable>, Vec<HolderGap>) {
        let mut gaps = vec![];
        let mut last = Vec::new();
        for e in &self.memory {
            keep_last(&mut last, e);
        }
        if last.is_empty() {
            return (last, gaps);
        }
        // Room for what memory holds (one newline per envelope on disk).
        let incoming = (self.memory_bytes + self.memory.len()) as u64;
        match self.spill.make_room(incoming.min(self.spill.max_bytes())) {
            Ok(dropped) => {
                for seg in dropped {
                    let mut from = seg.first_id;
                    if self.front_segment == Some(seg.no) {
                        // Part of it may already be delivered: the gap starts at what's left.
                        from = self.front.front().map_or(seg.last_id, |e| e.id);
                        self.front.clear();
                        self.front_segment = None;
                    }
                    gaps.push(overflow_gap(from, seg.last_id));
                }
            }
            Err(e) => tracing::error!(error = %e, "could not drop old spill segments"),
        }
        // Memory alone larger than the whole bound: its oldest go too.
        let room = self
            .spill
            .max_bytes()
            .saturating_sub(self.spill.total_bytes());
        let mut range: Option<(u64, u64)> = None;
        while (self.memory_bytes + self.memory.len()) as u64 > room && self.memory.len() > 1 {
            let e = self.memory.pop_front().expect("memory is not empty");
            self.memory_bytes -= e.json.len();
            range = Some((range.map_or(e.id, |r| r.0), e.id));
        }
        if let Some((from, to)) = range {
            gaps.push(overflow_gap(from, to));
        }
        match self.spill.append(self.memory.iter()) {
            Ok(()) => {
                self.memory.clear();
                self.memory_bytes = 0;
                (last, gaps)
            }
            Err(e) => {
                tracing::error!(error = %e, "could not spill to HOLDER_STATE_DIR; dropping the oldest buffered envelopes");
                let drop_n = self.memory.len().div_ceil(2);
                let from = self.memory.front().map(|e| e.id).unwrap_or_default();
                let mut to = from;
                for _ in 0..drop_n {
                    if let Some(e) = self.memory.pop_front() {
                        self.memory_bytes -= e.json.len();
                        to = e.id;
                    }
                }
                gaps.push(HolderGap {
                    from_id: from,
                    to_id: to,
                    reason: "holder buffer overflow (spill unavailable)".into(),
                    shard: None,
                });
                (Vec::new(), gaps)
            }
        }
    }
}

fn overflow_gap(from_id: u64, to_id: u64) -> HolderGap {
    HolderGap {
        from_id,
        to_id,
        reason: "holder buffer overflow while the edge was unreachable".into(),
        shard: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use contracts::IngestBatch;

    pub fn entry(id: u64) -> Entry {
        let json = format!(
            r#"{{"version":"1.0","id":{id},"shard":0,"session_id":"s","seq":{id},"type":"MESSAGE_CREATE","received_at":1,"d":{{"n": {id} ,"x":"\u00e9"}}}}"#
        );
        Entry::from_line(json.as_bytes()).unwrap()
    }

    fn meta() -> BatchMeta<'static> {
        BatchMeta {
            holder_id: "h\"1",
            epoch: "e",
            batch: 3,
            gateway: GatewayState::Ready,
            shards: &[],
        }
    }

    #[test]
    fn batches_are_valid_contract_json_with_d_verbatim() {
        let gaps = [HolderGap {
            from_id: 1,
            to_id: 2,
            reason: "r".into(),
            shard: None,
        }];
        let body = encode_batch(&meta(), &[entry(3), entry(4)], &gaps);
        let parsed: IngestBatch = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.holder_id, "h\"1");
        assert_eq!(parsed.envelopes.len(), 2);
        assert_eq!(parsed.envelopes[1].d.get(), r#"{"n": 4 ,"x":"\u00e9"}"#);
        assert_eq!(parsed.gaps, gaps);
        assert_eq!(parsed.gateway, Some(GatewayState::Ready));

        let empty = encode_batch(&meta(), [], &[]);
        let parsed: IngestBatch = serde_json::from_slice(&empty).unwrap();
        assert!(parsed.envelopes.is_empty() && parsed.gaps.is_empty());
    }

    #[test]
    fn take_respects_limits_and_order_across_spill_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path(), 1 << 20).unwrap();
        let mut b = Buffer::new(spill, 1 << 20);
        for id in 1..=5 {
            b.push(entry(id));
        }
        let (durable, gaps) = b.spill_memory();
        assert_eq!(durable.last().unwrap().id, 5);
        assert!(gaps.is_empty());
        for id in 6..=8 {
            b.push(entry(id));
        }
        assert_eq!(b.depth(), 8);
        let mut seen = vec![];
        while !b.is_empty() {
            let t = b.take(2, 1 << 20).unwrap();
            seen.extend(b.entries(t).map(|e| e.id));
            b.commit(t).unwrap();
        }
        assert_eq!(seen, (1..=8).collect::<Vec<_>>());
        assert_eq!(b.spill_bytes(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        // A byte limit smaller than one envelope still makes progress.
        b.push(entry(9));
        b.push(entry(10));
        assert_eq!(b.take(100, 1).unwrap().n, 1);
    }

    #[test]
    fn overflow_drops_the_oldest_with_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let one = entry(10).json.len() as u64 + 1;
        let spill = Spill::open(dir.path(), one * 3).unwrap();
        let mut b = Buffer::new(spill, 0);
        for id in 10..=12 {
            b.push(entry(id));
        }
        assert!(b.over_memory_limit());
        assert!(b.spill_memory().1.is_empty());
        // Start reading the first segment back, deliver one.
        let t = b.take(1, 1 << 20).unwrap();
        b.commit(t).unwrap();
        for id in 13..=14 {
            b.push(entry(id));
        }
        let (durable, gaps) = b.spill_memory();
        assert_eq!(durable.last().unwrap().id, 14);
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].from_id, gaps[0].to_id), (11, 12));
        let t = b.take(10, 1 << 20).unwrap();
        assert_eq!(b.entries(t).map(|e| e.id).collect::<Vec<_>>(), [13, 14]);
    }

    #[test]
    fn memory_larger_than_the_whole_bound_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let one = entry(10).json.len() as u64 + 1;
        let spill = Spill::open(dir.path(), one * 2).unwrap();
        let mut b = Buffer::new(spill, 0);
        for id in 10..=14 {
            b.push(entry(id));
        }
        let (durable, gaps) = b.spill_memory();
        assert_eq!(durable.last().unwrap().id, 14);
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].from_id, gaps[0].to_id), (10, 12));
        let t = b.take(10, 1 << 20).unwrap();
        assert_eq!(b.entries(t).map(|e| e.id).collect::<Vec<_>>(), [13, 14]);
    }
}

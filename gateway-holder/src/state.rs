//! The holder's durable state in `HOLDER_STATE_DIR/state.json`: epoch, the id reservation, the last
//! durable id, each shard's session to RESUME and undelivered gap notices. Written atomically (temp file,
//! fsync, rename) so a SIGKILL at any instant leaves either the old or the new file, never half of one.
//!
//! The durable cursor moves with every delivered batch, and a rename per batch is expensive on
//! ext4 (it forces writeback), so the cursor also lives in `cursor`: per shard, two
//! fixed 128-byte slots (shard `k`'s at offset `k × 256`) written alternately in place, each with
//! a counter and a checksum. A torn or stale slot is ignored; the newer valid one wins and is
//! merged into that shard's session at load.
//!
//! The rules that make "nothing lost, nothing renumbered" hold across a kill:
//! - `session.seq` only advances to dispatches whose envelopes were accepted by the edge or written
//!   to the spill file, so a restarted holder resumes from there and Discord replays the rest.
//! - Within a session an envelope's id is `session.id_offset + seq`, so a replayed dispatch gets the
//!   same id it had before the kill and the edge drops it as a duplicate by `(epoch, shard, id)`.
//! - `id_reserved` is written before any id at or above it is used; a holder that must start a new
//!   session after a restart starts numbering there, above every id the old process could have sent.

use contracts::HolderGap;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, BTreeSet},
    fs, io,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// How many ids one reservation write covers.
pub const RESERVE_CHUNK: u64 = 100_000;
const FILE: &str = "state.json";
const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    pub session_id: String,
    pub resume_url: String,
    /// Every dispatch up to this `s` is delivered or spilled.
    pub seq: u64,
    /// `id = id_offset + seq` for every dispatch of this session.
    pub id_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    pub format: u32,
    pub holder_id: String,
    pub epoch: String,
    /// Every id ever handed out is below this.
    pub id_reserved: u64,
    /// The highest id known delivered or spilled.
    pub last_durable_id: u64,
    /// Files written before shards existed: their one session, read as shard 0 of 1.
    #[serde(default, skip_serializing)]
    session: Option<SavedSession>,
    /// Each shard's session to RESUME, by shard id.
    #[serde(default)]
    pub sessions: BTreeMap<u32, SavedSession>,
    /// The bot's shard count those sessions belong to (a session is only resumable under it).
    #[serde(default)]
    pub shard_count: Option<u32>,
    #[serde(default)]
    pub pending_gaps: Vec<HolderGap>,
}

impl PersistedState {
    fn fresh() -> Self {
        let mut rng = rand::thread_rng();
        PersistedState {
            format: FORMAT,
            holder_id: format!("holder-{:08x}", rng.gen::<u32>()),
            epoch: format!("{:016x}", rng.gen::<u64>()),
            id_reserved: 1,
            last_durable_id: 0,
            session: None,
            sessions: BTreeMap::new(),
            shard_count: None,
            pending_gaps: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

const CURSOR_FILE: &str = "cursor";
const SLOT: usize = 128;

struct Inner {
    state: PersistedState,
    cursor: fs::File,
    /// Per shard: the counter of its newest slot.
    cursor_counter: BTreeMap<u32, u64>,
    /// When the cursor was last written, and the shards whose memory has moved past it since.
    cursor_written: Option<std::time::Instant>,
    cursor_dirty: BTreeSet<u32>,
}

/// The cursor is written at most this often (per accepted batch it was one `pwrite` per event at
/// light traffic, a visible share of the CPU per event). What this leaves unwritten after a
/// SIGKILL is only replayed by Discord on RESUME and dropped by the edge as duplicates.
pub const CURSOR_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// One cursor slot: `counter seq id checksum session_id`, space-padded to [`SLOT`] bytes.
#[derive(Debug, PartialEq, Eq)]
struct CursorRecord {
    counter: u64,
    seq: u64,
    id: u64,
    session_id: String,
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl CursorRecord {
    fn encode(&self) -> Option<[u8; SLOT]> {
        let body = format!(
            "{} {} {} {}",
            self.counter, self.seq, self.id, self.session_id
        );
        let line = format!("{body} {:016x}\n", fnv1a(body.as_bytes()));
        if line.len() > SLOT {
            return None;
        }
        let mut out = [b' '; SLOT];
        out[..line.len()].copy_from_slice(line.as_bytes());
        Some(out)
    }

    fn decode(slot: &[u8]) -> Option<CursorRecord> {
        let text = std::str::from_utf8(slot).ok()?;
        let line = text.split('\n').next()?;
        let (body, sum) = line.rsplit_once(' ')?;
        if u64::from_str_radix(sum, 16).ok()? != fnv1a(body.as_bytes()) {
            return None;
        }
        let mut f = body.splitn(4, ' ');
        Some(CursorRecord {
            counter: f.next()?.parse().ok()?,
            seq: f.next()?.parse().ok()?,
            id: f.next()?.parse().ok()?,
            session_id: f.next()?.to_owned(),
        })
    }
}

/// Shared handle on the persisted state. Session changes and id reservations rewrite (and fsync)
/// `state.json` at once; durable-cursor moves go to the `cursor` slots.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Mutex<Inner>>,
    dir: PathBuf,
    /// `id_reserved` as loaded: a new session in this process numbers from at least here.
    floor: u64,
    /// An exclusive lock on `HOLDER_STATE_DIR/lock` for the life of the process: two holders
    /// sharing one state would hand out the same ids.
    _lock: Arc<fs::File>,
    loaded: bool,
}

impl StateStore {
    /// Opens `dir` (creating it), loading the saved state or making a new epoch.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        fs::create_dir_all(dir).map_err(|e| {
            StateError(format!(
                "HOLDER_STATE_DIR: cannot create {}: {e}",
                dir.display()
            ))
        })?;
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StateError(format!(
                    "HOLDER_STATE_DIR: cannot open {}: {e}",
                    lock_path.display()
                ))
            })?;
        if lock.try_lock().is_err() {
            return Err(StateError(format!(
                "HOLDER_STATE_DIR: {} is in use by another running holder",
                dir.display()
            )));
        }
        let path = dir.join(FILE);
        let (state, loaded) = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<PersistedState>(&bytes) {
                Ok(s) if s.format == FORMAT => (s, true),
                Ok(s) => {
                    return Err(StateError(format!(
                        "HOLDER_STATE_DIR: {} has unknown format {}",
                        path.display(),
                        s.format
                    )))
                }
                Err(e) => {
                    return Err(StateError(format!(
                        "HOLDER_STATE_DIR: {} is not a holder state file ({e}); move it away to start a new epoch",
                        path.display()
                    )))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (PersistedState::fresh(), false),
            Err(e) => {
                return Err(StateError(format!(
                    "HOLDER_STATE_DIR: cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        let mut state = state;
        if let Some(old) = state.session.take() {
            state.sessions.insert(0, old);
            state.shard_count.get_or_insert(1);
        }
        let cursor_path = dir.join(CURSOR_FILE);
        let mut cursor_counter = BTreeMap::new();
        if let Ok(bytes) = fs::read(&cursor_path) {
            for (shard, pair) in bytes.chunks(2 * SLOT).enumerate() {
                let Some(rec) = pair
                    .chunks(SLOT)
                    .filter_map(CursorRecord::decode)
                    .max_by_key(|r| r.counter)
                else {
                    continue;
                };
                let shard = shard as u32;
                cursor_counter.insert(shard, rec.counter);
                state.last_durable_id = state.last_durable_id.max(rec.id);
                if let Some(sess) = state.sessions.get_mut(&shard) {
                    if sess.session_id == rec.session_id {
                        sess.seq = sess.seq.max(rec.seq);
                    }
                }
            }
        }
        let cursor = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&cursor_path)
            .map_err(|e| {
                StateError(format!(
                    "HOLDER_STATE_DIR: cannot open {}: {e}",
                    cursor_path.display()
                ))
            })?;
        let store = StateStore {
            _lock: Arc::new(lock),
            floor: state.id_reserved,
            inner: Arc::new(Mutex::new(Inner {
                state,
                cursor,
                cursor_counter,
                cursor_written: None,
                cursor_dirty: BTreeSet::new(),
            })),
            dir: dir.to_path_buf(),
            loaded,
        };
        store
            .save()
            .map_err(|e| StateError(format!("HOLDER_STATE_DIR: cannot write state: {e}")))?;
        Ok(store)
    }

    /// Whether state was loaded from disk (a restart) rather than made fresh (a new epoch).
    pub fn was_loaded(&self) -> bool {
        self.loaded
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn id_floor(&self) -> u64 {
        self.floor
    }

    pub fn snapshot(&self) -> PersistedState {
        self.lock().state.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not take persistence down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the current state durably: temp file, fsync, rename.
    pub fn save(&self) -> io::Result<()> {
        let mut guard = self.lock();
        self.cursor_if_due(&mut guard, true);
        self.write(&mut guard, true)
    }

    /// Temp file and rename; with `sync`, fsync first. Called with the lock held, so two writers
    /// never share the temp file.
    fn write(&self, inner: &mut Inner, sync: bool) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&inner.state).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            if sync {
                f.sync_data()?;
            }
        }
        fs::rename(&tmp, self.dir.join(FILE))
    }

    fn update(&self, f: impl FnOnce(&mut PersistedState) -> bool) {
        let mut guard = self.lock();
        if f(&mut guard.state) {
            if let Err(e) = self.write(&mut guard, true) {
                tracing::error!(error = %e, "could not persist holder state");
            }
        }
    }

    /// The hot path: one in-place write of the next cursor slot of each shard that moved (no
    /// rename, no fsync: it survives a killed process; after a power cut the older slot or
    /// `state.json` is used, which only means a longer replay).
    fn write_cursor(&self, inner: &mut Inner) {
        use std::os::unix::fs::FileExt;
        for shard in std::mem::take(&mut inner.cursor_dirty) {
            let Some(sess) = inner.state.sessions.get(&shard) else {
                continue;
            };
            let rec = CursorRecord {
                counter: inner.cursor_counter.get(&shard).copied().unwrap_or(0) + 1,
                seq: sess.seq,
                id: inner.state.last_durable_id,
                session_id: sess.session_id.clone(),
            };
            let Some(bytes) = rec.encode() else {
                // A session id longer than a slot: fall back to the whole file.
                if let Err(e) = self.write(inner, false) {
                    tracing::error!(error = %e, "could not persist holder state");
                }
                continue;
            };
            let offset = (u64::from(shard) * 2 + rec.counter % 2) * SLOT as u64;
            match inner.cursor.write_all_at(&bytes, offset) {
                Ok(()) => {
                    inner.cursor_counter.insert(shard, rec.counter);
                }
                Err(e) => tracing::error!(error = %e, shard, "could not write the durable cursor"),
            }
        }
        inner.cursor_written = Some(std::time::Instant::now());
    }

    /// Writes the cursor if memory moved past it and [`CURSOR_INTERVAL`] has passed (or `force`).
    fn cursor_if_due(&self, inner: &mut Inner, force: bool) {
        let due = force
            || inner
                .cursor_written
                .is_none_or(|t| t.elapsed() >= CURSOR_INTERVAL);
        if !inner.cursor_dirty.is_empty() && due {
            self.write_cursor(inner);
        }
    }

    /// Writes a cursor left behind by the interval once it is due (the forwarder calls this after
    /// every accepted POST, keep-alives included, so a quiet link still catches up).
    pub fn flush_cursor(&self) {
        let mut guard = self.lock();
        self.cursor_if_due(&mut guard, false);
    }

    /// Makes sure `id` is below `id_reserved` on disk before it is used. Returns `id_reserved`:
    /// ids below it need no call (the session skips the lock for them).
    pub fn reserve(&self, id: u64) -> u64 {
        let mut reserved = 0;
        self.update(|s| {
            let grew = id >= s.id_reserved;
            if grew {
                s.id_reserved = id.saturating_add(RESERVE_CHUNK);
            }
            reserved = s.id_reserved;
            grew
        });
        reserved
    }

    /// The bot's shard count for this run. Sessions saved under another count can't be resumed
    /// (Discord ties a session to its `[shard, num_shards]`), so they are forgotten, with a line.
    pub fn adopt_shard_count(&self, count: u32) {
        self.update(|s| {
            if s.shard_count == Some(count) {
                return false;
            }
            if let Some(old) = s.shard_count.filter(|_| !s.sessions.is_empty()) {
                tracing::warn!(
                    saved = old,
                    now = count,
                    sessions = s.sessions.len(),
                    "the shard count changed; the saved sessions can't be resumed under it and are forgotten"
                );
            }
            s.sessions.clear();
            s.shard_count = Some(count);
            true
        });
    }

    /// READY on `shard`: a new session whose dispatches are numbered `id_offset + seq`.
    pub fn new_session(&self, shard: u32, session_id: &str, resume_url: &str, id_offset: i64) {
        self.update(|s| {
            s.sessions.insert(
                shard,
                SavedSession {
                    session_id: session_id.to_owned(),
                    resume_url: resume_url.to_owned(),
                    seq: 0,
                    id_offset,
                },
            );
            true
        });
    }

    /// The saved session's `resume_gateway_url` stayed unreachable: resume on this URL instead
    /// (from `GET /gateway/bot`), also after a restart.
    pub fn set_resume_url(&self, shard: u32, resume_url: &str) {
        self.update(|s| match s.sessions.get_mut(&shard) {
            Some(sess) if sess.resume_url != resume_url => {
                sess.resume_url = resume_url.to_owned();
                true
            }
            _ => false,
        });
    }

    /// The shard's session can't be resumed (op 9 false, 4007, 4009).
    pub fn clear_session(&self, shard: u32) {
        self.update(|s| s.sessions.remove(&shard).is_some());
    }

    /// Everything of `shard` up to this envelope is delivered or spilled.
    pub fn durable(&self, shard: u32, session_id: &str, seq: u64, id: u64) {
        let mut guard = self.lock();
        let s = &mut guard.state;
        let mut changed = false;
        if id > s.last_durable_id {
            s.last_durable_id = id;
            changed = true;
        }
        if let Some(sess) = s.sessions.get_mut(&shard) {
            if sess.session_id == session_id && seq > sess.seq {
                sess.seq = seq;
                changed = true;
            }
        }
        if changed {
            guard.cursor_dirty.insert(shard);
            self.cursor_if_due(&mut guard, false);
        }
    }

    pub fn set_gaps(&self, gaps: &[HolderGap]) {
        self.update(|s| {
            if s.pending_gaps != gaps {
                s.pending_gaps = gaps.to_vec();
                true
            } else {
                false
            }
        });
    }
}

impl Drop for StateStore {
    /// The last handle writes a cursor the interval held back (a SIGKILL skips this: replay).
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            let mut guard = self.lock();
            self.cursor_if_due(&mut guard, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reopen_and_keeps_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let a = StateStore::open(dir.path()).unwrap();
        assert!(!a.was_loaded());
        a.reserve(5);
        a.new_session(0, "s1", "ws://127.0.0.1:1", 10);
        a.durable(0, "s1", 7, 17);
        a.durable(0, "other", 99, 16); // an older session's envelope: id only
        let before = a.snapshot();
        assert_eq!(before.id_reserved, 5 + RESERVE_CHUNK);
        assert_eq!(before.sessions[&0].seq, 7);
        assert_eq!(before.last_durable_id, 17);
        drop(a);

        let b = StateStore::open(dir.path()).unwrap();
        assert!(b.was_loaded());
        assert_eq!(b.snapshot(), before);
        assert_eq!(b.id_floor(), 5 + RESERVE_CHUNK);
        b.clear_session(0);
        drop(b);
        assert!(StateStore::open(dir.path())
            .unwrap()
            .snapshot()
            .sessions
            .is_empty());
    }

    #[test]
    fn the_cursor_slots_win_over_an_older_state_file_and_torn_slots_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let a = StateStore::open(dir.path()).unwrap();
        a.new_session(0, "sess", "ws://x", 0);
        for seq in 1..=5 {
            a.durable(0, "sess", seq, seq);
        }
        drop(a);
        // state.json still says seq 0; the cursor says 5.
        let b = StateStore::open(dir.path()).unwrap();
        assert_eq!(b.snapshot().sessions[&0].seq, 5);
        assert_eq!(b.snapshot().last_durable_id, 5);
        b.durable(0, "sess", 6, 6);
        drop(b);
        // Tear the newest slot: the older one (seq 5) is used.
        let path = dir.path().join(CURSOR_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let newest = bytes
            .chunks(SLOT)
            .enumerate()
            .take(2)
            .filter_map(|(i, c)| Some((i, CursorRecord::decode(c)?)))
            .max_by_key(|(_, r)| r.counter)
            .unwrap();
        assert_eq!(newest.1.seq, 6);
        bytes[newest.0 * SLOT + 3] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let c = StateStore::open(dir.path()).unwrap();
        assert_eq!(c.snapshot().sessions[&0].seq, 5);
    }

    #[test]
    fn cursor_writes_are_spaced_but_never_lost_on_save_or_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = StateStore::open(dir.path()).unwrap();
        a.new_session(0, "sess", "ws://x", 0);
        let slots = || {
            fs::read(dir.path().join(CURSOR_FILE))
                .unwrap()
                .chunks(SLOT)
                .filter_map(CursorRecord::decode)
                .map(|r| r.seq)
                .max()
        };
        a.durable(0, "sess", 1, 1);
        assert_eq!(slots(), Some(1), "the first move is written at once");
        a.durable(0, "sess", 2, 2);
        assert_eq!(slots(), Some(1), "the next one waits for the interval");
        a.flush_cursor();
        assert_eq!(slots(), Some(1));
        std::thread::sleep(CURSOR_INTERVAL);
        a.flush_cursor();
        assert_eq!(slots(), Some(2), "due after the interval");
        a.durable(0, "sess", 3, 3);
        a.save().unwrap();
        assert_eq!(slots(), Some(3), "save writes it");
        a.durable(0, "sess", 4, 4);
        drop(a);
        assert_eq!(slots(), Some(4), "so does dropping the store");
    }

    #[test]
    fn every_shard_keeps_its_own_session_and_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let a = StateStore::open(dir.path()).unwrap();
        a.adopt_shard_count(4);
        a.new_session(0, "s0", "ws://a", 0);
        a.new_session(3, "s3", "ws://b", 100);
        a.durable(3, "s3", 9, 109);
        a.durable(0, "s0", 4, 4);
        a.durable(3, "s0", 50, 50); // another shard's session id: not this shard's seq
        drop(a);
        let b = StateStore::open(dir.path()).unwrap();
        let snap = b.snapshot();
        assert_eq!(snap.shard_count, Some(4));
        assert_eq!(snap.sessions[&0].seq, 4);
        assert_eq!(snap.sessions[&3].seq, 9);
        assert_eq!(snap.sessions[&3].id_offset, 100);
        assert_eq!(snap.last_durable_id, 109);
        // The same count keeps them; another count forgets them.
        b.adopt_shard_count(4);
        assert_eq!(b.snapshot().sessions.len(), 2);
        b.adopt_shard_count(2);
        assert!(b.snapshot().sessions.is_empty());
        assert_eq!(b.snapshot().shard_count, Some(2));
    }

    #[test]
    fn a_file_from_before_shards_resumes_as_shard_0_of_1() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"format":1,"holder_id":"holder-1","epoch":"e1","id_reserved":100001,
            "last_durable_id":7,"session":{"session_id":"old","resume_url":"ws://r","seq":7,
            "id_offset":0},"pending_gaps":[]}"#;
        fs::write(dir.path().join(FILE), old).unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let snap = s.snapshot();
        assert_eq!(snap.epoch, "e1");
        assert_eq!(snap.shard_count, Some(1));
        assert_eq!(snap.sessions[&0].session_id, "old");
        assert_eq!(snap.sessions[&0].seq, 7);
        s.adopt_shard_count(1);
        assert_eq!(s.snapshot().sessions.len(), 1);
        // Written back in the new shape, without the old field.
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.contains("\"sessions\"") && !text.contains("\"session\":"));
    }

    #[test]
    fn cursor_records_round_trip() {
        let r = CursorRecord {
            counter: 7,
            seq: 42,
            id: 99,
            session_id: "abc def".into(),
        };
        assert_eq!(CursorRecord::decode(&r.encode().unwrap()), Some(r));
        assert_eq!(CursorRecord::decode(&[b' '; SLOT]), None);
        let long = CursorRecord {
            counter: 1,
            seq: 1,
            id: 1,
            session_id: "x".repeat(200),
        };
        assert!(long.encode().is_none());
    }

    #[test]
    fn reserve_only_writes_when_crossing() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.reserve(1);
        let r = s.snapshot().id_reserved;
        s.reserve(r - 1);
        assert_eq!(s.snapshot().id_reserved, r);
        s.reserve(r);
        assert_eq!(s.snapshot().id_reserved, r + RESERVE_CHUNK);
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let e = StateStore::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("HOLDER_STATE_DIR"), "{e}");
        assert!(!dir.path().join(format!("{FILE}.tmp")).exists());
    }

    #[test]
    fn two_holders_cannot_share_a_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let a = StateStore::open(dir.path()).unwrap();
        let e = StateStore::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("in use"), "{e}");
        drop(a);
        StateStore::open(dir.path()).unwrap();
    }

    #[test]
    fn fresh_epochs_differ() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ea = StateStore::open(a.path()).unwrap().snapshot().epoch;
        let eb = StateStore::open(b.path()).unwrap().snapshot().epoch;
        assert_ne!(ea, eb);
    }
}

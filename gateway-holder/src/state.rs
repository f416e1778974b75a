//! The holder's durable state in `HOLDER_STATE_DIR/state.json`: epoch, the id reservation, the last
//! durable id, the session to RESUME and undelivered gap notices. Written atomically (temp file,
//! fsync, rename) so a SIGKILL at any instant leaves either the old or the new file, never half of one.
//!
//! The rules that make "nothing lost, nothing renumbered" hold across a kill:
//! - `session.seq` only advances to dispatches whose envelopes were accepted by the edge or written
//!   to the spill file, so a restarted holder resumes from there and Discord replays the rest.
//! - Within a session an envelope's id is `session.id_offset + seq`, so a replayed dispatch gets the
//!   same id it had before the kill and the edge drops it as a duplicate by `(epoch, id)`.
//! - `id_reserved` is written before any id at or above it is used; a holder that must start a new
//!   session after a restart starts numbering there, above every id the old process could have sent.

use contracts::HolderGap;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// How many ids one reservation write covers.
pub const RESERVE_CHUNK: u64 = 10_000;
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
    #[serde(default)]
    pub session: Option<SavedSession>,
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

/// Shared handle on the persisted state; every change is written through at once.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Mutex<PersistedState>>,
    dir: PathBuf,
    /// `id_reserved` as loaded: a new session in this process numbers from at least here.
    floor: u64,
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
        let store = StateStore {
            floor: state.id_reserved,
            inner: Arc::new(Mutex::new(state)),
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
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PersistedState> {
        // A panic elsewhere must not take persistence down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the current state durably: temp file, fsync, rename.
    pub fn save(&self) -> io::Result<()> {
        self.write(true)
    }

    /// Temp file and rename; with `sync`, fsync first. Without it the write survives a killed
    /// process (the page cache outlives it) but not a power cut; the hot path (every delivered
    /// batch) uses that, and being behind is safe: a resume then replays a little more.
    fn write(&self, sync: bool) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&*self.lock()).map_err(io::Error::other)?;
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
        self.update_with(true, f)
    }

    fn update_with(&self, sync: bool, f: impl FnOnce(&mut PersistedState) -> bool) {
        let changed = f(&mut self.lock());
        if changed {
            if let Err(e) = self.write(sync) {
                tracing::error!(error = %e, "could not persist holder state");
            }
        }
    }

    /// Makes sure `id` is below `id_reserved` on disk before it is used.
    pub fn reserve(&self, id: u64) {
        self.update(|s| {
            if id >= s.id_reserved {
                s.id_reserved = id.saturating_add(RESERVE_CHUNK);
                true
            } else {
                false
            }
        });
    }

    /// READY: a new session whose dispatches are numbered `id_offset + seq`.
    pub fn new_session(&self, session_id: &str, resume_url: &str, id_offset: i64) {
        self.update(|s| {
            s.session = Some(SavedSession {
                session_id: session_id.to_owned(),
                resume_url: resume_url.to_owned(),
                seq: 0,
                id_offset,
            });
            true
        });
    }

    /// The session can't be resumed (op 9 false, 4007, 4009).
    pub fn clear_session(&self) {
        self.update(|s| s.session.take().is_some());
    }

    /// Everything up to this envelope is delivered or spilled.
    pub fn durable(&self, session_id: &str, seq: u64, id: u64) {
        self.update_with(false, |s| {
            let mut changed = false;
            if id > s.last_durable_id {
                s.last_durable_id = id;
                changed = true;
            }
            if let Some(sess) = s.session.as_mut() {
                if sess.session_id == session_id && seq > sess.seq {
                    sess.seq = seq;
                    changed = true;
                }
            }
            changed
        });
    }

    pub fn set_gaps(&self, gaps: &[HolderGap]) {
        self.update_with(false, |s| {
            if s.pending_gaps != gaps {
                s.pending_gaps = gaps.to_vec();
                true
            } else {
                false
            }
        });
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
        a.new_session("s1", "ws://127.0.0.1:1", 10);
        a.durable("s1", 7, 17);
        a.durable("other", 99, 16); // an older session's envelope: id only
        let before = a.snapshot();
        assert_eq!(before.id_reserved, 5 + RESERVE_CHUNK);
        assert_eq!(before.session.as_ref().unwrap().seq, 7);
        assert_eq!(before.last_durable_id, 17);
        drop(a);

        let b = StateStore::open(dir.path()).unwrap();
        assert!(b.was_loaded());
        assert_eq!(b.snapshot(), before);
        assert_eq!(b.id_floor(), 5 + RESERVE_CHUNK);
        b.clear_session();
        assert!(StateStore::open(dir.path())
            .unwrap()
            .snapshot()
            .session
            .is_none());
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
    fn fresh_epochs_differ() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ea = StateStore::open(a.path()).unwrap().snapshot().epoch;
        let eb = StateStore::open(b.path()).unwrap().snapshot().epoch;
        assert_ne!(ea, eb);
    }
}

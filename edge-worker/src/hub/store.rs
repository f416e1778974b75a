//! The hub's Durable Object storage (SQLite, synchronous API): the replay window, the edge
//! cursor, the per-epoch dedup marks and the link tracker.
//!
//! Every call here is synchronous, so a run of them with no `await` in between is atomic with
//! respect to other requests (the object is single-threaded) and is committed as one unit before
//! the response leaves (the output gate). Ids that can exceed 2^53 (Discord snowflakes, holder
//! ids) are stored as TEXT, since SQL values cross into JavaScript as doubles.

use crate::event::EdgeEvent;
use crate::link::LinkTracker;
use serde::Deserialize;
use worker::{Result, SqlStorage, SqlStorageValue};

/// How many epochs' dedup marks are kept (a holder makes a new epoch only when it loses its
/// state, so old ones only matter for retries still in flight).
const KEEP_EPOCHS: i64 = 32;

pub struct Store {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct Row {
    cursor: f64,
    at: f64,
    name: String,
    channel: Option<String>,
    data: String,
}

#[derive(Deserialize)]
struct Value {
    value: String,
}

#[derive(Deserialize)]
struct Num {
    n: Option<f64>,
}

impl Store {
    pub fn open(sql: SqlStorage) -> Result<Store> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS events (
                cursor INTEGER PRIMARY KEY,
                at INTEGER NOT NULL,
                name TEXT NOT NULL,
                channel TEXT,
                data TEXT NOT NULL)",
            None,
        )?;
        sql.exec("CREATE INDEX IF NOT EXISTS events_at ON events(at)", None)?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS epochs (
                epoch TEXT PRIMARY KEY,
                high_water TEXT NOT NULL,
                seen_at INTEGER NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            None,
        )?;
        Ok(Store { sql })
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows: Vec<Value> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: String) -> Result<()> {
        self.sql.exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// The newest cursor handed out (0 before the first event). Kept in `meta`, not derived
    /// from the events table, so trimming everything never makes a cursor repeat.
    pub fn head(&self) -> Result<u64> {
        Ok(self.meta("head")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub fn set_head(&self, head: u64) -> Result<()> {
        self.set_meta("head", head.to_string())
    }

    pub fn link(&self) -> Result<LinkTracker> {
        Ok(self
            .meta("link")?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    pub fn set_link(&self, link: &LinkTracker) -> Result<()> {
        self.set_meta(
            "link",
            serde_json::to_string(link).expect("link serializes"),
        )
    }

    pub fn high_water(&self, epoch: &str) -> Result<Option<u64>> {
        let rows: Vec<Value> = self
            .sql
            .exec(
                "SELECT high_water AS value FROM epochs WHERE epoch = ?",
                vec![epoch.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.value.parse().ok()))
    }

    /// Saves an epoch's mark; `prune` (on a new epoch) drops all but the newest epochs' marks.
    pub fn set_high_water(
        &self,
        epoch: &str,
        high_water: u64,
        now: u64,
        prune: bool,
    ) -> Result<()> {
        self.sql.exec(
            "INSERT INTO epochs (epoch, high_water, seen_at) VALUES (?, ?, ?)
             ON CONFLICT(epoch) DO UPDATE SET high_water = excluded.high_water,
                                              seen_at = excluded.seen_at",
            vec![
                epoch.into(),
                high_water.to_string().into(),
                SqlStorageValue::Integer(now as i64),
            ],
        )?;
        if prune {
            self.sql.exec(
                "DELETE FROM epochs WHERE epoch NOT IN
                   (SELECT epoch FROM epochs ORDER BY seen_at DESC LIMIT ?)",
                vec![SqlStorageValue::Integer(KEEP_EPOCHS)],
            )?;
        }
        Ok(())
    }

    pub fn append(&self, e: &EdgeEvent) -> Result<()> {
        self.sql.exec(
            "INSERT INTO events (cursor, at, name, channel, data) VALUES (?, ?, ?, ?, ?)",
            vec![
                SqlStorageValue::Integer(e.cursor as i64),
                SqlStorageValue::Integer(e.at as i64),
                e.name.as_str().into(),
                e.channel.map(|c| c.to_string()).into(),
                e.data.as_str().into(),
            ],
        )?;
        Ok(())
    }

    /// Deletes events below cursor `floor` (size limit) and stored before `cutoff` (age limit).
    pub fn trim(&self, floor: u64, cutoff: Option<u64>) -> Result<()> {
        if floor > 0 {
            self.sql.exec(
                "DELETE FROM events WHERE cursor < ?",
                vec![SqlStorageValue::Integer(floor as i64)],
            )?;
        }
        if let Some(cutoff) = cutoff {
            self.sql.exec(
                "DELETE FROM events WHERE at < ?",
                vec![SqlStorageValue::Integer(cutoff as i64)],
            )?;
        }
        Ok(())
    }

    /// The oldest cursor stored at or after time `cutoff`, or `head + 1` when there is none.
    /// (Deletion is lazy; this is the window's true lower edge by age.)
    pub fn floor(&self, head: u64, cutoff: u64) -> Result<u64> {
        let rows: Vec<Num> = self
            .sql
            .exec(
                "SELECT MIN(cursor) AS n FROM events WHERE at >= ?",
                vec![SqlStorageValue::Integer(cutoff as i64)],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.n)
            .map_or(head + 1, |n| n as u64))
    }

    pub fn count(&self) -> Result<u64> {
        let rows: Vec<Num> = self
            .sql
            .exec("SELECT COUNT(*) AS n FROM events", None)?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.n).unwrap_or(0.0) as u64)
    }

    /// Stored events with a cursor above `after`, oldest first.
    pub fn read_after(&self, after: u64) -> Result<Vec<EdgeEvent>> {
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT cursor, at, name, channel, data FROM events
                 WHERE cursor > ? ORDER BY cursor",
                vec![SqlStorageValue::Integer(after as i64)],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|r| EdgeEvent {
                cursor: r.cursor as u64,
                at: r.at as u64,
                name: r.name,
                channel: r.channel.and_then(|c| c.parse().ok()),
                data: r.data,
            })
            .collect())
    }
}

//! The hub's Durable Object storage (SQLite, synchronous API): the replay window, the edge
//! cursor, the per-(epoch, shard) dedup marks (table `marks`), the link tracker and the hub's
//! guild id (table `meta`).
//!
//! Every call here is synchronous, so a run of them with no `await` in between is atomic with
//! respect to other requests (the object is single-threaded) and is committed as one unit before
//! the response leaves (the output gate). Ids that can exceed 2^53 (Discord snowflakes, holder
//! ids) are stored as TEXT, since SQL values cross into JavaScript as doubles.
//!
//! Write cost per ingest batch is kept to two B-tree pages: one multi-row `INSERT` into `events`
//! (no secondary index: `at` grows with `cursor`, so age queries walk the primary key) and the
//! dedup mark of each (epoch, shard) the batch carried. The head is not written per batch: it is the larger of `meta.head` and the
//! newest stored cursor, and `meta.head` is brought up to date before any delete (see
//! [`Store::trim`]), so the head never moves back, even when everything is trimmed.

use crate::event::EdgeEvent;
use crate::link::LinkTracker;
use serde::Deserialize;
use worker::{Result, SqlStorage, SqlStorageValue};

/// How many epochs' dedup marks are kept (a holder makes a new epoch only when it loses its
/// state, so old ones only matter for retries still in flight; several holders each have one).
const KEEP_EPOCHS: i64 = 32;

/// A Durable Object's SQLite binds at most 100 parameters per statement (Cloudflare's limits
/// page; workerd enforces it locally too).
const MAX_BOUND_PARAMETERS: usize = 100;
/// Parameters each event row binds.
const ROW_PARAMETERS: usize = 6;
/// Events per `INSERT` statement.
const INSERT_ROWS: usize = MAX_BOUND_PARAMETERS / ROW_PARAMETERS;

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
    user: Option<String>,
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
                data TEXT NOT NULL,
                user TEXT)",
            None,
        )?;
        // Tables from before per-user events (`command.result`) lack `user`: add it. (SQLite
        // has no ADD COLUMN IF NOT EXISTS; the probe below fails if the column is still missing.)
        if sql.exec("SELECT user FROM events LIMIT 0", None).is_err() {
            sql.exec("ALTER TABLE events ADD COLUMN user TEXT", None)?;
        }
        // Older versions kept an index on `at`; it cost a page write per batch.
        sql.exec("DROP INDEX IF EXISTS events_at", None)?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS marks (
                epoch TEXT NOT NULL,
                shard INTEGER NOT NULL,
                high_water TEXT NOT NULL,
                seen_at INTEGER NOT NULL,
                PRIMARY KEY (epoch, shard))",
            None,
        )?;
        // Before ids were per shard, the mark was per epoch (table `epochs`): it is shard 0's,
        // which is every id a single-shard holder sent. Moved once, so an upgraded edge does not
        // take a retried batch for new events.
        if sql.exec("SELECT epoch FROM epochs LIMIT 0", None).is_ok() {
            sql.exec(
                "INSERT OR IGNORE INTO marks (epoch, shard, high_water, seen_at)
                 SELECT epoch, 0, high_water, seen_at FROM epochs",
                None,
            )?;
            sql.exec("DROP TABLE epochs", None)?;
        }
        sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            None,
        )?;
        Ok(Store { sql })
    }

    /// The database's size in bytes.
    pub fn database_size(&self) -> usize {
        self.sql.database_size()
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows: Vec<Value> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    pub fn set_meta(&self, key: &str, value: String) -> Result<()> {
        self.sql.exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// The newest cursor handed out (0 before the first event): the newest stored event, or
    /// `meta.head` when trimming removed it, so a cursor never repeats.
    pub fn head(&self) -> Result<u64> {
        let saved = self.meta("head")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let rows: Vec<Num> = self
            .sql
            .exec("SELECT MAX(cursor) AS n FROM events", None)?
            .to_array()?;
        let stored = rows.into_iter().next().and_then(|r| r.n).unwrap_or(0.0) as u64;
        Ok(saved.max(stored))
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

    pub fn high_water(&self, epoch: &str, shard: u32) -> Result<Option<u64>> {
        let rows: Vec<Value> = self
            .sql
            .exec(
                "SELECT high_water AS value FROM marks WHERE epoch = ? AND shard = ?",
                vec![epoch.into(), SqlStorageValue::Integer(i64::from(shard))],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.value.parse().ok()))
    }

    /// Saves an (epoch, shard) mark; `prune` (on an epoch new to this hub) drops the marks of all
    /// but the most recently seen epochs.
    pub fn set_high_water(
        &self,
        epoch: &str,
        shard: u32,
        high_water: u64,
        now: u64,
        prune: bool,
    ) -> Result<()> {
        self.sql.exec(
            "INSERT INTO marks (epoch, shard, high_water, seen_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(epoch, shard) DO UPDATE SET high_water = excluded.high_water,
                                                     seen_at = excluded.seen_at",
            vec![
                epoch.into(),
                SqlStorageValue::Integer(i64::from(shard)),
                high_water.to_string().into(),
                SqlStorageValue::Integer(now as i64),
            ],
        )?;
        if prune {
            self.sql.exec(
                "DELETE FROM marks WHERE epoch NOT IN
                   (SELECT epoch FROM marks GROUP BY epoch ORDER BY MAX(seen_at) DESC LIMIT ?)",
                vec![SqlStorageValue::Integer(KEEP_EPOCHS)],
            )?;
        }
        Ok(())
    }

    /// Stores `events` (cursor order) with one statement per [`INSERT_ROWS`] events.
    pub fn append(&self, events: &[EdgeEvent]) -> Result<()> {
        for part in events.chunks(INSERT_ROWS) {
            let mut sql =
                String::from("INSERT INTO events (cursor, at, name, channel, data, user) VALUES ");
            let mut args = Vec::with_capacity(part.len() * ROW_PARAMETERS);
            for (i, e) in part.iter().enumerate() {
                sql.push_str(if i == 0 {
                    "(?, ?, ?, ?, ?, ?)"
                } else {
                    ", (?, ?, ?, ?, ?, ?)"
                });
                args.push(SqlStorageValue::Integer(e.cursor as i64));
                args.push(SqlStorageValue::Integer(e.at as i64));
                args.push(e.name.as_str().into());
                args.push(e.channel.map(|c| c.to_string()).into());
                args.push(e.data.as_str().into());
                args.push(e.user.as_deref().into());
            }
            self.sql.exec(&sql, args)?;
        }
        Ok(())
    }

    /// Deletes events below cursor `floor` (size limit) and those older than the first event
    /// stored at or after `cutoff` (age limit). `head` is saved first, so deleting the newest
    /// event never lets a cursor repeat (see [`Store::head`]).
    pub fn trim(&self, head: u64, floor: u64, cutoff: Option<u64>) -> Result<()> {
        self.set_meta("head", head.to_string())?;
        let floor = match cutoff {
            Some(cutoff) => floor.max(self.floor(head, cutoff)?),
            None => floor,
        };
        if floor > 0 {
            self.sql.exec(
                "DELETE FROM events WHERE cursor < ?",
                vec![SqlStorageValue::Integer(floor as i64)],
            )?;
        }
        Ok(())
    }

    /// The oldest cursor stored at or after time `cutoff`, or `head + 1` when there is none.
    /// (Deletion is lazy; this is the window's true lower edge by age.) Walks the primary key
    /// from the oldest event: times grow with cursors and older events are deleted every second,
    /// so the walk is short.
    pub fn floor(&self, head: u64, cutoff: u64) -> Result<u64> {
        let rows: Vec<Num> = self
            .sql
            .exec(
                "SELECT cursor AS n FROM events WHERE at >= ? ORDER BY cursor LIMIT 1",
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
                "SELECT cursor, at, name, channel, data, user FROM events
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
                user: r.user,
            })
            .collect())
    }
}

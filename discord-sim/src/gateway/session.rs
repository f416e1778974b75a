//! Gateway sessions: what survives a disconnect. A session owns its sequence counter and a backlog
//! of every dispatch it was sent, so a RESUME can replay exactly what the client missed, even
//! dispatches emitted while no connection was live.
//!
//! Each dispatch's frame text is fixed the first time it is observed (written to a socket, or read
//! back by a test), so a replay sends byte-identical `d` and the `_sim_sent_us` stamp is taken just
//! before the first write.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

use crate::clock::unix_micros;
use crate::records::EmittedDispatch;

use super::connection::Outbound;

/// One dispatch as one session got it.
#[derive(Debug)]
pub struct DispatchEntry {
    /// Session it belongs to.
    pub session_id: Arc<str>,
    /// Its `s`.
    pub seq: u64,
    /// Its `t`.
    pub t: Box<str>,
    /// `d` without the send stamp.
    d: Box<str>,
    stamped: OnceLock<Stamped>,
}

/// The frame of a dispatch once stamped.
#[derive(Debug)]
pub struct Stamped {
    /// Full payload text `{"t":…,"s":…,"op":0,"d":…}`.
    pub frame: Utf8Bytes,
    d_start: usize,
    d_end: usize,
    /// The stamp.
    pub sent_us: u64,
}

/// Builds `{"t":T,"s":S,"op":0,"d":D}` with `_sim_sent_us` appended to D when it is an object.
pub fn dispatch_frame(t: &str, seq: u64, d: &str, sent_us: u64) -> (String, usize, usize) {
    let t_json = serde_json::to_string(t).unwrap_or_else(|_| "\"\"".to_owned());
    let mut out = String::with_capacity(d.len() + t_json.len() + 64);
    out.push_str("{\"t\":");
    out.push_str(&t_json);
    out.push_str(",\"s\":");
    out.push_str(&seq.to_string());
    out.push_str(",\"op\":0,\"d\":");
    let d_start = out.len();
    let trimmed = d.trim_end();
    if trimmed.starts_with('{') && trimmed.ends_with('}') {
        let body = trimmed[1..trimmed.len() - 1].trim();
        out.push('{');
        if !body.is_empty() {
            out.push_str(body);
            out.push(',');
        }
        out.push_str("\"_sim_sent_us\":");
        out.push_str(&sent_us.to_string());
        out.push('}');
    } else {
        out.push_str(d);
    }
    let d_end = out.len();
    out.push('}');
    (out, d_start, d_end)
}

impl DispatchEntry {
    /// A new, not yet stamped dispatch.
    pub fn new(session_id: Arc<str>, seq: u64, t: &str, d: String) -> Self {
        Self {
            session_id,
            seq,
            t: t.into(),
            d: d.into_boxed_str(),
            stamped: OnceLock::new(),
        }
    }

    /// The frame, stamping it now if nobody has yet.
    pub fn stamp(&self) -> &Stamped {
        self.stamped.get_or_init(|| {
            let sent_us = unix_micros();
            let (frame, d_start, d_end) = dispatch_frame(&self.t, self.seq, &self.d, sent_us);
            Stamped {
                frame: Utf8Bytes::from(frame),
                d_start,
                d_end,
                sent_us,
            }
        })
    }

    /// As a record (stamps it if needed, so the record and every later write agree).
    pub fn to_record(&self) -> EmittedDispatch {
        let s = self.stamp();
        EmittedDispatch {
            session_id: Some(self.session_id.to_string()),
            seq: Some(self.seq),
            t: self.t.to_string(),
            d: s.frame.as_str()[s.d_start..s.d_end].to_owned(),
            sent_us: s.sent_us,
        }
    }
}

/// Why a session can no longer be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Heartbeats stopped, or it stayed disconnected past the resume window: RESUME gets 4009.
    TimedOut,
    /// Invalidated (op 9 false, client closed with 1000/1001, a close code that ends it):
    /// RESUME gets op 9 `false`.
    Invalidated,
}

/// The live link from a session to the connection serving it.
#[derive(Debug, Clone)]
pub struct ConnLink {
    /// Connection id.
    pub conn_id: u64,
    /// Where to send frames.
    pub tx: mpsc::UnboundedSender<Outbound>,
    /// Dispatches queued but not yet written, across all connections (flow control for traffic).
    pub queued: Arc<AtomicI64>,
}

/// A gateway session.
#[derive(Debug)]
pub struct Session {
    /// `session_id`.
    pub id: Arc<str>,
    /// The `s` the next dispatch gets.
    pub next_seq: u64,
    /// Intents it identified with.
    pub intents: u64,
    /// `[shard_id, num_shards]`.
    pub shard: [u64; 2],
    /// Dispatches kept for replay, oldest first.
    pub backlog: VecDeque<Arc<DispatchEntry>>,
    /// The connection serving it, if any.
    pub conn: Option<ConnLink>,
    /// When it lost its connection.
    pub detached_since: Option<Instant>,
    /// Set once it can't be resumed.
    pub ended: Option<Ended>,
    /// Times resumed.
    pub resumes: u64,
    max_backlog: usize,
}

/// Why a RESUME was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    /// Answer op 9 `false`.
    Invalid,
    /// Close 4009.
    TimedOut,
    /// Close 4007.
    BadSeq,
}

impl Session {
    /// A new session whose first dispatch gets `s` = `first_seq`.
    pub fn new(
        id: Arc<str>,
        intents: u64,
        shard: [u64; 2],
        first_seq: u64,
        max_backlog: usize,
    ) -> Self {
        Self {
            id,
            next_seq: first_seq,
            intents,
            shard,
            backlog: VecDeque::new(),
            conn: None,
            detached_since: None,
            ended: None,
            resumes: 0,
            max_backlog,
        }
    }

    /// Whether dispatches still go to it (alive, and not past the resume window).
    pub fn is_alive(&mut self, resume_window: Duration) -> bool {
        if self.ended.is_some() {
            return false;
        }
        if let Some(since) = self.detached_since {
            if since.elapsed() > resume_window {
                self.end(Ended::TimedOut);
                return false;
            }
        }
        true
    }

    /// The last `s` assigned (0 before any).
    pub fn seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Whether events about `guild_id` go to this session's shard: `(guild_id >> 22) %
    /// num_shards == shard_id`; events without a guild go to shard 0 (Discord's docs).
    pub fn routes(&self, guild_id: Option<u64>) -> bool {
        match guild_id {
            Some(g) => crate::config::shard_of(g, self.shard[1]) == self.shard[0],
            None => self.shard[0] == 0,
        }
    }

    /// Whether this session gets a dispatch about `guild_id` that needs `intent` (0: any
    /// session of the right shard).
    pub fn wants(&self, guild_id: Option<u64>, intent: u64) -> bool {
        self.routes(guild_id) && (intent == 0 || self.intents & intent != 0)
    }

    /// Assigns the next `s`, keeps the dispatch for replay and hands it to the live connection.
    pub fn push(&mut self, t: &str, d: String) -> Arc<DispatchEntry> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Arc::new(DispatchEntry::new(self.id.clone(), seq, t, d));
        if self.max_backlog > 0 {
            if self.backlog.len() >= self.max_backlog {
                self.backlog.pop_front();
            }
            self.backlog.push_back(entry.clone());
        }
        let gone = match &self.conn {
            Some(link) => {
                link.queued.fetch_add(1, Ordering::Relaxed);
                let failed = link.tx.send(Outbound::Dispatch(entry.clone())).is_err();
                if failed {
                    link.queued.fetch_sub(1, Ordering::Relaxed);
                }
                failed.then_some(link.conn_id)
            }
            None => {
                // Nobody will write it soon: the stamp is the emission time.
                entry.stamp();
                None
            }
        };
        if let Some(conn_id) = gone {
            // The connection is going away; the dispatch waits in the backlog.
            self.detach(conn_id);
        }
        entry
    }

    /// Ends the session for good.
    pub fn end(&mut self, why: Ended) {
        if self.ended.is_none() {
            self.ended = Some(why);
        }
        self.conn = None;
        self.backlog.clear();
        self.backlog.shrink_to_fit();
    }

    /// Forgets the connection `conn_id` if it is the one serving this session.
    pub fn detach(&mut self, conn_id: u64) {
        if self.conn.as_ref().is_some_and(|c| c.conn_id == conn_id) {
            self.conn = None;
            self.detached_since = Some(Instant::now());
        }
    }

    /// Checks a RESUME from `seq` and, if allowed, attaches `link` and queues the replay on it.
    /// Returns the number of replayed dispatches and the connection it took over from, if any.
    pub fn resume(
        &mut self,
        seq: u64,
        link: ConnLink,
        resume_window: Duration,
    ) -> Result<(u64, Option<ConnLink>), ResumeError> {
        if !self.is_alive(resume_window) {
            return Err(match self.ended {
                Some(Ended::TimedOut) => ResumeError::TimedOut,
                _ => ResumeError::Invalid,
            });
        }
        if seq >= self.next_seq.max(1) {
            return Err(ResumeError::BadSeq);
        }
        // Everything after `seq` must still be in the backlog.
        let oldest_kept = self.backlog.front().map(|e| e.seq).unwrap_or(self.next_seq);
        if seq + 1 < oldest_kept {
            return Err(ResumeError::BadSeq);
        }
        let mut replayed = 0;
        for entry in self.backlog.iter().filter(|e| e.seq > seq) {
            link.queued.fetch_add(1, Ordering::Relaxed);
            if link.tx.send(Outbound::Dispatch(entry.clone())).is_err() {
                link.queued.fetch_sub(1, Ordering::Relaxed);
            }
            replayed += 1;
        }
        let previous = self.conn.replace(link);
        self.detached_since = None;
        self.resumes += 1;
        Ok((replayed, previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_appends_stamp_and_keeps_d_bytes() {
        let (f, a, b) = dispatch_frame("MESSAGE_CREATE", 7, r#"{"id":"1","content":"hi"}"#, 42);
        assert_eq!(
            f,
            r#"{"t":"MESSAGE_CREATE","s":7,"op":0,"d":{"id":"1","content":"hi","_sim_sent_us":42}}"#
        );
        assert_eq!(&f[a..b], r#"{"id":"1","content":"hi","_sim_sent_us":42}"#);
        let (f, ..) = dispatch_frame("RESUMED", 1, "{}", 5);
        assert_eq!(f, r#"{"t":"RESUMED","s":1,"op":0,"d":{"_sim_sent_us":5}}"#);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["d"]["_sim_sent_us"], 5);
    }

    #[test]
    fn resume_replays_after_seq_and_checks_bounds() {
        let mut s = Session::new("abc".into(), 0, [0, 1], 1, 3);
        for i in 0..5 {
            s.push("X", format!("{{\"i\":{i}}}"));
        }
        // Backlog keeps seq 3..=5.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let link = ConnLink {
            conn_id: 9,
            tx,
            queued: Arc::default(),
        };
        assert_eq!(
            s.resume(6, link.clone(), Duration::from_secs(60))
                .unwrap_err(),
            ResumeError::BadSeq
        );
        assert_eq!(
            s.resume(1, link.clone(), Duration::from_secs(60))
                .unwrap_err(),
            ResumeError::BadSeq
        );
        let (n, prev) = s.resume(3, link, Duration::from_secs(60)).unwrap();
        assert_eq!(n, 2);
        assert!(prev.is_none());
        let mut seqs = vec![];
        while let Ok(Outbound::Dispatch(e)) = rx.try_recv() {
            seqs.push(e.seq);
        }
        assert_eq!(seqs, vec![4, 5]);
        s.end(Ended::Invalidated);
        let (tx, _rx) = mpsc::unbounded_channel();
        assert_eq!(
            s.resume(
                5,
                ConnLink {
                    conn_id: 10,
                    tx,
                    queued: Arc::default()
                },
                Duration::from_secs(60)
            )
            .unwrap_err(),
            ResumeError::Invalid
        );
    }

    #[test]
    fn detached_session_expires_after_window() {
        let mut s = Session::new("abc".into(), 0, [0, 1], 1, 10);
        s.detached_since = Some(Instant::now() - Duration::from_secs(10));
        let (tx, _rx) = mpsc::unbounded_channel();
        assert_eq!(
            s.resume(
                0,
                ConnLink {
                    conn_id: 1,
                    tx,
                    queued: Arc::default()
                },
                Duration::from_secs(5)
            )
            .unwrap_err(),
            ResumeError::TimedOut
        );
    }
}

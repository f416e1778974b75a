//! `GET /api/stream`: the SSE response. Connect-time work (announce a quiet link, trim, read the
//! replay, register the client) runs in one synchronous section with no `await`, so no ingest can
//! slip in between the replay read and the client joining the live set: the hand-over has no gap
//! and no duplicate.

use super::{now_ms, ticker, Chunk, Hub};
use crate::event;
use crate::filter::{self, StreamQuery};
use crate::queue::QueueStream;
use crate::router;
use crate::sse;
use crate::window::{self, Resume};
use std::cell::RefCell;
use std::rc::Rc;
use worker::*;

/// Replayed frames are grouped into chunks of about this many bytes.
const REPLAY_CHUNK_BYTES: usize = 64 * 1024;

pub(crate) fn handle(hub: &Rc<RefCell<Hub>>, req: &Request) -> Result<Response> {
    let url = req.url()?;
    let mut query = match filter::parse_query(url.query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            let (status, body) = router::invalid(e);
            return super::json(status, body);
        }
    };
    // The header (set by EventSource on reconnect) is newer than a query the page was opened with.
    if let Some(h) = req.headers().get("Last-Event-ID")? {
        if !h.trim().is_empty() {
            match filter::parse_cursor("Last-Event-ID", &h) {
                Ok(c) => query.last_event_id = Some(c),
                Err(e) => {
                    let (status, body) = router::invalid(e);
                    return super::json(status, body);
                }
            }
        }
    }
    let readable = {
        let mut h = hub.borrow_mut();
        // The session's user (set by the Worker), for per-user `command.result` events.
        let user = req
            .headers()
            .get(crate::actions::USER_HEADER)?
            .filter(|u| !u.is_empty());
        let body = h.connect(query, user)?;
        h.pumps.start(body)
    };
    ticker::ensure_running(hub);

    let headers = Headers::new();
    headers.set("Content-Type", "text/event-stream; charset=utf-8")?;
    headers.set("Cache-Control", "no-cache, no-transform")?;
    headers.set("X-Accel-Buffering", "no")?;
    Ok(ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .stream(readable))
}

impl Hub {
    fn connect(&mut self, query: StreamQuery, user: Option<String>) -> Result<QueueStream<Chunk>> {
        let now = now_ms();
        self.check_link(now)?;
        self.trim(now)?;
        let head = self.head;
        // The window's edge by size and by age, whatever deletion has caught up with.
        let cutoff = window::age_cutoff(now, self.config.replay_max_age_ms);
        let floor = self
            .store
            .floor(head, cutoff)?
            .max(window::count_floor(head, self.config.replay_max_events));
        let mut preload: Vec<(Chunk, Option<u64>, u64)> = Vec::new();
        preload.push((
            super::chunk(sse::retry(self.config.retry_ms).as_bytes()),
            None,
            0,
        ));

        let resume = window::resume(query.last_event_id, floor, head);
        let replay_after = match resume {
            Resume::Live => None,
            Resume::Replay { after } => Some(after),
            Resume::GapThenReplay { gap, gap_id, after } => {
                let mut s = String::new();
                sse::event(&mut s, gap_id, sse::GAP, &event::gap_data(&gap));
                preload.push((super::chunk(s.as_bytes()), Some(gap_id), 1));
                self.metrics.replay_gaps += 1;
                Some(after)
            }
        };
        if let Some(after) = replay_after {
            self.metrics.replays += 1;
            let mut buf = String::new();
            let mut n = 0u64;
            let mut last = after;
            for e in self.store.read_after(after)? {
                last = e.cursor;
                if !e.is_for(user.as_deref(), &query.filter) {
                    continue;
                }
                e.frame(&mut buf);
                n += 1;
                if buf.len() >= REPLAY_CHUNK_BYTES {
                    preload.push((super::chunk(buf.as_bytes()), Some(last), n));
                    self.metrics.replayed_events += n;
                    buf.clear();
                    n = 0;
                }
            }
            if !buf.is_empty() {
                preload.push((super::chunk(buf.as_bytes()), Some(last), n));
                self.metrics.replayed_events += n;
            }
        }
        // The connect-time status comes after the replay, with the head as its id: the client
        // is now level with the stream.
        let status = self.link.status(now, self.config.link_quiet_ms);
        let mut s = String::new();
        sse::event(&mut s, head, sse::STATUS, &event::status_data(&status));
        preload.push((super::chunk(s.as_bytes()), Some(head), 0));

        self.metrics.connects += 1;
        Ok(self
            .clients
            .add_for_user(user, query.filter, head, now, preload))
    }
}

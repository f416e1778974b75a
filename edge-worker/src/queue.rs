//! One client's bounded queue of encoded chunks and the `Stream` that drains it into the SSE
//! response body.
//!
//! The hub pushes (never waits); the runtime pulls when the client's connection can take more.
//! A client that stops reading stops pulling, its queue fills to `max`, and the next push reports
//! [`Push::Full`]: the hub then replaces the backlog with one final `gap` chunk and closes the
//! stream, so a slow client costs the others nothing. Generic over the chunk type: the Worker
//! uses a shared JS `Uint8Array`, native tests use plain bytes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue holds `max` chunks already; nothing was added.
    Full,
    /// The stream ended or the client went away; nothing was added.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// Drain what is queued, then end the stream.
    Closing,
    /// The body stream was dropped (client disconnected).
    Detached,
}

struct Entry<C> {
    chunk: C,
    /// The last cursor in the chunk, if it carries events.
    cursor: Option<u64>,
    events: u64,
    /// Connect-time chunks don't count against the bound.
    preloaded: bool,
}

pub struct ClientQueue<C> {
    items: VecDeque<Entry<C>>,
    /// How many of `items` are connect-time chunks.
    preloaded: usize,
    max: usize,
    state: State,
    waker: Option<Waker>,
    /// The last cursor handed to the runtime (what the client has, or will get).
    delivered: u64,
    /// When something was last queued (Unix ms), to decide when a ping is due.
    pub last_push_ms: u64,
}

impl<C> ClientQueue<C> {
    /// A queue for a client whose position in the stream is `cursor`.
    pub fn new(max: usize, cursor: u64, now_ms: u64) -> Self {
        ClientQueue {
            items: VecDeque::new(),
            preloaded: 0,
            max: max.max(1),
            state: State::Open,
            waker: None,
            delivered: cursor,
            last_push_ms: now_ms,
        }
    }

    /// Queues a chunk whose last event cursor is `cursor` (None for pings and the like), counting
    /// `events` events. Initial (connect-time) chunks go through [`ClientQueue::preload`].
    pub fn push(&mut self, chunk: C, cursor: Option<u64>, events: u64, now_ms: u64) -> Push {
        match self.state {
            State::Open => {}
            State::Closing | State::Detached => return Push::Gone,
        }
        if self.items.len() - self.preloaded >= self.max {
            return Push::Full;
        }
        self.items.push_back(Entry {
            chunk,
            cursor,
            events,
            preloaded: false,
        });
        self.last_push_ms = now_ms;
        self.wake();
        Push::Queued
    }

    /// Queues connect-time chunks (retry, replay, status) regardless of the bound.
    pub fn preload(&mut self, chunk: C, cursor: Option<u64>, events: u64) {
        self.preloaded += 1;
        self.items.push_back(Entry {
            chunk,
            cursor,
            events,
            preloaded: true,
        });
    }

    /// Drops the backlog, queues `last` and ends the stream after it. Returns how many events
    /// were dropped from the backlog.
    pub fn close_with(&mut self, last: C) -> u64 {
        let dropped = self.items.drain(..).map(|e| e.events).sum();
        self.preloaded = 0;
        if self.state == State::Open {
            self.items.push_back(Entry {
                chunk: last,
                cursor: None,
                events: 0,
                preloaded: false,
            });
            self.state = State::Closing;
        }
        self.wake();
        dropped
    }

    /// Ends the stream once what is queued has been sent.
    pub fn close(&mut self) {
        if self.state == State::Open {
            self.state = State::Closing;
        }
        self.wake();
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    pub fn is_detached(&self) -> bool {
        self.state == State::Detached
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The response body: drains the queue; ends when the queue is closed and empty. Dropping it
/// (the runtime cancels the body when the client disconnects) detaches the queue.
pub struct QueueStream<C> {
    queue: Rc<RefCell<ClientQueue<C>>>,
}

impl<C> QueueStream<C> {
    pub fn new(queue: Rc<RefCell<ClientQueue<C>>>) -> Self {
        QueueStream { queue }
    }
}

impl<C> futures_core::Stream for QueueStream<C> {
    type Item = C;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C>> {
        let mut q = self.queue.borrow_mut();
        if let Some(entry) = q.items.pop_front() {
            if entry.preloaded {
                q.preloaded -= 1;
            }
            if let Some(c) = entry.cursor {
                q.delivered = c;
            }
            return Poll::Ready(Some(entry.chunk));
        }
        match q.state {
            State::Open => {
                q.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            State::Closing | State::Detached => Poll::Ready(None),
        }
    }
}

impl<C> Drop for QueueStream<C> {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.try_borrow_mut() {
            q.state = State::Detached;
            q.items.clear();
            q.preloaded = 0;
            q.waker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn drains_in_order_and_bounds_the_backlog() {
        let q = Rc::new(RefCell::new(ClientQueue::new(2, 0, 0)));
        q.borrow_mut().preload("retry", None, 0);
        let mut s = QueueStream::new(q.clone());
        assert_eq!(q.borrow_mut().push("a", Some(1), 1, 5), Push::Queued);
        assert_eq!(
            q.borrow_mut().push("b", Some(2), 1, 5),
            Push::Queued,
            "preload is free"
        );
        assert_eq!(q.borrow_mut().push("c", Some(3), 1, 5), Push::Full);
        assert_eq!(futures::executor::block_on(s.next()), Some("retry"));
        assert_eq!(
            q.borrow_mut().push("c", Some(3), 1, 5),
            Push::Full,
            "still 2 live"
        );
        assert_eq!(futures::executor::block_on(s.next()), Some("a"));
        assert_eq!(q.borrow().delivered(), 1);
        // Overflow: the backlog is replaced by the final chunk and the stream ends.
        assert_eq!(q.borrow_mut().close_with("gap"), 1);
        assert_eq!(q.borrow_mut().push("d", Some(4), 1, 5), Push::Gone);
        let rest: Vec<_> = futures::executor::block_on(s.collect::<Vec<_>>());
        assert_eq!(rest, vec!["gap"]);
    }

    #[test]
    fn dropping_the_stream_detaches() {
        let q = Rc::new(RefCell::new(ClientQueue::new(4, 0, 0)));
        drop(QueueStream::new(q.clone()));
        assert!(q.borrow().is_detached());
        assert_eq!(q.borrow_mut().push("x", None, 0, 0), Push::Gone);
    }

    #[test]
    fn pending_stream_is_woken_by_a_push() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let q = Rc::new(RefCell::new(ClientQueue::new(4, 0, 0)));
        let mut s = QueueStream::new(q.clone());
        use futures_core::Stream;
        assert!(Pin::new(&mut s).poll_next(&mut cx).is_pending());
        q.borrow_mut().push("x", Some(1), 1, 0);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut s).poll_next(&mut cx), Poll::Ready(Some("x")));
    }
}

//! Moves each client's queued chunks into its response body.
//!
//! The body is a workerd-native `IdentityTransformStream`: the hub writes chunks to its writable
//! side and workerd sends them without running any JavaScript per chunk on the way out. A client
//! has at most [`WINDOW`] writes in flight; the rest waits in its bounded queue (see
//! `crate::queue`), so a client that stops reading stops completing writes, its queue fills and it
//! is cut off as slow. When a write completes, the next queued chunks are written (joined into one
//! chunk, which the clients that fell behind together share); a write that fails means the client
//! went away, and its queue is detached.

use super::Chunk;
use crate::queue::QueueStream;
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen::prelude::*;

/// Writes a client may have in flight; while one is, new chunks wait in its queue and the next
/// write carries all of them (under load, fewer and larger writes per client).
const WINDOW: u32 = 1;
/// At most this many queued chunks are joined into one write.
const COALESCE_MAX: usize = 64;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = IdentityTransformStream)]
    type IdentityTransformStream;
    #[wasm_bindgen(constructor, js_class = "IdentityTransformStream")]
    fn new() -> IdentityTransformStream;
    #[wasm_bindgen(method, getter)]
    fn readable(this: &IdentityTransformStream) -> worker::web_sys::ReadableStream;
    #[wasm_bindgen(method, getter)]
    fn writable(this: &IdentityTransformStream) -> WritableStream;

    type WritableStream;
    #[wasm_bindgen(method, js_name = getWriter)]
    fn get_writer(this: &WritableStream) -> Writer;

    type Writer;
    #[wasm_bindgen(method)]
    fn write(this: &Writer, chunk: &JsValue) -> Promise;
    #[wasm_bindgen(method)]
    fn close(this: &Writer) -> Promise;
    #[wasm_bindgen(method)]
    fn abort(this: &Writer) -> Promise;
}

pub(crate) struct Pump {
    stream: Option<QueueStream<Chunk>>,
    writer: Writer,
    in_flight: u32,
    on_done: Option<Closure<dyn FnMut(JsValue)>>,
    on_fail: Option<Closure<dyn FnMut(JsValue)>>,
}

/// All open bodies of one hub.
#[derive(Default)]
pub(crate) struct Pumps {
    list: Vec<Rc<RefCell<Pump>>>,
}

impl Pumps {
    /// Starts a body for `stream`; returns the readable side for the response.
    pub(crate) fn start(&mut self, stream: QueueStream<Chunk>) -> worker::web_sys::ReadableStream {
        let ts = IdentityTransformStream::new();
        let readable = ts.readable();
        let writer = ts.writable().get_writer();
        let pump = Rc::new(RefCell::new(Pump {
            stream: Some(stream),
            writer,
            in_flight: 0,
            on_done: None,
            on_fail: None,
        }));
        let weak: Weak<RefCell<Pump>> = Rc::downgrade(&pump);
        let done = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(p) = weak.upgrade() {
                p.borrow_mut().in_flight -= 1;
                drive(&p);
            }
        });
        let weak: Weak<RefCell<Pump>> = Rc::downgrade(&pump);
        let fail = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(p) = weak.upgrade() {
                // The client went away: dropping the stream detaches its queue.
                p.borrow_mut().stream = None;
            }
        });
        {
            let mut p = pump.borrow_mut();
            p.on_done = Some(done);
            p.on_fail = Some(fail);
        }
        drive(&pump);
        self.list.push(pump);
        readable
    }

    /// Writes what every client has queued (after a publish or a ping round).
    pub(crate) fn drive_all(&mut self) {
        self.list.retain(|p| p.borrow().stream.is_some());
        for p in &self.list {
            drive(p);
        }
    }
}

fn drive(pump: &Rc<RefCell<Pump>>) {
    let mut guard = pump.borrow_mut();
    let p = &mut *guard;
    let mut cx = Context::from_waker(Waker::noop());
    while p.in_flight < WINDOW {
        let Some(stream) = p.stream.as_mut() else {
            return;
        };
        match futures_core::Stream::poll_next(Pin::new(&mut *stream), &mut cx) {
            Poll::Ready(Some(first)) => {
                let mut more = Vec::new();
                let mut ended = false;
                while more.len() < COALESCE_MAX {
                    match futures_core::Stream::poll_next(Pin::new(&mut *stream), &mut cx) {
                        Poll::Ready(Some(c)) => more.push(c),
                        Poll::Ready(None) => {
                            ended = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                let chunk = if more.is_empty() {
                    first
                } else {
                    join(first, &more)
                };
                p.in_flight += 1;
                let (Some(done), Some(fail)) = (&p.on_done, &p.on_fail) else {
                    return;
                };
                let _ = p.writer.write(&chunk).then2(done, fail);
                if ended {
                    let _ = p.writer.close();
                    p.stream = None;
                    return;
                }
            }
            Poll::Ready(None) => {
                // Closed by the hub (slow client, or disconnect-clients): end the body after
                // what was written. Keep the stream's queue alive until then? It is empty.
                let _ = p.writer.close();
                p.stream = None;
                return;
            }
            Poll::Pending => return,
        }
    }
}

/// Joins remembered: clients that fell behind together (every unfiltered client, under load)
/// have the very same chunks queued, and one joined chunk serves them all.
const JOINS_KEPT: usize = 4;

thread_local! {
    static JOINS: RefCell<Vec<(Vec<Chunk>, Chunk)>> = const { RefCell::new(Vec::new()) };
}

/// One chunk holding `first` and then `rest`.
fn join(first: Chunk, rest: &[Chunk]) -> Chunk {
    let same = |parts: &[Chunk]| {
        parts.len() == rest.len() + 1
            && Rc::ptr_eq(&parts[0], &first)
            && parts[1..].iter().zip(rest).all(|(a, b)| Rc::ptr_eq(a, b))
    };
    if let Some(hit) =
        JOINS.with_borrow(|j| j.iter().find(|(k, _)| same(k)).map(|(_, v)| v.clone()))
    {
        return hit;
    }
    let total = first.length() + rest.iter().map(|c| c.length()).sum::<u32>();
    let out = Uint8Array::new_with_length(total);
    out.set(&first, 0);
    let mut offset = first.length();
    for c in rest {
        out.set(c, offset);
        offset += c.length();
    }
    let out = Rc::new(out);
    let mut key = Vec::with_capacity(rest.len() + 1);
    key.push(first);
    key.extend_from_slice(rest);
    JOINS.with_borrow_mut(|j| {
        if j.len() == JOINS_KEPT {
            j.remove(0);
        }
        j.push((key, out.clone()));
    });
    out
}

//! The hub's timer: while clients are connected, it wakes every quarter of the heartbeat (or of
//! the link-quiet limit, if shorter), pings clients that have been idle for half a heartbeat and
//! announces a quiet holder link. It stops when the last client leaves.
//!
//! It runs as a `spawn_local` task sleeping on `setTimeout`: `worker::Delay` loses its waker when
//! polled from a response stream (see FACTS.md), and a DO alarm would write storage every tick.

use super::{now_ms, Hub};
use std::cell::RefCell;
use std::rc::Rc;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::{spawn_local, JsFuture};
use worker::{console_error, js_sys};

/// Never tick faster than this, whatever the settings.
const MIN_TICK_MS: u64 = 20;

pub(crate) fn ensure_running(hub: &Rc<RefCell<Hub>>) {
    {
        let mut h = hub.borrow_mut();
        if h.ticker_running {
            return;
        }
        h.ticker_running = true;
    }
    let hub = Rc::clone(hub);
    spawn_local(async move {
        loop {
            let tick = {
                let h = hub.borrow();
                (h.config.heartbeat_ms / 4)
                    .min(h.config.link_quiet_ms / 4)
                    .max(MIN_TICK_MS)
            };
            sleep(tick).await;
            let mut h = hub.borrow_mut();
            if h.clients.is_empty() {
                h.ticker_running = false;
                return;
            }
            let now = now_ms();
            if let Err(e) = h.check_link(now) {
                console_error!("hub: link check failed: {e}");
            }
            let idle = h.config.heartbeat_ms / 2;
            let (pinged, slow) = h.clients.ping(now, idle, super::chunk);
            h.pumps.drive_all();
            h.metrics.pings += pinged;
            h.metrics.slow_closed += slow;
        }
    });
}

/// Resolves after `ms` milliseconds (JavaScript `setTimeout`).
async fn sleep(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&JsValue::NULL, &resolve, &JsValue::from_f64(ms as f64));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

use worker::wasm_bindgen::JsCast;

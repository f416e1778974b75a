//! What `GET /healthz` reports: the gateway session and the edge link, each set by the task that
//! knows, read by the HTTP server without locks.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Health {
    gateway_ready: AtomicBool,
    /// The last ingest POST got a 2xx.
    link_ok: AtomicBool,
}

impl Health {
    pub fn set_gateway_ready(&self, ready: bool) {
        self.gateway_ready.store(ready, Ordering::Relaxed);
    }

    pub fn set_link_ok(&self, ok: bool) {
        self.link_ok.store(ok, Ordering::Relaxed);
    }

    /// `Ok` when healthy, else why not.
    pub fn check(&self) -> Result<(), &'static str> {
        match (
            self.gateway_ready.load(Ordering::Relaxed),
            self.link_ok.load(Ordering::Relaxed),
        ) {
            (true, true) => Ok(()),
            (false, true) => Err("gateway session is not ready"),
            (true, false) => Err("edge link is failing"),
            (false, false) => Err("gateway session is not ready and edge link is failing"),
        }
    }
}

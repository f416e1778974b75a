//! What `GET /healthz` reports: every shard's session and the edge link, each set by the task
//! that knows. Unhealthy shards are named, with the reason when there is a better one than "not
//! ready" (sessions that keep closing before READY usually mean a refused token).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

#[derive(Default)]
pub struct Health {
    /// Per shard: ready, and a problem worth naming.
    shards: Mutex<BTreeMap<u32, (bool, Option<String>)>>,
    /// The last ingest POST got a 2xx.
    link_ok: AtomicBool,
}

impl Health {
    /// The shards this holder runs (all not ready until they say so).
    pub fn expect_shards(&self, shards: impl IntoIterator<Item = u32>) {
        let mut g = self.lock();
        for s in shards {
            g.entry(s).or_insert((false, None));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, (bool, Option<String>)>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_shard_ready(&self, shard: u32, ready: bool) {
        let mut g = self.lock();
        let e = g.entry(shard).or_insert((false, None));
        e.0 = ready;
        if ready {
            e.1 = None;
        }
    }

    /// A problem to report for `shard` until it is ready again.
    pub fn set_shard_problem(&self, shard: u32, problem: Option<String>) {
        self.lock().entry(shard).or_insert((false, None)).1 = problem;
    }

    /// Shorthand for a one-shard holder (tests).
    pub fn set_gateway_ready(&self, ready: bool) {
        self.set_shard_ready(0, ready);
    }

    pub fn set_link_ok(&self, ok: bool) {
        self.link_ok.store(ok, Ordering::Relaxed);
    }

    /// `Ok` when healthy, else why not.
    pub fn check(&self) -> Result<(), String> {
        let g = self.lock();
        let mut problems: Vec<String> = g
            .iter()
            .filter(|(_, (ready, _))| !ready)
            .map(|(shard, (_, why))| match why {
                Some(w) => format!("shard {shard}: {w}"),
                None => format!("shard {shard}: gateway session is not ready"),
            })
            .collect();
        if g.is_empty() {
            problems.push("gateway session is not ready".into());
        }
        if !self.link_ok.load(Ordering::Relaxed) {
            problems.push("edge link is failing".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_unhealthy_shard() {
        let h = Health::default();
        assert!(h.check().unwrap_err().contains("not ready"));
        h.expect_shards(0..3);
        h.set_link_ok(true);
        h.set_shard_ready(0, true);
        h.set_shard_ready(2, true);
        assert_eq!(
            h.check().unwrap_err(),
            "shard 1: gateway session is not ready"
        );
        h.set_shard_problem(1, Some("3 sessions in a row closed before READY".into()));
        assert!(h.check().unwrap_err().contains("shard 1: 3 sessions"));
        h.set_shard_ready(1, true);
        assert_eq!(h.check(), Ok(()));
        h.set_link_ok(false);
        assert_eq!(h.check().unwrap_err(), "edge link is failing");
    }
}

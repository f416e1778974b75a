//! A tiny run of the command dispatch bench (seconds): 4 senders for 2 s through each entry (the
//! Worker's port, wrangler's port, the holder's /commands, the sim's REST) against discord-sim,
//! the real holder and `wrangler dev`. Asserts that every command was answered 2xx and reached
//! the sim exactly once, with no 429 from the sim, and that the report files are written; the
//! latency figures themselves are not asserted (this machine is shared and loaded).

use e2e_tests::command_bench::{self, Config, Entry};
use std::time::Duration;

#[test]
fn command_bench_smoke() {
    let cfg = Config {
        name: "command-bench-smoke".into(),
        senders: vec![4],
        step: Duration::from_secs(2),
        rate: 20.0,
        channels: 20,
        entries: vec![
            Entry::EdgeWorker,
            Entry::EdgeProxy,
            Entry::Holder,
            Entry::Sim,
        ],
        edge_log: true,
    };
    let r = command_bench::run(&cfg, &|line| eprintln!("{line}"));
    assert_eq!(r.steps.len(), 4, "one step per entry");
    for s in &r.steps {
        assert!(
            s.commands >= 20,
            "{:?} sent {} commands",
            s.entry,
            s.commands
        );
        assert_eq!(
            s.missing, 0,
            "{:?}: accepted but never reached the sim",
            s.entry
        );
        assert_eq!(s.duplicated, 0, "{:?}: reached the sim twice", s.entry);
        assert_eq!(s.dispatched, s.commands, "{:?}: {s:?}", s.entry);
        assert_eq!(s.sim_429s, 0, "{:?}: the sim answered 429", s.entry);
        assert_eq!(s.dispatch.count, s.commands);
        assert!(
            s.kinds.len() == 3,
            "{:?}: every kind was sent: {:?}",
            s.entry,
            s.kinds
        );
        if matches!(s.entry, Some(Entry::EdgeWorker | Entry::EdgeProxy)) {
            assert_eq!(
                s.worker_total.count, s.commands,
                "{:?}: the Worker logged every command's holder answer",
                s.entry
            );
        }
        if s.entry != Some(Entry::Sim) {
            assert_eq!(
                s.to_holder.count, s.commands,
                "{:?}: every command's holder receipt was found in its log",
                s.entry
            );
        }
    }
    assert!(r.clean(), "{r:?}");

    let dir = e2e_tests::repo_root()
        .join("target")
        .join("bench")
        .join(format!("command-bench-smoke-{}", std::process::id()));
    let files = command_bench::write(&dir, &r).expect("write report");
    assert_eq!(files.len(), 2);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("command-bench.json")).unwrap()).unwrap();
    assert_eq!(json["version"], "1.0");
    assert_eq!(json["steps"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["steps"][0]["entry"], "edge_worker");
    let md = std::fs::read_to_string(dir.join("command-bench.md")).unwrap();
    for label in [
        "edge (worker port)",
        "edge (wrangler port)",
        "holder /commands",
        "sim REST (floor)",
    ] {
        assert!(
            md.contains(&format!("| 4 | {label} | ")),
            "{label} row in {md}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! A short run of the whole-pipeline bench (seconds): discord-sim → the real holder →
//! `wrangler dev` → 20 SSE clients, 100 msgs/s for 5 s with one 500 msgs/s burst, commands
//! flowing back, one dropped gateway socket and one holder restart (kill + resume). Asserts that
//! every emitted dispatch reached every client exactly once and that the report files are
//! written; the figures themselves are not asserted (this machine is shared and loaded).

use e2e_tests::pipeline::{self, Config, FaultKind};
use e2e_tests::pipeline_report::{self, Extras};
use std::time::Duration;

#[test]
fn pipeline_smoke() {
    let cfg = Config {
        name: "pipeline-smoke".into(),
        clients: 20,
        rate: 100.0,
        burst_rate: 500.0,
        burst_length: Duration::from_millis(500),
        burst_every: Duration::from_secs(60),
        duration: Duration::from_secs(5),
        faults: vec![
            (Duration::from_millis(1500), FaultKind::DropTcp),
            (Duration::from_millis(3000), FaultKind::HolderRestart),
        ],
        random_fault_every: Duration::ZERO,
        commands_per_sec: 2.0,
        settle: Duration::from_secs(90),
    };
    let r = pipeline::run(&cfg);
    assert_eq!(r.clients_connected, r.clients, "every client connected");
    assert!(r.emitted >= 400, "the sim emitted {} dispatches", r.emitted);
    assert_eq!(
        (r.lost, r.duplicated, r.unexpected),
        (0, 0, 0),
        "lost / duplicated / unexpected events: {r:?}"
    );
    assert_eq!(r.delivered, r.emitted as u64 * r.clients as u64);
    assert_eq!(r.faults.len(), 2);
    assert!(
        r.faults.iter().all(|f| f.recovery_ms.is_some()),
        "an event emitted after each fault was delivered: {:?}",
        r.faults
    );
    assert!(r.commands_answered_ok > 0, "commands were accepted");

    let dir = e2e_tests::repo_root()
        .join("target")
        .join("bench")
        .join(format!("pipeline-smoke-{}", std::process::id()));
    let files =
        pipeline_report::write(&dir, &r, &[], None, &Extras::default()).expect("write report");
    for f in &files {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} written", f.display());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("pipeline.json")).unwrap()).unwrap();
    assert_eq!(json["version"], "1.0");
    assert_eq!(json["load"]["lost"], 0);
    let md = std::fs::read_to_string(dir.join("pipeline.md")).unwrap();
    assert!(md.contains("| events lost / duplicated | 0 / 0 |"), "{md}");
    for png in ["pipeline-cdf.png", "pipeline-timeline.png"] {
        let bytes = std::fs::read(dir.join(png)).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG", "{png} is a PNG");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Short runs of the whole-pipeline bench: discord-sim → the real holder → `wrangler dev` → 20
//! SSE clients.
//! - `pipeline_smoke` (seconds): three guilds on two shards, 100 msgs/s for 5 s with one 500
//!   msgs/s burst, commands flowing back, one dropped gateway socket and one holder restart
//!   (kill + resume); each client streams one guild.
//! - `pipeline_soak_ci` (60 s, the CI soak): 100 msgs/s with a random fault every 6 s drawn from
//!   the soak's list (every kind once, holder and edge restarts included).
//!
//! Both assert that every emitted dispatch reached every client exactly once (clients reconnect
//! with `Last-Event-ID`) and that the report files are written; the figures themselves are not
//! asserted (this machine is shared and loaded). They run one after the other.

use e2e_tests::pipeline::{self, Config, Fanout, FaultKind, RANDOM_FAULTS};
use e2e_tests::pipeline_report::{self, Extras};
use std::sync::Mutex;
use std::time::Duration;

/// One whole stack at a time: two at once on a 2-core machine would only measure each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn pipeline_smoke() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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
        fanout: Fanout::Edge,
        ingest_via_wrangler: false,
        twilight: false,
        // Three guilds on two shards: every guild's stream gets exactly its guild's events
        // through the faults.
        guilds: 3,
        shards: 2,
    };
    let r = pipeline::run(&cfg);
    assert_eq!(r.clients_connected, r.clients, "every client connected");
    assert!(r.emitted >= 400, "the sim emitted {} dispatches", r.emitted);
    assert_eq!(r.per_guild.len(), 3, "{:?}", r.per_guild);
    assert!(
        r.per_guild.iter().all(|g| g.emitted > 0),
        "traffic in every guild: {:?}",
        r.per_guild
    );
    assert_eq!(
        (r.lost, r.duplicated, r.unexpected),
        (0, 0, 0),
        "lost / duplicated / unexpected events: {r:?}"
    );
    assert_eq!(r.delivered, r.expected_deliveries(), "{:?}", r.per_guild);
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

#[test]
fn pipeline_soak_ci() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = Config {
        name: "pipeline-soak-ci".into(),
        clients: 20,
        rate: 100.0,
        burst_rate: 0.0,
        burst_length: Duration::ZERO,
        burst_every: Duration::ZERO,
        duration: Duration::from_secs(60),
        faults: Vec::new(),
        random_fault_every: Duration::from_secs(6),
        commands_per_sec: 1.0,
        settle: Duration::from_secs(120),
        fanout: Fanout::Edge,
        ingest_via_wrangler: false,
        twilight: false,
        guilds: 1,
        shards: 1,
    };
    let r = pipeline::run(&cfg);
    let kinds: Vec<FaultKind> = r.faults.iter().map(|f| f.kind).collect();
    for k in RANDOM_FAULTS {
        assert!(kinds.contains(&k), "{k:?} was injected: {kinds:?}");
    }
    assert_eq!(r.clients_connected, r.clients, "every client connected");
    assert!(
        r.emitted >= 4000,
        "the sim emitted {} dispatches",
        r.emitted
    );
    assert_eq!(
        (r.lost, r.duplicated, r.unexpected),
        (0, 0, 0),
        "lost / duplicated / unexpected events over {} faults ({kinds:?})",
        r.faults.len()
    );
    // Dispatches of no guild (READY, RESUMED) go to the bot-wide record, not to the stream.
    assert_eq!(r.delivered, r.expected_deliveries(), "{:?}", r.per_guild);
    assert!(
        r.client_reconnects >= r.clients as u64,
        "edge restarts made the clients reconnect"
    );
    assert!(
        r.faults.iter().all(|f| f.recovery_ms.is_some()),
        "an event emitted after each fault was delivered: {:?}",
        r.faults
    );

    let dir = e2e_tests::repo_root()
        .join("target")
        .join("bench")
        .join(format!("pipeline-soak-ci-{}", std::process::id()));
    pipeline_report::write(&dir, &r, &[], Some(&r), &Extras::default()).expect("write report");
    let md = std::fs::read_to_string(dir.join("pipeline.md")).unwrap();
    assert!(md.contains("### Soak"), "{md}");
    assert!(md.contains("RSS slope holder / workerd (MB/min)"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

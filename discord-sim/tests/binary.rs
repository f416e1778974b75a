//! The `discord-sim` binary: starts on the given address, prints where it listens, serves REST
//! with the configured token, and runs the demo scenario when asked.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_rest_and_gateway_with_the_demo_scenario() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_discord-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            "bin-token",
            "--scenario",
            "demo",
            "--heartbeat-interval-ms",
            "30000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let child = Killed(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(common::WAIT, line)
        .await
        .expect("prints its address in time")
        .unwrap()
        .unwrap();
    // "discord-sim listening: gateway ws://127.0.0.1:PORT REST http://… control …"
    let gateway = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .expect("gateway URL in the banner")
        .to_owned();
    let addr: std::net::SocketAddr = gateway.trim_start_matches("ws://").parse().unwrap();

    let r = common::http(
        addr,
        "GET",
        "/api/v10/gateway/bot",
        &[("authorization", "Bot bin-token")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["url"], gateway);
    let r = common::http(
        addr,
        "GET",
        "/api/v10/gateway/bot",
        &[("authorization", "Bot sim-token")],
        None,
    )
    .await;
    assert_eq!(r.status, 401, "only the configured token is accepted");
    // `--scenario demo` runs three guilds.
    let guilds = common::http(addr, "GET", "/_sim/guilds", &[], None)
        .await
        .json();
    assert_eq!(guilds.as_array().unwrap().len(), 3);

    let mut raw = common::Raw::connect(&gateway, true).await;
    raw.handshake("bin-token", common::ALL_INTENTS).await;
    // The demo scenario keeps the guild busy.
    let d = tokio::time::timeout(Duration::from_secs(10), raw.dispatch())
        .await
        .expect("demo activity");
    assert_eq!(d["op"], 0);
    drop(child);
}

#[tokio::test]
async fn binary_flags_set_guilds_shards_and_max_concurrency() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_discord-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--scenario",
            "demo",
            "--guilds",
            "5",
            "--shards",
            "2",
            "--max-concurrency",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let _child = Killed(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(common::WAIT, line)
        .await
        .expect("prints its address in time")
        .unwrap()
        .unwrap();
    let gateway = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .expect("gateway URL in the banner")
        .to_owned();
    let addr: std::net::SocketAddr = gateway.trim_start_matches("ws://").parse().unwrap();
    let v = common::http(
        addr,
        "GET",
        "/api/v10/gateway/bot",
        &[("authorization", "Bot sim-token")],
        None,
    )
    .await
    .json();
    assert_eq!(v["shards"], 2);
    assert_eq!(v["session_start_limit"]["max_concurrency"], 2);
    let guilds = common::http(addr, "GET", "/_sim/guilds", &[], None)
        .await
        .json();
    let names: std::collections::BTreeSet<&str> = guilds
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5, "five distinct guilds: {names:?}");
}

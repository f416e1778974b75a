//! The demo console in Chromium against the whole running stack: discord-sim → the real holder
//! binary → `wrangler dev` serving the page → the page's EventSource and command buttons. One
//! browser walks through the checks with the test, which plays the guild (tests/browser/
//! demo.mjs has the protocol): the feed shows the sim's messages, a message sent from the page
//! reaches the sim and comes back in the feed, a voice drop-out raises an alert, and a holder
//! killed and restarted shows Discord offline then ready with no duplicated or missing rows.
//! Screenshots go to target/artifacts/demo-*.png.

use discord_sim::config::demo::{ALICE, BOB, GENERAL};
use discord_sim::{Sim, SimEvent};
use e2e_tests::browser::PageScript;
use e2e_tests::edge::{Edge, JWT_SECRET, LINK_TOKEN};
use e2e_tests::stack::HolderProc;
use e2e_tests::{free_port, repo_root};

fn emit_messages(rt: &tokio::runtime::Runtime, sim: &Sim, tag: &str, n: usize) {
    rt.block_on(async {
        for i in 0..n {
            sim.emit(SimEvent::MessageCreate {
                channel_id: GENERAL,
                author_id: BOB,
                content: format!("{tag} {i}"),
            })
            .await;
        }
    });
}

#[test]
fn demo_console_feed_commands_voice_and_holder_restart() {
    let (rt, sim) = e2e_tests::stack::start_sim(2);
    let holder_port = free_port();
    let holder_url = format!("http://127.0.0.1:{holder_port}");
    let edge = Edge::start(
        "demo",
        &[
            ("PUBLIC_READ", "true"),
            ("DEV_LOGIN", "true"),
            ("HOLDER_URL", &holder_url),
            ("VOICE_GRACE_MS", "1500"),
            ("LINK_QUIET_MS", "1500"),
            ("SSE_HEARTBEAT_MS", "1000"),
        ],
    );
    let mut holder = HolderProc::start("demo", holder_port, edge.port, &sim.api_url());

    let artifacts = repo_root().join("target").join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempdir("demo-chromium");
    let edge_origin = format!("http://127.0.0.1:{}", edge.port);
    let general = GENERAL.to_string();
    let page = PageScript::start(
        "demo.mjs",
        &[
            edge_origin.as_ref(),
            general.as_ref(),
            profile.as_os_str(),
            artifacts.as_os_str(),
        ],
    );
    let expect = |step: &str| page.expect(step, || edge.log_tail());

    expect("LIVE");
    emit_messages(&rt, &sim, "sim says", 3);
    page.next();

    expect("FEED");
    page.next();

    expect("SENT");
    let sent = sim
        .rest_calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.body.contains("hello from the page"))
        .count();
    assert_eq!(sent, 1, "the page's message reached Discord once");
    // Alice leaves voice and does not come back: a drop-out after the grace period.
    rt.block_on(sim.emit(SimEvent::VoiceLeave { user_id: ALICE }));
    page.next();

    expect("DROPOUT");
    holder.kill();
    page.next();

    expect("OFFLINE");
    // Sent while no holder is connected: Discord replays them when the holder resumes.
    emit_messages(&rt, &sim, "while down", 3);
    holder.restart();
    emit_messages(&rt, &sim, "after restart", 5);
    page.next();

    let done = expect("DONE");
    let state: serde_json::Value = serde_json::from_str(done.trim_start_matches("DONE ")).unwrap();
    let ids: Vec<u64> = state["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "cursors repeat or go back: {ids:?}"
    );
    let rows: Vec<&str> = state["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for tag in ["sim says", "while down", "after restart"] {
        let n = if tag == "after restart" { 5 } else { 3 };
        for i in 0..n {
            let text = format!("bob: {tag} {i}");
            let count = rows.iter().filter(|r| **r == text).count();
            assert_eq!(count, 1, "{text:?} shown {count} times; rows: {rows:#?}");
        }
    }
    assert_eq!(
        rows.iter()
            .filter(|r| r.ends_with("hello from the page"))
            .count(),
        1
    );
    page.finish();
    // No secret reaches a log or anything the browser received.
    let browser_saw = done.clone();
    for (place, text) in [
        ("edge log", edge.log_text()),
        ("holder log", holder.log_text()),
        ("browser", browser_saw),
    ] {
        for secret in [LINK_TOKEN, JWT_SECRET, "sim-token"] {
            assert!(
                !text.contains(secret),
                "{place} contains the secret {secret:?}"
            );
        }
    }
    for shot in [
        "demo-feed.png",
        "demo-dropout.png",
        "demo-offline.png",
        "demo-back.png",
    ] {
        assert!(artifacts.join(shot).exists(), "no screenshot {shot}");
    }
    let _ = std::fs::remove_dir_all(profile);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

//! Talking to Discord like a well-behaved client (issue #21), end to end against discord-sim:
//! a Discord-style `User-Agent` on every REST call and the gateway handshake (the sim refuses
//! REST calls without one), a server that numbers from `s: 0`, and a server that closes every
//! session before READY (as a bad token can look on a Discord-compatible server).

mod common;

use common::*;
use discord_sim::{config::demo, Fault, SimConfig, SimEvent};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn is_discord_user_agent(ua: Option<&str>) -> bool {
    ua.is_some_and(|ua| {
        ua.starts_with("DiscordBot (https://") && ua.contains(", ") && ua.contains(')')
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_call_and_the_handshake_carry_a_discord_user_agent() {
    let sim = start_sim(sim_config()).await;
    assert!(sim.config().require_user_agent);
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        true,
        &[("HOLDER_USER_AGENT_EXTRA", "e2e-suite")],
    ));
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 1))
        .await
        .unwrap_or_else(|_| panic!("no IDENTIFY:\n{}", holder.stderr_text()));
    // A REST command too: the send goes through the command queue's client.
    let addr = holder.http_addr().await;
    let client = http_client();
    let r = client
        .post(format!("http://{addr}/commands"))
        .bearer_auth(LINK_TOKEN)
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "version": "1.0",
                "command_id": "ua-1",
                "guild_id": demo::GUILD_ID.to_string(),
                "user": "u1",
                "wait_ms": 5000,
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "command": {"kind": "send_message", "body": {"channel_id": demo::GENERAL.to_string(), "content": "hi"}},
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    let calls = sim.rest_calls();
    assert!(calls.iter().any(|c| c.path.ends_with("/gateway/bot")));
    assert!(calls.iter().any(|c| c.path.ends_with("/messages")));
    for c in &calls {
        assert!(
            is_discord_user_agent(c.user_agent.as_deref()),
            "{} {} sent User-Agent {:?}",
            c.method,
            c.path,
            c.user_agent
        );
        assert!(c.user_agent.as_deref().unwrap().ends_with(" e2e-suite"));
    }
    assert_eq!(sim.stats().rest_bad_user_agent, 0);
    for conn in sim.connections() {
        assert!(
            is_discord_user_agent(conn.user_agent.as_deref()),
            "handshake sent {:?}",
            conn.user_agent
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_numbering_from_zero_loses_no_dispatch() {
    let sim = start_sim(SimConfig {
        first_seq: 0,
        ..sim_config()
    })
    .await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    for i in 0..5 {
        sim.emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::ALICE,
            content: format!("m{i}"),
        })
        .await;
    }
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    let unique = ingest.unique();
    assert_eq!(unique[0].kind, "READY");
    assert_eq!(unique[0].seq, 0);
    // No id skipped: consecutive from READY's.
    for pair in unique.windows(2) {
        assert_eq!(
            pair[1].id,
            pair[0].id + 1,
            "{} then {}",
            pair[0].id,
            pair[1].id
        );
    }
    let metrics = metrics_text(&http_client(), holder.http_addr().await).await;
    assert!(
        metrics.contains("holder_duplicate_dispatches_skipped_total 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_close_before_ready_back_off_and_say_so() {
    // A small session-start budget: the holder must never spend past it.
    // Pacing off on both sides so the holder's own backoff is what spaces the attempts.
    let sim = start_sim(SimConfig {
        session_start_total: 6,
        identify_window: Duration::ZERO,
        ..sim_config()
    })
    .await;
    sim.fault(Fault::CloseBeforeReady(Some(4000))).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        true,
        &[("HOLDER_IDENTIFY_WINDOW_MS", "0")],
    ));
    let line = holder
        .wait_line("sessions in a row closed before READY", T)
        .await;
    assert!(line.contains("check DISCORD_BOT_TOKEN"), "{line}");
    assert!(line.contains("shard=0/1"), "{line}");
    let text = holder.stderr_text();
    assert!(
        !text.contains("will RESUME"),
        "no session existed to resume:\n{text}"
    );
    assert!(
        text.contains("no session to resume, will IDENTIFY"),
        "{text}"
    );

    let client = http_client();
    let addr = holder.http_addr().await;
    let body = wait_status(&client, &format!("http://{addr}/healthz"), 503, T).await;
    assert!(
        body.contains("sessions in a row closed before READY"),
        "{body}"
    );
    let metrics = metrics_text(&client, &addr).await;
    let failed: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("holder_gateway_sessions_failed_before_ready{shard=\"0\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no failed-before-READY gauge:\n{metrics}"));
    assert!(failed >= 3, "{failed}");

    // Backing off: the attempts come further and further apart, and never past the budget
    // (the sim refuses an IDENTIFY past it with 4004, which would end the process).
    tokio::time::timeout(T, sim.wait_for(|s| s.identify_attempts >= 6))
        .await
        .unwrap_or_else(|_| panic!("{:?}", sim.identify_log()));
    let budget_line = holder.wait_line("session start budget spent", T).await;
    assert!(budget_line.contains("waiting"), "{budget_line}");
    let attempts = sim.identify_log();
    assert_eq!(attempts.len(), 6, "{attempts:?}");
    assert!(attempts.iter().all(|a| a.outcome == "closed_before_ready"));
    let gaps: Vec<u64> = attempts
        .windows(2)
        .map(|w| w[1].at_us - w[0].at_us)
        .collect();
    assert!(
        gaps.last() > gaps.first(),
        "the retries do not back off: {gaps:?}"
    );
    assert_eq!(holder.stderr_text().matches("4004").count(), 0);
}

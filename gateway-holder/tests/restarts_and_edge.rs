//! End to end: holder restarts (SIGKILL, SIGTERM) and edge failures (down for 10 s, 5xx, 413,
//! wrong token). Nothing may be lost or delivered under two ids; a restarted holder RESUMEs.

mod common;

use common::*;
use contracts::GatewayState;
use discord_sim::{config::demo, SimEvent, TrafficSpec};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// `gateway-holder healthcheck` against the holder at `base` (`http://ADDR`); its exit code.
fn healthcheck(base: &str) -> i32 {
    std::process::Command::new(env!("CARGO_BIN_EXE_gateway-holder"))
        .arg("healthcheck")
        .env_clear()
        .env("HOLDER_LISTEN", base.trim_start_matches("http://"))
        .status()
        .expect("healthcheck runs")
        .code()
        .unwrap_or(-1)
}

async fn identified(sim: &discord_sim::Sim, n: u64) {
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= n))
        .await
        .expect("holder identifies");
}

fn one_epoch(ingest: &Ingest) {
    let epochs: std::collections::HashSet<String> =
        ingest.batches().into_iter().map(|b| b.epoch).collect();
    assert_eq!(
        epochs.len(),
        1,
        "a restart with saved state keeps the epoch: {epochs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_traffic_then_restart_resumes_and_loses_nothing() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    identified(&sim, 1).await;
    let traffic = sim.traffic(TrafficSpec::steady(300.0, Duration::from_secs(3)));
    ingest
        .wait_for("200 envelopes", T, |i| i.unique().len() >= 200)
        .await;
    first.kill9();

    let second = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    tokio::time::timeout(T, sim.wait_for(|s| s.resumes >= 1))
        .await
        .unwrap_or_else(|_| panic!("restarted holder did not resume:\n{}", second.stderr_text()));
    traffic.await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_eq!(
        sim.stats().identifies,
        1,
        "the restart resumed instead of identifying"
    );
    one_epoch(&ingest);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_edge_is_down_keeps_the_spill() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let small = [("HOLDER_BUFFER_MEMORY_BYTES", "4096")];
    let mut first = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), false, &small));
    identified(&sim, 1).await;
    let traffic = sim.traffic(TrafficSpec::steady(200.0, Duration::from_secs(3)));
    ingest
        .wait_for("50 envelopes", T, |i| i.unique().len() >= 50)
        .await;
    ingest.set_mode(Mode::Down).await;
    first.wait_line("spilled buffered envelopes", T).await;
    first.kill9();

    let second = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), false, &small));
    tokio::time::timeout(T, sim.wait_for(|s| s.resumes >= 1))
        .await
        .unwrap_or_else(|_| panic!("restarted holder did not resume:\n{}", second.stderr_text()));
    traffic.await;
    ingest.set_mode(Mode::Ok).await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_eq!(sim.stats().identifies, 1);
    one_epoch(&ingest);
    sim.shutdown().await;
}

/// Hundreds of envelopes only in memory (edge down, no spill yet) when the holder is killed: the
/// saved seq must not cover them, so the RESUME after the restart makes Discord replay them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_undelivered_envelopes_in_memory_replays_them() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    identified(&sim, 1).await;
    ingest
        .wait_for("the first batch", T, |i| !i.unique().is_empty())
        .await;
    ingest.set_mode(Mode::Down).await;
    let before = sim.stats().emitted;
    let traffic = sim.traffic(TrafficSpec::steady(300.0, Duration::from_secs(2)));
    tokio::time::timeout(T, sim.wait_for(|s| s.emitted >= before + 300))
        .await
        .expect("traffic flows");
    first.kill9();
    ingest.set_mode(Mode::Ok).await;
    let second = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    tokio::time::timeout(T, sim.wait_for(|s| s.resumes >= 1))
        .await
        .unwrap_or_else(|_| panic!("restarted holder did not resume:\n{}", second.stderr_text()));
    traffic.await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_eq!(sim.stats().identifies, 1);
    one_epoch(&ingest);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_keeps_the_session_and_restart_resumes() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fast_flush = [("HOLDER_FLUSH_TIMEOUT_MS", "500")];
    let mut first = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        true,
        &fast_flush,
    ));
    identified(&sim, 1).await;
    let traffic = sim.traffic(TrafficSpec::steady(200.0, Duration::from_secs(3)));
    ingest
        .wait_for("100 envelopes", T, |i| i.unique().len() >= 100)
        .await;
    // The edge is down at shutdown: the flush gives up after 500 ms and spills.
    ingest.set_mode(Mode::Down).await;
    first.sigterm();
    assert_eq!(
        first.wait_exit(Duration::from_secs(10)).await,
        Some(0),
        "{}",
        first.stderr_text()
    );
    let closed = sim
        .connections()
        .into_iter()
        .find(|c| c.closed_by_client)
        .expect("holder closed its connection");
    assert_eq!(
        closed.close_code,
        Some(4000),
        "closed without ending the session"
    );

    ingest.set_mode(Mode::Ok).await;
    let second = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        true,
        &fast_flush,
    ));
    tokio::time::timeout(T, sim.wait_for(|s| s.resumes >= 1))
        .await
        .unwrap_or_else(|_| panic!("restarted holder did not resume:\n{}", second.stderr_text()));
    traffic.await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_eq!(sim.stats().identifies, 1);
    assert_eq!(sim.stats().resumes, 1);
    one_epoch(&ingest);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_down_for_10s_buffers_spills_and_delivers_in_order() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        true,
        &[("HOLDER_BUFFER_MEMORY_BYTES", "16384")],
    ));
    let http = http_client();
    let base = format!("http://{}", holder.http_addr().await);
    identified(&sim, 1).await;
    wait_status(&http, &format!("{base}/healthz"), 200, T).await;
    ingest
        .wait_for("an idle keep-alive with the gateway state", T, |i| {
            i.batches()
                .iter()
                .any(|b| b.envelopes.is_empty() && b.gateway == Some(GatewayState::Ready))
        })
        .await;

    assert_eq!(healthcheck(&base), 0, "the container healthcheck passes");
    let traffic = sim.traffic(TrafficSpec::steady(100.0, Duration::from_secs(13)));
    ingest
        .wait_for("50 envelopes", T, |i| i.unique().len() >= 50)
        .await;
    ingest.set_mode(Mode::Down).await;
    let body = wait_status(&http, &format!("{base}/healthz"), 503, T).await;
    assert!(body.contains("edge"), "{body}");
    assert_eq!(
        healthcheck(&base),
        1,
        "the container healthcheck sees the outage"
    );
    // The outage itself: ten seconds of the edge refusing everything.
    tokio::time::sleep(Duration::from_secs(10)).await;
    ingest.set_mode(Mode::Ok).await;
    traffic.await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    holder
        .wait_line("spilled buffered envelopes", Duration::from_secs(1))
        .await;
    wait_status(&http, &format!("{base}/healthz"), 200, T).await;

    let metrics = wait_status(&http, &format!("{base}/metrics"), 200, T).await;
    for family in [
        "holder_gateway_state{state=\"ready\",shard=\"0\"} 1",
        "holder_events_out_total{type=\"MESSAGE_CREATE\"}",
        "holder_ingest_posts_total{result=\"retry\"}",
        "holder_forward_latency_seconds_count",
        "holder_gateway_sessions_total{kind=\"identify\",shard=\"0\"} 1",
        "holder_heartbeat_rtt_seconds_count",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    assert!(!metrics.contains(LINK_TOKEN) && !metrics.contains(BOT_TOKEN));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_413_splits_batches() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), false, &[]));
    identified(&sim, 1).await;
    ingest
        .wait_for("the first batch", T, |i| !i.unique().is_empty())
        .await;

    ingest.set_mode(Mode::Fail500).await;
    for i in 0..40 {
        sim.emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::BOB,
            content: format!("m{i}"),
        })
        .await;
    }
    ingest
        .wait_for("three 500s", T, |i| i.refused(500) >= 3)
        .await;
    ingest.set_mode(Mode::MaxEnvelopes(3)).await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert!(
        ingest.refused(413) >= 1,
        "a batch over the limit was sent and split"
    );
    assert!(ingest.batches().iter().all(|b| b.envelopes.len() <= 3));
    assert_exactly_once_in_order(&sim, &ingest);
    drop(holder);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_link_token_is_logged_as_such_and_never_leaked() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        true,
        &[("LINK_TOKEN", "not-the-right-link-token")],
    ));
    identified(&sim, 1).await;
    holder.wait_line("LINK_TOKEN is wrong", T).await;
    let http = http_client();
    let base = format!("http://{}", holder.http_addr().await);
    let body = wait_status(&http, &format!("{base}/healthz"), 503, T).await;
    assert!(body.contains("edge link"), "{body}");
    assert!(ingest.refused(401) >= 1);
    let log = holder.stderr_text();
    assert!(!log.contains("not-the-right-link-token") && !log.contains(BOT_TOKEN));
    sim.shutdown().await;
}

/// Past the spill bound the oldest envelopes are dropped, and the next batch says so with a gap
/// covering exactly the ids that never arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_the_spill_drops_the_oldest_with_a_gap() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        true,
        &[
            ("HOLDER_BUFFER_MEMORY_BYTES", "2048"),
            ("HOLDER_SPILL_MAX_BYTES", "16384"),
        ],
    ));
    identified(&sim, 1).await;
    ingest
        .wait_for("READY and GUILD_CREATE", T, |i| i.unique().len() >= 2)
        .await;
    ingest.set_mode(Mode::Down).await;
    for i in 0..200 {
        sim.emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::CAROL,
            content: format!("overflow {i}"),
        })
        .await;
    }
    holder.wait_line("dropped buffered envelopes", T).await;
    ingest.set_mode(Mode::Ok).await;
    let last_seq = sent(&sim).last().unwrap().1;
    ingest
        .wait_for("the last message", T, |i| {
            i.unique().iter().any(|e| e.seq == last_seq)
        })
        .await;

    let gaps: Vec<_> = ingest.batches().into_iter().flat_map(|b| b.gaps).collect();
    assert!(!gaps.is_empty(), "a gap was reported");
    let unique = ingest.unique();
    let delivered: std::collections::HashSet<u64> = unique.iter().map(|e| e.id).collect();
    let (first, last) = (unique[0].id, unique.last().unwrap().id);
    for id in first..=last {
        let in_gap = gaps.iter().any(|g| g.from_id <= id && id <= g.to_id);
        assert!(
            delivered.contains(&id) != in_gap,
            "id {id} must be either delivered or in a gap, not {}",
            if in_gap { "both" } else { "neither" }
        );
    }
    // What did arrive is verbatim and in order.
    let want: Vec<_> = sent(&sim)
        .into_iter()
        .filter(|w| unique.iter().any(|e| e.session_id == w.0 && e.seq == w.1))
        .collect();
    assert_eq!(got(&ingest), want);
    assert!(ingest.conflicts().is_empty());
    sim.shutdown().await;
}

/// Killed, then the RESUME is refused after the restart: the new session must be numbered above
/// every id the killed process could have sent (the saved reservation), so no id is reused for a
/// different dispatch, and everything of the new session arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_after_a_kill_never_reuses_an_id() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    identified(&sim, 1).await;
    let traffic = sim.traffic(TrafficSpec::steady(300.0, Duration::from_secs(1)));
    ingest
        .wait_for("100 envelopes", T, |i| i.unique().len() >= 100)
        .await;
    first.kill9();
    traffic.await;
    let old_max = ingest.unique().iter().map(|e| e.id).max().unwrap();
    let old_session = ingest.unique()[0].session_id.clone();

    sim.fault(discord_sim::Fault::RefuseResume(true)).await;
    let second = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 2))
        .await
        .unwrap_or_else(|_| panic!("no new session:\n{}", second.stderr_text()));
    sim.fault(discord_sim::Fault::RefuseResume(false)).await;
    for i in 0..20 {
        sim.emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::DAVE,
            content: format!("new session {i}"),
        })
        .await;
    }
    let new_session: Vec<_> = sent(&sim)
        .into_iter()
        .filter(|w| w.0 != old_session)
        .collect();
    let n = new_session.len();
    ingest
        .wait_for("the new session's dispatches", T, |i| {
            i.unique()
                .iter()
                .filter(|e| e.session_id != old_session)
                .count()
                >= n
        })
        .await;
    assert!(ingest.conflicts().is_empty(), "{:?}", ingest.conflicts());
    let unique = ingest.unique();
    let fresh: Vec<_> = unique
        .iter()
        .filter(|e| e.session_id != old_session)
        .collect();
    assert!(
        fresh.iter().all(|e| e.id > old_max),
        "new ids start above {old_max}"
    );
    let got: Vec<_> = fresh
        .iter()
        .map(|e| {
            (
                e.session_id.clone(),
                e.seq,
                e.kind.clone(),
                e.d.get().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, new_session);
    one_epoch(&ingest);
    sim.shutdown().await;
}

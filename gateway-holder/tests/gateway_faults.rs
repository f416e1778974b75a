//! End to end: the real holder binary against an in-process discord-sim and a recording ingest
//! endpoint. For each Discord failure the holder must deliver every dispatch exactly once, in
//! order, with `d` byte-identical, and resume or re-identify exactly as Discord requires.

mod common;

use common::*;
use contracts::GatewayState;
use discord_sim::{config::demo, Fault, SimConfig, SimEvent};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

async fn emit_messages(sim: &discord_sim::Sim, n: usize, tag: &str) {
    for i in 0..n {
        sim.emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::ALICE,
            content: format!("{tag} {i} \u{e9}\"\\ \u{1F600}"),
        })
        .await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Resume,
    Reidentify,
}

struct Scenario {
    fault: Fault,
    expect: Expect,
    compression: Compression,
    /// Emit while the holder is (about to be) disconnected: Discord must replay these on RESUME.
    emit_during: bool,
    /// Applied once the holder reconnected (e.g. turn ACKs back on).
    after: Option<Fault>,
    config: SimConfig,
    /// What the holder must have logged.
    log_lines: &'static [&'static str],
}

/// A holder identified on a fresh sim, with 10 messages delivered: where most fault tests start.
struct Running {
    sim: discord_sim::Sim,
    ingest: Ingest,
    holder: Holder,
    dir: tempfile::TempDir,
}

async fn running(config: SimConfig, compression: Compression) -> Running {
    let sim = start_sim(config).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(
        &HolderEnv::new(&sim, &ingest, dir.path(), false, &[]).with_compression(compression),
    );
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 1))
        .await
        .expect("holder identifies");
    emit_messages(&sim, 10, "before").await;
    wait_all_delivered(&sim, &ingest, T).await;
    Running {
        sim,
        ingest,
        holder,
        dir,
    }
}

impl Scenario {
    /// `compressed`: with [`test_compression`].
    fn new(fault: Fault, expect: Expect, compressed: bool) -> Self {
        Scenario {
            fault,
            expect,
            compression: if compressed {
                test_compression()
            } else {
                Compression::None
            },
            emit_during: expect == Expect::Resume,
            after: None,
            config: sim_config(),
            log_lines: &[],
        }
    }

    async fn run(self) {
        let Running {
            sim,
            ingest,
            mut holder,
            dir: _dir,
        } = running(self.config.clone(), self.compression).await;

        let before = sim.stats();
        sim.fault(self.fault.clone()).await;
        if self.emit_during {
            emit_messages(&sim, 10, "during").await;
        }
        let expect = self.expect;
        let stats = tokio::time::timeout(
            T,
            sim.wait_for(|s| match expect {
                Expect::Resume => s.resumes > before.resumes,
                Expect::Reidentify => s.identifies > before.identifies,
            }),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{:?} did not lead to {expect:?}; holder log:\n{}",
                self.fault,
                holder.stderr_text()
            )
        });
        if let Some(after) = self.after.clone() {
            sim.fault(after).await;
        }
        emit_messages(&sim, 10, "after").await;
        wait_all_delivered(&sim, &ingest, T).await;
        assert_exactly_once_in_order(&sim, &ingest);

        match expect {
            Expect::Resume => assert_eq!(stats.identifies, 1, "resumed, never re-identified"),
            Expect::Reidentify => {
                assert_eq!(sim.stats().resumes, 0, "a dead session is never resumed");
                assert_eq!(sim.stats().identifies, 2);
            }
        }
        // Every connection the holder closed itself kept the session resumable.
        for c in sim.connections() {
            if c.closed_by_client {
                assert!(
                    !matches!(c.close_code, Some(1000) | Some(1001)),
                    "holder ended a session with {:?}",
                    c.close_code
                );
            }
        }
        // Resumes went to resume_gateway_url with the same version, encoding and compression.
        let conns = sim.connections();
        for c in &conns {
            let q = c.query.clone().unwrap_or_default();
            assert!(q.contains("v=10") && q.contains("encoding=json"), "{q}");
            assert!(
                negotiated(c, self.compression),
                "{:?} expected on {}: {q}",
                self.compression,
                c.path
            );
        }
        if expect == Expect::Resume {
            assert!(
                conns.iter().skip(1).all(|c| c.path.starts_with("/resume")),
                "{conns:?}"
            );
        }

        holder.sigterm();
        assert_eq!(holder.wait_exit(Duration::from_secs(10)).await, Some(0));
        let log = holder.stderr_text();
        assert!(
            !log.contains(BOT_TOKEN) && !log.contains(LINK_TOKEN),
            "a secret leaked into the log"
        );
        for line in self.log_lines {
            assert!(log.contains(line), "no {line:?} in the log:\n{log}");
        }
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op7_reconnect_resumes() {
    Scenario::new(Fault::Reconnect, Expect::Resume, true)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombie_connection_is_closed_and_resumed() {
    let mut s = Scenario::new(Fault::StopAcks(true), Expect::Resume, false);
    s.after = Some(Fault::StopAcks(false));
    s.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op9_resumable_resumes() {
    Scenario::new(
        Fault::InvalidSession { resumable: true },
        Expect::Resume,
        true,
    )
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op9_not_resumable_reidentifies() {
    Scenario::new(
        Fault::InvalidSession { resumable: false },
        Expect::Reidentify,
        false,
    )
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4007_reidentifies() {
    Scenario::new(Fault::Close { code: 4007 }, Expect::Reidentify, true)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4009_reidentifies() {
    Scenario::new(Fault::Close { code: 4009 }, Expect::Reidentify, false)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_close_codes_resume() {
    Scenario::new(Fault::Close { code: 4000 }, Expect::Resume, true)
        .run()
        .await;
}

/// Each stream's own framing: a zlib-stream message over two websocket messages, a zstd-stream
/// message in three frames of one websocket message; then a drop and a RESUME on a fresh context.
async fn split_frames(compression: Compression) {
    let mut s = Scenario::new(Fault::DropTcp, Expect::Resume, true);
    s.compression = compression;
    s.config.split_compressed_frames = true;
    s.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_drop_resumes_with_split_zlib_frames() {
    split_frames(Compression::ZlibStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_drop_resumes_with_split_zstd_frames() {
    split_frames(Compression::ZstdStream).await;
}

/// A message the connection's decompressor can't decode: the connection ends with a warning
/// naming the stream, and the session RESUMEs on a new one (with a fresh context) losing nothing.
async fn corrupt_frame(compression: Compression, lines: &'static [&'static str]) {
    let mut s = Scenario::new(Fault::CorruptFrame, Expect::Resume, true);
    s.compression = compression;
    s.log_lines = lines;
    s.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_zstd_frame_resumes() {
    corrupt_frame(
        Compression::ZstdStream,
        &[
            "WARN gateway_holder::gateway::connection: undecodable compressed gateway message; dropping the connection to RESUME stream=\"zstd-stream\" bytes=6 error=",
            "connection ended; will RESUME cause=bad compressed data (6 bytes): zstd-stream: ",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_zlib_frame_resumes() {
    corrupt_frame(
        Compression::ZlibStream,
        &[
            "WARN gateway_holder::gateway::connection: undecodable compressed gateway message; dropping the connection to RESUME stream=\"zlib-stream\" bytes=8 error=",
            "connection ended; will RESUME cause=bad compressed data (8 bytes): zlib-stream: ",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_drop_resumes_uncompressed() {
    Scenario::new(Fault::DropTcp, Expect::Resume, false)
        .run()
        .await;
}

/// RESUME refused (op 9 false in answer to RESUME): the holder must identify anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_resume_reidentifies() {
    refused_resume(sim_config(), true).await;
}

async fn refused_resume(config: SimConfig, compressed: bool) {
    let compression = if compressed {
        test_compression()
    } else {
        Compression::None
    };
    let Running {
        sim,
        ingest,
        mut holder,
        dir: _dir,
    } = running(config, compression).await;
    sim.fault(Fault::RefuseResume(true)).await;
    sim.fault(Fault::Reconnect).await;
    tokio::time::timeout(
        T,
        sim.wait_for(|s| s.resumes_refused >= 1 && s.identifies >= 2),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no re-identify after a refused resume:\n{}",
            holder.stderr_text()
        )
    });
    sim.fault(Fault::RefuseResume(false)).await;
    emit_messages(&sim, 10, "after").await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_eq!(sim.stats().resumes, 0);
    assert_eq!(sim.stats().identifies, 2);
    holder.sigterm();
    assert_eq!(holder.wait_exit(Duration::from_secs(10)).await, Some(0));
    sim.shutdown().await;
}

async fn fatal_exit(
    config: SimConfig,
    close_with: Option<u16>,
    code: &str,
    meaning: &str,
    edge_down: bool,
) {
    let sim = start_sim(config).await;
    let ingest = Ingest::start().await;
    if edge_down {
        ingest.set_mode(Mode::Down).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    if let Some(c) = close_with {
        tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 1))
            .await
            .expect("holder identifies");
        sim.fault(Fault::Close { code: c }).await;
    }
    tokio::time::timeout(T, sim.wait_for(|s| s.closes_sent >= 1))
        .await
        .expect("sim closes the connection");
    let exit = holder.wait_exit(Duration::from_secs(5)).await;
    let log = holder.stderr_text();
    assert!(
        matches!(exit, Some(c) if c != 0),
        "holder did not exit non-zero within 5 s ({exit:?}):\n{log}"
    );
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains(code) && last.contains(meaning),
        "last line should name {code} ({meaning}): {last}"
    );
    assert_eq!(
        log.lines().filter(|l| l.contains("fatal")).count(),
        1,
        "one clear line:\n{log}"
    );
    // Never looped: one connection only.
    assert_eq!(sim.stats().connections_opened, 1);
    if !edge_down {
        // The edge was told, before the holder went away.
        let last = ingest
            .batches()
            .last()
            .cloned()
            .expect("a batch reached the edge");
        assert_eq!(last.gateway, Some(GatewayState::Stopped));
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4004_exits_with_one_clear_line() {
    fatal_exit(
        sim_config(),
        Some(4004),
        "4004",
        "authentication failed",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_intents_4014_exits_with_one_clear_line() {
    let config = SimConfig {
        privileged_intents_allowed: 0,
        ..sim_config()
    };
    // With the edge down too: the bounded flush still lets the process end within 5 s.
    fatal_exit(config, None, "4014", "disallowed intent", true).await;
}

/// A bot token REST refuses: the holder stops at once with one line, never touching the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bot_token_exits_with_one_clear_line() {
    let sim = start_sim(SimConfig {
        token: "another-token".into(),
        ..sim_config()
    })
    .await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    let exit = holder.wait_exit(Duration::from_secs(10)).await;
    let log = holder.stderr_text();
    assert!(matches!(exit, Some(c) if c != 0), "{exit:?}\n{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains("DISCORD_BOT_TOKEN") && last.contains("401"),
        "{last}"
    );
    assert!(!log.contains(BOT_TOKEN));
    assert_eq!(sim.stats().connections_opened, 0);
    sim.shutdown().await;
}

/// With the daily session-start budget spent, a session that must re-identify waits for the
/// reset instead of identifying (which would burn the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_session_start_budget_is_waited_out_not_burned() {
    let sim = start_sim(SimConfig {
        session_start_total: 1,
        ..sim_config()
    })
    .await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        false,
        &[("LOG_FORMAT", "json")],
    ));
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 1))
        .await
        .expect("holder identifies");
    sim.fault(Fault::InvalidSession { resumable: false }).await;
    holder.wait_line("session start budget spent", T).await;
    assert_eq!(sim.stats().identifies, 1);
    assert_eq!(
        holder.wait_exit(Duration::from_millis(300)).await,
        None,
        "still running"
    );
    holder.sigterm();
    assert_eq!(holder.wait_exit(Duration::from_secs(10)).await, Some(0));
    // LOG_FORMAT=json: one JSON object per line.
    for line in holder.stderr_text().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    sim.shutdown().await;
}

/// Even at `RUST_LOG=trace`, neither token reaches the log (the websocket and HTTP crates log
/// whole frames and requests at trace level; the holder caps them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logging_never_shows_a_token() {
    let sim = start_sim(sim_config()).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::spawn(&HolderEnv::new(
        &sim,
        &ingest,
        dir.path(),
        false,
        &[("RUST_LOG", "trace")],
    ));
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 1))
        .await
        .expect("holder identifies");
    ingest
        .wait_for("READY delivered", T, |i| !i.unique().is_empty())
        .await;
    sim.fault(Fault::Reconnect).await;
    tokio::time::timeout(T, sim.wait_for(|s| s.resumes >= 1))
        .await
        .expect("holder resumes");
    holder.sigterm();
    assert_eq!(holder.wait_exit(Duration::from_secs(10)).await, Some(0));
    let log = holder.stderr_text();
    assert!(log.lines().count() > 10, "trace logging is on");
    assert!(!log.contains(BOT_TOKEN), "bot token in the log");
    assert!(!log.contains(LINK_TOKEN), "LINK_TOKEN in the log");
    sim.shutdown().await;
}

/// Where READY's `resume_gateway_url` points in the fallback tests.
enum DeadResumeUrl {
    /// A port nothing listens on: every connect is refused.
    ClosedPort,
    /// A listener that accepts and drops every connection: the websocket handshake fails.
    DropsConnections,
}

/// READY advertises a resume URL that never works. After a few failed attempts the holder must
/// fall back to the URL from `GET /gateway/bot`, RESUME the same session there (or identify if the
/// sim refuses the RESUME), and deliver every dispatch exactly once, in order.
async fn unreachable_resume_url(dead: DeadResumeUrl, refuse_resume: bool) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = match dead {
        DeadResumeUrl::ClosedPort => {
            drop(listener);
            None
        }
        DeadResumeUrl::DropsConnections => {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            Some(tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    drop(socket);
                }
            }))
        }
    };
    let Running {
        sim,
        ingest,
        mut holder,
        dir,
    } = running(
        SimConfig {
            advertised_resume_url: Some(format!("ws://127.0.0.1:{port}/resume")),
            ..sim_config()
        },
        test_compression(),
    )
    .await;

    if refuse_resume {
        sim.fault(Fault::RefuseResume(true)).await;
    }
    let started = std::time::Instant::now();
    sim.fault(Fault::Reconnect).await;
    if !refuse_resume {
        // Discord replays these on the RESUME (a refused session's backlog is gone for good).
        emit_messages(&sim, 10, "during").await;
    }
    let line = holder.wait_line("falling back", T).await;
    assert!(line.contains("failures=3"), "{line}");
    let stats = tokio::time::timeout(
        T,
        sim.wait_for(|s| {
            if refuse_resume {
                s.resumes_refused >= 1 && s.identifies >= 2
            } else {
                s.resumes >= 1
            }
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("no fallback:\n{}", holder.stderr_text()));
    // 3 attempts with a 50 ms base / 1 s cap backoff, then one GET /gateway/bot.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "fell back after {:?}",
        started.elapsed()
    );
    if refuse_resume {
        sim.fault(Fault::RefuseResume(false)).await;
        assert_eq!(stats.resumes, 0);
    } else {
        assert_eq!(stats.identifies, 1, "resumed, never re-identified");
    }
    emit_messages(&sim, 10, "after").await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    // Every connection went to the /gateway/bot URL: none reached the dead resume URL.
    assert!(
        sim.connections()
            .iter()
            .all(|c| !c.path.starts_with("/resume")),
        "{:?}",
        sim.connections()
    );

    let addr = holder.http_addr().await;
    let metrics = metrics_text(&http_client(), addr).await;
    assert!(
        metrics.contains(
            "holder_gateway_reconnects_total{code=\"resume_url_fallback\",shard=\"0\"} 1"
        ),
        "{metrics}"
    );
    if matches!(dead, DeadResumeUrl::ClosedPort) {
        assert!(
            metrics
                .contains("holder_gateway_reconnects_total{code=\"connect_error\",shard=\"0\"} 3"),
            "{metrics}"
        );
    }
    holder.sigterm();
    assert_eq!(holder.wait_exit(Duration::from_secs(10)).await, Some(0));
    // The fallback URL was saved: a restart resumes there, not on the dead URL.
    let saved = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
    if !refuse_resume {
        assert!(
            saved.contains(&sim.gateway_url()) && !saved.contains(&format!(":{port}/")),
            "{saved}"
        );
    }
    if let Some(a) = acceptor {
        a.abort();
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_resume_url_falls_back_and_resumes() {
    unreachable_resume_url(DeadResumeUrl::ClosedPort, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_url_failing_handshakes_falls_back_then_identifies_when_refused() {
    unreachable_resume_url(DeadResumeUrl::DropsConnections, true).await;
}

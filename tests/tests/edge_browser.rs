//! End-to-end in a real browser: Debian's chromium, driven by playwright-core, opens a page that
//! uses `EventSource` (credentials by cookie, cross-origin with CORS) against the edge under
//! `wrangler dev`, sees events arrive, and after the edge closes every stream it reconnects by
//! itself and resumes from `Last-Event-ID` with nothing lost or repeated.

use e2e_tests::browser::PageScript;
use e2e_tests::edge::{Edge, LINK_TOKEN};
use e2e_tests::holder::{dispatch, session, Holder};
use e2e_tests::{free_port, http, repo_root};
use std::io::{Read, Write};
use std::net::TcpListener;

/// Serves the test page on its own origin (so the stream is a cross-origin, credentialed
/// request) until the listener is dropped with the process.
fn serve_page(listener: TcpListener) {
    let html = std::fs::read(repo_root().join("tests/browser/eventsource.html")).expect("page");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                html.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&html);
        }
    });
}

#[test]
fn chromium_eventsource_receives_and_resumes_from_last_event_id() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "needs Debian chromium: scripts/toolchain --browser (apt-get install -y chromium)"
    );
    let page_port = free_port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let listener = TcpListener::bind(("127.0.0.1", page_port)).expect("bind page port");
    serve_page(listener);
    let edge = Edge::start(
        "browser",
        &[
            ("PUBLIC_READ", "false"),
            ("ALLOWED_ORIGINS", &page_origin),
            // Long enough that the second batch is stored before the browser comes back.
            ("SSE_RETRY_MS", "1500"),
        ],
    );
    let port = edge.port;
    let edge_origin = format!("http://127.0.0.1:{port}");
    let artifacts = repo_root().join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("edge-eventsource.png");
    let _ = std::fs::remove_file(&shot);
    let profile = edge.persist.parent().unwrap().join("chromium-profile");

    let page_url = format!("{page_origin}/?edge={edge_origin}");
    let jwt = session("read", 3600);
    let page = PageScript::start(
        "eventsource.mjs",
        &[
            page_url.as_ref(),
            edge_origin.as_ref(),
            jwt.as_ref(),
            profile.as_os_str(),
            shot.as_os_str(),
        ],
    );
    let expect = |prefix: &str| page.expect(prefix, || edge.log_tail());

    let mut holder = Holder::new("browser-epoch");
    expect("READY");
    holder.send(
        port,
        &[
            dispatch("MESSAGE_CREATE", Some("7"), r#"{"content":"one"}"#),
            dispatch("MESSAGE_CREATE", Some("7"), r#"{"content":"two"}"#),
            dispatch("MESSAGE_CREATE", Some("7"), r#"{"content":"three"}"#),
        ],
    );
    page.next();
    expect("GOT 3");
    // Drop every stream, then send more while the browser waits out its retry.
    let auth = format!("Bearer {LINK_TOKEN}");
    let r = http::request(
        port,
        "POST",
        "/link/disconnect-clients",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["closed"].as_u64().unwrap() >= 1);
    holder.send(
        port,
        &[
            dispatch("MESSAGE_CREATE", Some("7"), r#"{"content":"four"}"#),
            dispatch("MESSAGE_CREATE", Some("7"), r#"{"content":"five"}"#),
            dispatch("MESSAGE_CREATE", Some("7"), r#"{"content":"six"}"#),
        ],
    );
    page.next();
    let done = expect("DONE ");
    page.finish();
    let state: serde_json::Value = serde_json::from_str(&done["DONE ".len()..]).unwrap();
    let contents: Vec<&str> = state["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["one", "two", "three", "four", "five", "six"],
        "{state}"
    );
    let ids: Vec<u64> = state["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids {ids:?}");
    assert_eq!(state["opens"], 2, "{state}");
    // The second batch reached the browser through replay, not live.
    let m = http::get(port, "/metrics", &[("Authorization", &auth)])
        .unwrap()
        .text();
    let replayed: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("edge_replayed_events_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(replayed >= 3.0, "replayed {replayed}\n{m}");
    assert!(shot.exists(), "screenshot saved");
}

//! Runs the real holder binary with bad configuration and checks it exits at once with one line
//! naming the variable.

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-holder"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("holder binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_token_is_named() {
    let (code, stderr) = run(&[("LINK_TOKEN", "l")]);
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("DISCORD_BOT_TOKEN"), "{stderr}");
}

#[test]
fn bad_intents_and_urls_are_named_without_leaking_secrets() {
    for (var, value) in [
        ("DISCORD_INTENTS", "not-a-number"),
        ("EDGE_URL", "nowhere"),
        ("HOLDER_LISTEN", "999.1.1.1:x"),
        ("DISCORD_COMPRESS", "gzip"),
    ] {
        let (code, stderr) = run(&[
            ("DISCORD_BOT_TOKEN", "the-bot-token-xyz"),
            ("LINK_TOKEN", "the-link-token-xyz"),
            (var, value),
        ]);
        assert_eq!(code, 2, "{var}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(var), "{var} not named: {stderr}");
        assert!(!stderr.contains("token-xyz"), "secret leaked: {stderr}");
    }
}

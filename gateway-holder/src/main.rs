//! `gateway-holder`: reads its configuration, then holds the Gateway session until SIGTERM/SIGINT
//! or a close code that forbids reconnecting. Every way it stops badly prints one line.

use gateway_holder::config::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `gateway-holder healthcheck`: for container HEALTHCHECKs on images without curl.
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck();
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway-holder: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(config.log_json);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway-holder: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(gateway_holder::run(
        config,
        gateway_holder::shutdown::signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-holder: fatal: {e}");
            ExitCode::from(3)
        }
    }
}

/// Structured logs on stderr, JSON when `LOG_FORMAT=json`; `RUST_LOG` filters (default `info`).
fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // These log whole frames and requests at debug/trace (IDENTIFY carries the bot token, ingest
    // requests the LINK_TOKEN): capped whatever RUST_LOG says, so no setting can leak a secret.
    for target in [
        "tungstenite",
        "tokio_tungstenite",
        "hyper",
        "hyper_util",
        "reqwest",
        "rustls",
        "h2",
    ] {
        if let Ok(d) = format!("{target}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `GET /healthz` on `HOLDER_LISTEN` (an unspecified address means this host); exit 0 on 200,
/// else 1 with one line saying why.
fn healthcheck() -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let raw = std::env::var("HOLDER_LISTEN").unwrap_or_else(|_| "127.0.0.1:8790".into());
    let mut addr: SocketAddr = match raw.trim().parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("gateway-holder healthcheck: HOLDER_LISTEN {raw:?} is not an address");
            return ExitCode::from(2);
        }
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let result = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut body = String::new();
        s.take(64 * 1024).read_to_string(&mut body)?;
        Ok(body)
    })();
    match result {
        Ok(resp) if resp.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(resp) => {
            let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").trim();
            eprintln!("gateway-holder healthcheck: unhealthy: {body}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("gateway-holder healthcheck: {addr} unreachable: {e}");
            ExitCode::from(1)
        }
    }
}

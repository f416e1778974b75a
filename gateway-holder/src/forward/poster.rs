//! One `POST {EDGE_URL}/link/ingest` and what its answer means for the batch (SPEC.md, "ingest").
//! Only classification lives here; the forwarder decides on retries, splits and backoff. The bearer
//! token goes into the header and nowhere else (errors never carry it, nor the URL).
//!
//! The link is one keep-alive HTTP/1.1 connection (TLS for `https`), driven by hyper's
//! connection-level client over a [`QuietTcp`](super::quiet) socket: the answer to a POST is read
//! when the forwarder next needs it (a new envelope to send, see [`Poster::need_answer`]) or after
//! [`QUIET_MAX`], not in a wake-up of its own. reqwest (used elsewhere in the holder) can't be given
//! such a socket, and its pool, URL handling and per-request timers were a visible share of the
//! CPU per event at light traffic.

use super::quiet::{Ctl, QuietTcp};
use crate::config::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1, header, Request};
use hyper_util::rt::TokioIo;
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// How long an answer may wait unread in quiet mode before the poster reads it anyway (bounds how
/// late a delivered batch moves the cursor and the health state when nothing else happens).
pub const QUIET_MAX: Duration = Duration::from_millis(25);

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the edge has it.
    Accepted,
    /// 401: the edge doesn't know our LINK_TOKEN.
    Unauthorized,
    /// 413: split the batch.
    TooLarge,
    /// Another 4xx: the edge refuses this batch as it is.
    Rejected(u16),
    /// 5xx, 429, timeout or no connection: keep the batch, back off, retry.
    Retry(String),
}

/// Where the link goes, parsed once from `EDGE_URL`.
struct Target {
    host: String,
    port: u16,
    /// `Host` header value (port only when not the scheme's default).
    authority: header::HeaderValue,
    path: hyper::Uri,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// One open connection: hyper's request handle, the quiet switch, the driver task.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    ctl: Arc<Ctl>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

struct Inner {
    target: Result<Target, String>,
    auth: header::HeaderValue,
    timeout: Duration,
    connect_timeout: Duration,
    /// The idle keep-alive connection between POSTs.
    idle: Mutex<Option<Conn>>,
    /// The switch of the connection a POST is in flight on.
    in_flight: Mutex<Option<Arc<Ctl>>>,
    /// The forwarder asked for the answer of the POST in flight (it has more to send).
    wanted: AtomicBool,
}

#[derive(Clone)]
pub struct Poster {
    inner: Arc<Inner>,
}

fn target(edge_url: &url::Url) -> Result<Target, String> {
    let tls = match edge_url.scheme() {
        "http" => false,
        "https" => true,
        s => return Err(format!("EDGE_URL scheme {s:?} is neither http nor https")),
    };
    let host = edge_url
        .host_str()
        .ok_or("EDGE_URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = edge_url
        .port_or_known_default()
        .ok_or("EDGE_URL has no port")?;
    let authority = match edge_url.port() {
        Some(p) => format!("{}:{p}", edge_url.host_str().unwrap_or_default()),
        None => edge_url.host_str().unwrap_or_default().to_owned(),
    };
    let path = format!("{}/link/ingest", edge_url.path().trim_end_matches('/'));
    let tls = if tls {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("EDGE_URL host is not a TLS server name: {e}"))?;
        Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
    } else {
        None
    };
    Ok(Target {
        authority: header::HeaderValue::from_str(&authority)
            .map_err(|_| "EDGE_URL host is not a valid Host header")?,
        path: path
            .parse()
            .map_err(|_| "EDGE_URL path is not a valid URI path")?,
        host,
        port,
        tls,
    })
}

/// An error from hyper as a short reason, never with the URL or a header.
fn reason(e: &hyper::Error) -> String {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        "connection closed by the edge".into()
    } else {
        format!("ingest request failed: {e}")
    }
}

impl Poster {
    pub fn new(edge_url: &url::Url, token: &Secret, timeout: Duration) -> Poster {
        let mut auth = header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .unwrap_or_else(|_| header::HeaderValue::from_static("Bearer invalid"));
        auth.set_sensitive(true);
        Poster {
            inner: Arc::new(Inner {
                target: target(edge_url),
                auth,
                timeout,
                connect_timeout: timeout.min(Duration::from_secs(2)),
                idle: Mutex::new(None),
                in_flight: Mutex::new(None),
                wanted: AtomicBool::new(false),
            }),
        }
    }

    /// The forwarder has more to send: read the answer to the POST in flight now.
    pub fn need_answer(&self) {
        self.inner.wanted.store(true, Ordering::SeqCst);
        if let Some(ctl) = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            ctl.listen();
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let t = self.inner.target.as_ref().map_err(Clone::clone)?;
        let tcp = tokio::time::timeout(
            self.inner.connect_timeout,
            tokio::net::TcpStream::connect((t.host.as_str(), t.port)),
        )
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|_| "connection refused or unreachable".to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let ctl = Ctl::listening();
        let io = QuietTcp::new(tcp.into_std().map_err(|e| e.to_string())?, ctl.clone())
            .map_err(|e| e.to_string())?;
        let (sender, driver) = match &t.tls {
            None => {
                let (s, c) = http1::handshake(TokioIo::new(io))
                    .await
                    .map_err(|e| reason(&e))?;
                (
                    s,
                    tokio::spawn(async move {
                        let _ = c.await;
                    }),
                )
            }
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    self.inner.connect_timeout,
                    connector.connect(name.clone(), io),
                )
                .await
                .map_err(|_| "TLS handshake timed out".to_string())?
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
                let (s, c) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| reason(&e))?;
                (
                    s,
                    tokio::spawn(async move {
                        let _ = c.await;
                    }),
                )
            }
        };
        Ok(Conn {
            sender,
            ctl,
            driver,
        })
    }

    /// One request on `conn`: the status, once the whole answer is read.
    async fn exchange(&self, conn: &mut Conn, body: Bytes) -> Result<u16, hyper::Error> {
        let t = self
            .inner
            .target
            .as_ref()
            .expect("connected, so the target is valid");
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = hyper::Method::POST;
        *req.uri_mut() = t.path.clone();
        let h = req.headers_mut();
        h.insert(header::HOST, t.authority.clone());
        h.insert(header::AUTHORIZATION, self.inner.auth.clone());
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        conn.sender.ready().await?;
        // Quiet from here: the answer waits in the socket until someone needs it.
        conn.ctl.quiet();
        if self.inner.wanted.load(Ordering::SeqCst) {
            conn.ctl.listen();
        }
        let answer = async {
            let res = conn.sender.send_request(req).await?;
            let status = res.status().as_u16();
            // Read the whole body so the connection can carry the next request.
            res.into_body().collect().await?;
            Ok(status)
        };
        tokio::pin!(answer);
        let ctl = conn.ctl.clone();
        let r = tokio::select! {
            r = &mut answer => r,
            _ = tokio::time::sleep(QUIET_MAX) => {
                ctl.listen();
                answer.await
            }
        };
        // The connection idles quiet too (a close by the edge meanwhile is found by the next POST).
        ctl.quiet();
        r
    }

    pub async fn post(self, body: Vec<u8>) -> Outcome {
        self.inner.wanted.store(false, Ordering::SeqCst);
        let body = Bytes::from(body);
        let timeout = self.inner.timeout;
        match tokio::time::timeout(timeout, self.post_inner(body)).await {
            Ok(o) => o,
            Err(_) => {
                self.set_in_flight(None);
                Outcome::Retry("timeout".into())
            }
        }
    }

    fn set_in_flight(&self, ctl: Option<Arc<Ctl>>) {
        *self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = ctl;
    }

    async fn post_inner(&self, body: Bytes) -> Outcome {
        let pooled = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let (mut conn, mut reused) = match pooled {
            Some(c) if !c.sender.is_closed() => (c, true),
            _ => match self.connect().await {
                Ok(c) => (c, false),
                Err(e) => return Outcome::Retry(e),
            },
        };
        loop {
            self.set_in_flight(Some(conn.ctl.clone()));
            let r = self.exchange(&mut conn, body.clone()).await;
            self.set_in_flight(None);
            match r {
                Ok(status) => {
                    if !conn.sender.is_closed() {
                        *self.inner.idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
                    }
                    return classify(status);
                }
                // A kept-alive connection the edge closed meanwhile: once more on a fresh one (a
                // batch the edge did get is dropped there as a duplicate by (epoch, id)).
                Err(_) if reused => {
                    reused = false;
                    conn = match self.connect().await {
                        Ok(c) => c,
                        Err(e) => return Outcome::Retry(e),
                    };
                }
                Err(e) => return Outcome::Retry(reason(&e)),
            }
        }
    }

    #[cfg(test)]
    pub fn url_path(&self) -> Option<String> {
        self.inner.target.as_ref().ok().map(|t| t.path.to_string())
    }
}

pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Accepted,
        401 => Outcome::Unauthorized,
        413 => Outcome::TooLarge,
        408 | 429 => Outcome::Retry(format!("HTTP {status}")),
        400..=499 => Outcome::Rejected(status),
        _ => Outcome::Retry(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_spec() {
        assert_eq!(classify(200), Outcome::Accepted);
        assert_eq!(classify(204), Outcome::Accepted);
        assert_eq!(classify(401), Outcome::Unauthorized);
        assert_eq!(classify(413), Outcome::TooLarge);
        assert_eq!(classify(400), Outcome::Rejected(400));
        assert!(matches!(classify(500), Outcome::Retry(_)));
        assert!(matches!(classify(503), Outcome::Retry(_)));
        assert!(matches!(classify(429), Outcome::Retry(_)));
    }
}

//! One `POST {EDGE_URL}/link/ingest` and what its answer means for the batch (SPEC.md, "ingest").
//! Only classification lives here; the forwarder decides on retries, splits and backoff. The bearer
//! token goes into the header and nowhere else (reqwest errors carry the URL, which has no secret).

use crate::config::Secret;
use std::time::Duration;

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

#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
    /// Parsed once: reqwest would otherwise parse (and IDNA-check) the string per request.
    url: reqwest::Url,
    auth: String,
}

impl Poster {
    pub fn new(edge_url: &url::Url, token: &Secret, timeout: Duration) -> Poster {
        let url = reqwest::Url::parse(&format!(
            "{}/link/ingest",
            edge_url.as_str().trim_end_matches('/')
        ))
        .expect("EDGE_URL was validated as a URL");
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .expect("a reqwest client with default TLS roots builds");
        Poster {
            client,
            url,
            auth: format!("Bearer {}", token.expose()),
        }
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    pub async fn post(self, body: Vec<u8>) -> Outcome {
        let res = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match res {
            Err(e) => Outcome::Retry(describe(&e)),
            Ok(r) => {
                let status = r.status().as_u16();
                // Drain the body so the connection can be reused.
                let _ = r.bytes().await;
                classify(status)
            }
        }
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

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        // Without the URL: it's known from the config, and keeps the line short.
        e.without_url_ref().to_string()
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(u) = self.url() {
            s = s.replace(u.as_str(), "<ingest>");
        }
        s
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

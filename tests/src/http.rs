//! A minimal blocking HTTP/1.1 client for tests: one request per connection, chunked and
//! content-length bodies, and raw access to the socket for streaming.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Status, headers, and the reader positioned at the body.
pub type Head = (u16, Vec<(String, String)>, BufReader<TcpStream>);

/// Opens a connection and sends a request; returns the reader positioned after the headers.
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Head> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut w = stream.try_clone()?;
    w.write_all(req.as_bytes())?;
    w.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let (status, hdrs) = read_head(&mut reader)?;
    Ok((status, hdrs, reader))
}

/// Reads a status line and headers.
pub fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut hdrs = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            hdrs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, hdrs))
}

/// A complete request/response.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let (status, headers, mut reader) = send(port, method, path, headers, body)?;
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
    if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut dec = Dechunker::default();
        let mut buf = [0u8; 16384];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            dec.feed(&buf[..n], &mut body);
            if dec.done {
                break;
            }
        }
    } else if let Some(len) = header(&headers, "content-length").and_then(|v| v.parse().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    request(port, "GET", path, headers, b"")
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Default)]
pub struct Dechunker {
    raw: Vec<u8>,
    /// Bytes left in the current chunk's payload (then its CRLF).
    remaining: usize,
    in_chunk: bool,
    pub done: bool,
}

impl Dechunker {
    /// Feeds raw bytes; appends decoded payload to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.raw.extend_from_slice(input);
        let mut pos = 0;
        loop {
            if self.done {
                break;
            }
            if self.in_chunk {
                let avail = self.raw.len() - pos;
                let take = avail.min(self.remaining);
                out.extend_from_slice(&self.raw[pos..pos + take]);
                pos += take;
                self.remaining -= take;
                if self.remaining > 0 {
                    break;
                }
                // Payload done; need its CRLF.
                if self.raw.len() - pos < 2 {
                    break;
                }
                pos += 2;
                self.in_chunk = false;
            } else {
                let Some(nl) = self.raw[pos..].windows(2).position(|w| w == b"\r\n") else {
                    break;
                };
                let line = String::from_utf8_lossy(&self.raw[pos..pos + nl]).to_string();
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or(0);
                pos += nl + 2;
                if size == 0 {
                    self.done = true;
                    break;
                }
                self.remaining = size;
                self.in_chunk = true;
            }
        }
        self.raw.drain(..pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_splits() {
        let raw = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        for split in 0..raw.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            d.feed(&raw[..split], &mut out);
            d.feed(&raw[split..], &mut out);
            assert_eq!(out, b"hello world", "split at {split}");
            assert!(d.done);
        }
    }
}

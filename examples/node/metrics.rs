//! `--metrics ADDR`: Pointer's metrics and libp2p-metrics' swarm and
//! protocol metrics, served over plain HTTP at `http://ADDR/metrics` in
//! the OpenMetrics text format Prometheus scrapes.
//!
//! One route, so a small server of our own on tokio rather than an HTTP
//! stack: it reads at most one request head of 8 KiB per connection, gives
//! every exchange 5 s, serves 16 clients at once and closes each
//! connection after its answer.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libp2p::metrics::{Recorder, Registry};
use libp2p::swarm::SwarmEvent;
use pointer::{Event, RecordStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::net::NodeEvent;
use crate::node::Node;
use crate::Error;

/// The one path served.
const PATH: &str = "/metrics";

/// Longest request head read; a longer one is answered 431.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most bytes read and dropped after an answer, before closing.
const MAX_DRAIN_BYTES: usize = 64 * 1024;

/// A client that has not sent its request and read the answer by then is
/// dropped, so a stalled one holds nothing for long.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed at once.
const MAX_CLIENTS: usize = 16;

/// What Prometheus asks for and `prometheus_client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves `registry` there from a task of its own.
/// Returns the address bound (the port chosen when `addr` has port 0).
pub async fn serve(addr: SocketAddr, registry: Registry) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(accept(listener, Arc::new(registry)));
    Ok(bound)
}

async fn accept(listener: TcpListener, registry: Arc<Registry>) {
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, usually: wait instead of spinning.
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let (registry, clients) = (Arc::clone(&registry), Arc::clone(&clients));
        tokio::spawn(async move {
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, &registry)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("metrics: {e}"),
                Err(_) => tracing::debug!("metrics: a client took too long"),
            }
            clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One request, one answer, then the connection closes.
async fn exchange(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    let answer = match read_head(&mut stream).await? {
        Head::Complete(head) => respond(&head, registry),
        Head::TooLarge => status(431, "Request Header Fields Too Large", ""),
        // Closed before a whole head: nobody to answer.
        Head::Cut => return Ok(()),
    };
    stream.write_all(&answer).await?;
    stream.shutdown().await?;
    // Closing with bytes unread (a long head, a body) resets the
    // connection, and the client could lose the answer: read what it sent
    // until it closes, within bounds.
    let mut drained = 0;
    let mut buf = [0; 1024];
    while drained < MAX_DRAIN_BYTES {
        match stream.read(&mut buf).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
    Cut,
}

/// The request head, up to the blank line (a body, which GET has not, is
/// left unread).
async fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    loop {
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(Head::Complete(head));
        }
        if head.len() >= MAX_HEAD_BYTES {
            return Ok(Head::TooLarge);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(Head::Cut);
        }
        head.extend_from_slice(&buf[..n]);
    }
}

/// Where the head ends: a blank line, `\r\n\r\n` or a bare `\n\n` (a
/// hand-typed request).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    [crlf, lf].into_iter().flatten().min()
}

/// The answer to a request head.
fn respond(head: &[u8], registry: &Registry) -> Vec<u8> {
    let Some((method, path)) = request_line(head) else {
        return status(400, "Bad Request", "");
    };
    if path != PATH {
        return status(404, "Not Found", "");
    }
    if method != "GET" && method != "HEAD" {
        return status(405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
    }
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, registry) {
        tracing::warn!("metrics: cannot encode: {e}");
        return status(500, "Internal Server Error", "");
    }
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method == "GET" {
        answer.extend_from_slice(body.as_bytes());
    }
    answer
}

/// The method and the path (query dropped) of `METHOD TARGET HTTP/1.x`.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let head = std::str::from_utf8(head).ok()?;
    let line = head.lines().next()?;
    let mut words = line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split('?').next()?;
    Some((method, path))
}

/// An answer with no body; `headers` are more header lines, each ending
/// in CRLF.
fn status(code: u16, reason: &str, headers: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {reason}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

impl<S: RecordStore + 'static> Node<S> {
    /// Hands a swarm event, and the protocol event inside it, to
    /// libp2p-metrics (with `--metrics`). Pointer records its own.
    pub(crate) fn record(&self, event: &SwarmEvent<NodeEvent>) {
        let Some(metrics) = &self.swarm_metrics else {
            return;
        };
        metrics.record(event);
        let SwarmEvent::Behaviour(event) = event else {
            return;
        };
        match event {
            NodeEvent::Identify(e) => metrics.record(&**e),
            NodeEvent::Ping(e) => metrics.record(e),
            NodeEvent::RelayServer(e) => metrics.record(&**e),
            NodeEvent::Dcutr(e) => metrics.record(e),
            NodeEvent::Pointer(Event::Kad(e)) => metrics.record(&**e),
            _ => {}
        }
    }
}

//! `--metrics ADDR`: Pointer's metrics and libp2p-metrics' swarm and
//! protocol metrics, served over plain HTTP at `http://ADDR/metrics` in
//! the OpenMetrics text format Prometheus scrapes.
//!
//! HTTP/1 is hyper's; what is ours is the bounds, since the endpoint may
//! face anyone who can reach the address: a request head of at most 8 KiB
//! (a longer one is answered 431), 5 s for a whole exchange, 16 clients
//! at once (more are closed at once), one request per connection. The
//! server runs on the runtime's worker threads, not the swarm's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use libp2p::metrics::{Recorder, Registry};
use libp2p::swarm::SwarmEvent;
use pointer::{Event, RecordStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::net::NodeEvent;
use crate::node::Node;
use crate::Error;

/// The one path served.
const PATH: &str = "/metrics";

/// Longest request head read (hyper's least buffer); a longer one is
/// answered 431.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// A client that has not sent its request and read the answer by then is
/// dropped, so a stalled one holds a slot for 5 s at most.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed at once.
const MAX_CLIENTS: usize = 16;

/// What Prometheus asks for and `prometheus_client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
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
        // Past the bound the connection is dropped, which closes it.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, registry)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("metrics: {e}"),
                Err(_) => tracing::debug!("metrics: a client took too long"),
            }
            drop(slot);
        });
    }
}

/// One request, one answer, then the connection closes.
async fn exchange(stream: TcpStream, registry: Arc<Registry>) -> hyper::Result<()> {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let answer = respond(request.method(), request.uri().path(), &registry);
        async move { Ok::<_, Infallible>(answer) }
    });
    hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service)
        .await
}

/// The answer to `method` on `path` (hyper answers malformed requests
/// itself: 400, or 431 for a head too long). For `HEAD` hyper sends the
/// head only.
fn respond(method: &Method, path: &str, registry: &Registry) -> Response<Full<Bytes>> {
    if path != PATH {
        return status(StatusCode::NOT_FOUND);
    }
    if method != Method::GET && method != Method::HEAD {
        let mut answer = status(StatusCode::METHOD_NOT_ALLOWED);
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer;
    }
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, registry) {
        tracing::warn!("metrics: cannot encode: {e}");
        return status(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    answer
}

/// An answer with no body.
fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = code;
    answer
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

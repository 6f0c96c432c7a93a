//! A scripted raw peer on `/pointer/fetch/0.0.1`: a bare `libp2p_stream`
//! swarm with none of Pointer's checks, connected to one node. It opens
//! streams to that node and writes what the test says (an `Ask`, or any
//! bytes at all, a length prefix that lies included) and reports what came
//! back; and, when asked to, serves the node's inbound `Ask`s with the reply
//! a script picks. Tests of the protocol's limits and of hostile answerers
//! share it instead of each building its own.

use std::sync::Arc;

use asynchronous_codec::Framed;
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use libp2p::{PeerId, Stream, Swarm};
use libp2p_swarm_test::SwarmExt;
use pointer::internals::proto::pointer::{Answer, Ask};
use pointer::RecordStore;
use pointer::FETCH_PROTOCOL as PROTOCOL;
use quick_protobuf_codec::Codec;

use super::{Node, PATIENCE};

/// Frames the raw peer reads or writes are far below this; it only keeps
/// a broken node from making the test allocate without bound.
const FRAME_LIMIT: usize = 1 << 20;

/// What came of one `Ask` sent on a fresh stream.
#[derive(Debug)]
pub enum Outcome {
    /// The node answered.
    Answer(Answer),
    /// The stream ended cleanly without an answer.
    Closed,
    /// The stream broke: reset, or bytes that are no `Answer`.
    Failed(String),
    /// Nothing came within [`PATIENCE`].
    TimedOut,
}

impl Outcome {
    /// The answer, if one came.
    pub fn answer(self) -> Option<Answer> {
        match self {
            Outcome::Answer(answer) => Some(answer),
            _ => None,
        }
    }

    /// The answer; fails the test with what happened instead.
    pub fn expect_answer(self) -> Answer {
        match self {
            Outcome::Answer(answer) => answer,
            other => panic!("expected an answer, got {other:?}"),
        }
    }
}

/// How the raw peer replies to one inbound `Ask`.
pub enum Reply {
    /// Sends this answer, then closes its side.
    Answer(Answer),
    /// Drops the stream unanswered, as a peer that refuses the ask does.
    Drop,
    /// Keeps the stream open and never answers, as a silent peer does.
    Hold,
}

/// Picks the reply to each inbound `Ask`. Shared by every stream, which
/// are served concurrently, so it keeps any state of its own behind a lock
/// or an atomic.
pub type Script = Arc<dyn Fn(Ask) -> Reply + Send + Sync>;

/// A handle on a raw peer; its swarm runs on the test's runtime.
pub struct RawPeer {
    /// The raw peer's own id.
    pub id: PeerId,
    /// The node it connected to, which its streams go to.
    pub target: PeerId,
    control: libp2p_stream::Control,
}

impl RawPeer {
    /// A raw peer connected to `node` that accepts no streams: the node's
    /// asks to it fail as unsupported.
    pub async fn connected_to<S: RecordStore + Send + 'static>(node: &mut Node<S>) -> RawPeer {
        RawPeer::start(node, None).await
    }

    /// A raw peer connected to `node` that replies to each `Ask` the node
    /// sends it as `script` says.
    ///
    /// libp2p-stream drops inbound streams that arrive while the previous
    /// one is still being handed over, so a test that counts asks has the
    /// node ask it one stream at a time.
    pub async fn serving<S: RecordStore + Send + 'static>(
        node: &mut Node<S>,
        script: impl Fn(Ask) -> Reply + Send + Sync + 'static,
    ) -> RawPeer {
        RawPeer::start(node, Some(Arc::new(script))).await
    }

    async fn start<S: RecordStore + Send + 'static>(
        node: &mut Node<S>,
        script: Option<Script>,
    ) -> RawPeer {
        let mut swarm = Swarm::new_ephemeral_tokio(|_| libp2p_stream::Behaviour::new());
        let mut control = swarm.behaviour().new_control();
        // Accept before connecting: a node asks as soon as it connects to
        // a peer, for the keys it follows.
        if let Some(script) = script {
            let mut incoming = control.accept(PROTOCOL).expect("first to accept");
            tokio::spawn(async move {
                while let Some((_, stream)) = incoming.next().await {
                    tokio::spawn(serve(stream, script.clone()));
                }
            });
        }
        swarm.connect(node).await;
        let peer = RawPeer {
            id: *swarm.local_peer_id(),
            target: *node.local_peer_id(),
            control,
        };
        tokio::spawn(swarm.loop_on_next());
        peer
    }

    /// Opens a fresh fetch stream to the node and hands it over as it is
    /// (to hold it open, or to write by hand).
    pub async fn open(&self) -> Stream {
        self.control
            .clone()
            .open_stream(self.target, PROTOCOL)
            .await
            .expect("the fetch stream opens")
    }

    /// Sends `ask` on a fresh stream, half-closes, and reports what came
    /// back.
    pub async fn ask(&self, ask: Ask) -> Outcome {
        let mut framed = Framed::new(self.open().await, Codec::<Ask, Answer>::new(FRAME_LIMIT));
        framed.send(ask).await.expect("the ask is sent");
        framed.close().await.expect("half-close");
        match tokio::time::timeout(PATIENCE, framed.next()).await {
            Err(_) => Outcome::TimedOut,
            Ok(None) => Outcome::Closed,
            Ok(Some(Ok(answer))) => Outcome::Answer(answer),
            Ok(Some(Err(error))) => Outcome::Failed(format!("{error:?}")),
        }
    }

    /// Writes `bytes` as they are on a fresh stream, half-closes if
    /// `close`, and returns every byte the node sent before its side
    /// ended, cleanly or not. Fails the test if it has not ended within
    /// [`PATIENCE`].
    pub async fn send_bytes(&self, bytes: &[u8], close: bool) -> Vec<u8> {
        let mut stream = self.open().await;
        stream.write_all(bytes).await.expect("write");
        if close {
            stream.close().await.expect("half-close");
        }
        let mut back = Vec::new();
        // A reset ends the stream as surely as a close: what matters is
        // what was sent before it.
        let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut back)).await;
        assert!(read.is_ok(), "the node kept the stream open");
        back
    }
}

/// Serves one inbound stream: reads its `Ask` and does what `script` says.
async fn serve(stream: Stream, script: Script) {
    let mut framed = Framed::new(stream, Codec::<Answer, Ask>::new(FRAME_LIMIT));
    let Some(Ok(ask)) = framed.next().await else {
        return;
    };
    match script(ask) {
        Reply::Answer(answer) => {
            let _ = framed.send(answer).await;
            let _ = framed.close().await;
        }
        Reply::Drop => {}
        Reply::Hold => {
            // Dropping the stream would tell the node; keep it until the
            // test ends.
            std::future::pending::<()>().await;
            drop(framed);
        }
    }
}

/// The unsigned-varint length prefix of a frame of `n` bytes, to send
/// without the frame (a prefix that promises more than will come).
pub fn length_prefix(mut n: usize) -> Vec<u8> {
    let mut prefix = Vec::new();
    while n >= 0x80 {
        prefix.push((n as u8) | 0x80);
        n >>= 7;
    }
    prefix.push(n as u8);
    prefix
}

//! The `/pointer/fetch/0.0.1` wire protocol, without any behaviour logic.
//!
//! One exchange per stream: the asker writes one `Ask` and closes its write
//! side; the answerer writes one `Answer` (or nothing, if it declines) and
//! closes. Every message is an unsigned-varint length prefix followed by the
//! protobuf bytes, as in every libp2p protocol.

use std::{io, sync::Arc};

use asynchronous_codec::Framed;
use futures::{SinkExt as _, StreamExt as _};
use libp2p::{Stream, StreamProtocol};
use quick_protobuf::{BytesReader, MessageRead, MessageWrite};
use quick_protobuf_codec::Codec;

use crate::proto::pointer::{
    Answer, Ask, Entry, Have, Item, Operate, Range, RangeReply, Reconciled, Status,
};
use crate::wire;
use crate::wire::exchange::{Reply, Request, Response};

/// Protocol id of the fetch protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/pointer/fetch/0.0.1");

// The failure types sit below the shell, beside the fetch messages, so
// that the coordinator names them without naming the shell.
pub use crate::wire::failure::{InboundFailure, OutboundFailure};

/// The stream of an `Ask` we read, waiting for our answer.
pub(crate) struct Responder {
    framed: Framed<Stream, Codec<Answer, SafeAsk>>,
    max_message_size: usize,
}

/// What one `Ask` learnt: an entry per key answered, in the order asked,
/// and a reply per range answered.
pub type Answered = Response;

/// Sends one `Ask` for `request` on a fresh outbound stream and reads the
/// `Answer` (see [`wire`] for how several keys share one exchange).
pub(crate) async fn ask(
    stream: Stream,
    request: Request,
    max_message_size: usize,
) -> Result<Answered, OutboundFailure> {
    let fail = |e| OutboundFailure::from_failure(e, max_message_size);
    let names: Vec<String> = request.keys.iter().map(|k| k.key.clone()).collect();
    let ranges = request.ranges.len();
    let ask = wire::to_ask(request);
    check_size(&ask, max_message_size).map_err(fail)?;
    let mut framed = Framed::new(stream, Codec::<Ask, SafeAnswer>::new(max_message_size));
    framed.send(ask).await.map_err(|e| fail(e.into()))?;
    // Closing our write side tells the peer that no second ask follows.
    framed.close().await.map_err(|e| fail(e.into()))?;
    match framed.next().await {
        Some(Ok(SafeAnswer(answer))) => wire::from_answer(answer, &names, ranges)
            .map_err(|e| OutboundFailure::Malformed(e.to_string())),
        Some(Err(e)) => Err(fail(e.into())),
        None => Err(OutboundFailure::ConnectionClosed),
    }
}

/// Reads the one `Ask` of an inbound stream: the keys it asks for, in
/// order, with the asker's versions, and the ranges to reconcile. Answer it
/// through the [`Responder`].
pub(crate) async fn read_ask(
    stream: Stream,
    max_message_size: usize,
) -> Result<(Request, Responder), InboundFailure> {
    let mut framed = Framed::new(stream, Codec::<Answer, SafeAsk>::new(max_message_size));
    match framed.next().await {
        Some(Ok(SafeAsk(ask))) => Ok((
            wire::from_ask(ask).map_err(|e| InboundFailure::Malformed(e.to_string()))?,
            Responder {
                framed,
                max_message_size,
            },
        )),
        Some(Err(e)) => Err(InboundFailure::from_failure(e.into(), max_message_size)),
        None => Err(InboundFailure::ConnectionClosed),
    }
}

/// Writes the `Answer` of `reply` (as much as fits the message limit, in
/// order) and closes the stream.
pub(crate) async fn write_answer(
    mut responder: Responder,
    reply: Reply,
) -> Result<(), InboundFailure> {
    let limit = responder.max_message_size;
    let answer = wire::to_answer(reply, limit);
    let fail = |e| InboundFailure::from_failure(e, limit);
    check_size(&answer, limit).map_err(fail)?;
    responder
        .framed
        .send(answer)
        .await
        .map_err(|e| fail(e.into()))?;
    responder.framed.close().await.map_err(|e| fail(e.into()))
}

/// Closes the stream without an answer; the asker sees the stream end.
pub(crate) async fn decline(mut responder: Responder) -> Result<(), InboundFailure> {
    let limit = responder.max_message_size;
    let closed = responder.framed.close().await;
    closed.map_err(|e| InboundFailure::from_failure(e.into(), limit))
}

/// Refuses to send what the peer would refuse to read.
fn check_size(message: &impl MessageWrite, limit: usize) -> Result<(), Failure> {
    if message.get_size() > limit {
        return Err(Failure::TooLarge);
    }
    Ok(())
}

/// A read or write failure, before it is named for the side that saw it.
#[derive(Debug)]
enum Failure {
    Closed,
    Malformed(String),
    TooLarge,
    Io(io::Error),
}

impl From<quick_protobuf_codec::Error> for Failure {
    fn from(error: quick_protobuf_codec::Error) -> Self {
        // The codec wraps both its own errors and the stream's in one
        // `io::Error`; only the kind tells them apart.
        let error = io::Error::from(error);
        match error.kind() {
            // quick-protobuf-codec 0.3.1 rejects a length prefix above the
            // limit as soon as the prefix is read, without reading the body.
            io::ErrorKind::PermissionDenied => Failure::TooLarge,
            // A bad varint prefix or bytes that do not decode as the message.
            io::ErrorKind::InvalidData => Failure::Malformed(error.to_string()),
            // asynchronous-codec: the stream ended with a partial frame buffered.
            io::ErrorKind::UnexpectedEof => {
                Failure::Malformed("stream ended inside a frame".to_owned())
            }
            // yamux reports writes to a reset or closed stream as `WriteZero`.
            io::ErrorKind::WriteZero
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => Failure::Closed,
            _ => Failure::Io(error),
        }
    }
}

impl OutboundFailure {
    fn from_failure(failure: Failure, limit: usize) -> Self {
        match failure {
            Failure::Closed => Self::ConnectionClosed,
            Failure::Malformed(reason) => Self::Malformed(reason),
            Failure::TooLarge => Self::TooLarge { limit },
            Failure::Io(e) => Self::Io(Arc::new(e)),
        }
    }
}

impl InboundFailure {
    fn from_failure(failure: Failure, limit: usize) -> Self {
        match failure {
            Failure::Closed => Self::ConnectionClosed,
            Failure::Malformed(reason) => Self::Malformed(reason),
            Failure::TooLarge => Self::TooLarge { limit },
            Failure::Io(e) => Self::Io(Arc::new(e)),
        }
    }
}

/// An `Answer` decoded without trusting the nested `Operate`'s length.
///
/// quick-protobuf 0.8.1 reads a nested message against the whole frame, not
/// its own length: a crafted `Operate` can read past its end, after which
/// `BytesReader::read_unknown` computes `end - start` with `start > end` and
/// panics on overflow (debug builds) or reads garbage. Here the nested bytes
/// are cut out first and decoded as a top-level message, which quick-protobuf
/// bounds correctly; the same goes for each `Entry` of `Answer.more` and
/// the `Operate` inside it. The wire format is unchanged.
struct SafeAnswer(Answer);

impl<'a> MessageRead<'a> for SafeAnswer {
    fn from_reader(r: &mut BytesReader, bytes: &'a [u8]) -> quick_protobuf::Result<Self> {
        let mut answer = Answer::default();
        while !r.is_eof() {
            match r.next_tag(bytes)? {
                26 => answer
                    .more
                    .push(decode_nested::<SafeEntry>(r.read_bytes(bytes)?)?.0),
                34 => answer
                    .ranges
                    .push(decode_nested::<SafeRangeReply>(r.read_bytes(bytes)?)?.0),
                tag => read_entry_field(r, bytes, tag, &mut answer.status, &mut answer.op)?,
            }
        }
        Ok(Self(answer))
    }
}

/// An `Ask` decoded the way [`SafeAnswer`] is: each nested `Have` is cut
/// to its own length before it is read.
struct SafeAsk(Ask);

impl<'a> MessageRead<'a> for SafeAsk {
    fn from_reader(r: &mut BytesReader, bytes: &'a [u8]) -> quick_protobuf::Result<Self> {
        let mut ask = Ask::default();
        while !r.is_eof() {
            match r.next_tag(bytes)? {
                10 => ask.key = r.read_string(bytes)?.to_owned(),
                18 => ask.more.push(r.read_string(bytes)?.to_owned()),
                26 => ask.have.push(decode_nested::<Have>(r.read_bytes(bytes)?)?),
                34 => ask
                    .ranges
                    .push(decode_nested::<SafeRange>(r.read_bytes(bytes)?)?.0),
                tag => r.read_unknown(bytes, tag)?,
            }
        }
        Ok(Self(ask))
    }
}

/// A `Range` (spec §18) read the way [`SafeAnswer`] is: each `Item`, and
/// the `Have` inside it, cut to its own length first.
struct SafeRange(Range);

impl<'a> MessageRead<'a> for SafeRange {
    fn from_reader(r: &mut BytesReader, bytes: &'a [u8]) -> quick_protobuf::Result<Self> {
        let mut range = Range::default();
        while !r.is_eof() {
            match r.next_tag(bytes)? {
                10 => range.lower = r.read_string(bytes)?.to_owned(),
                18 => range.upper = r.read_string(bytes)?.to_owned(),
                26 => range.sum = r.read_bytes(bytes)?.to_owned(),
                32 => range.count = r.read_uint64(bytes)?,
                40 => range.listed = r.read_bool(bytes)?,
                50 => range.items.push(read_item(r, bytes)?),
                tag => r.read_unknown(bytes, tag)?,
            }
        }
        Ok(Self(range))
    }
}

/// A `RangeReply`, read the way [`SafeRange`] is.
struct SafeRangeReply(RangeReply);

impl<'a> MessageRead<'a> for SafeRangeReply {
    fn from_reader(r: &mut BytesReader, bytes: &'a [u8]) -> quick_protobuf::Result<Self> {
        let mut reply = RangeReply::default();
        while !r.is_eof() {
            match r.next_tag(bytes)? {
                8 => reply.kind = r.read_enum::<Reconciled>(bytes)?,
                18 => reply
                    .parts
                    .push(decode_nested::<SafeRange>(r.read_bytes(bytes)?)?.0),
                26 => reply.items.push(read_item(r, bytes)?),
                34 => reply.resume = r.read_string(bytes)?.to_owned(),
                tag => r.read_unknown(bytes, tag)?,
            }
        }
        Ok(Self(reply))
    }
}

/// One nested `Item`: its key and its `Have`, each cut to its own length.
fn read_item(r: &mut BytesReader, bytes: &[u8]) -> quick_protobuf::Result<Item> {
    let nested = r.read_bytes(bytes)?;
    let mut inner = BytesReader::from_bytes(nested);
    let mut item = Item::default();
    while !inner.is_eof() {
        match inner.next_tag(nested)? {
            10 => item.key = inner.read_string(nested)?.to_owned(),
            18 => item.have = Some(decode_nested::<Have>(inner.read_bytes(nested)?)?),
            tag => inner.read_unknown(nested, tag)?,
        }
    }
    Ok(item)
}

/// One `Entry` of `Answer.more`, read the way [`SafeAnswer`] is.
struct SafeEntry(Entry);

impl<'a> MessageRead<'a> for SafeEntry {
    fn from_reader(r: &mut BytesReader, bytes: &'a [u8]) -> quick_protobuf::Result<Self> {
        let mut entry = Entry::default();
        while !r.is_eof() {
            let tag = r.next_tag(bytes)?;
            read_entry_field(r, bytes, tag, &mut entry.status, &mut entry.op)?;
        }
        Ok(Self(entry))
    }
}

/// Reads one field of the `status`/`op` pair that `Answer` and `Entry`
/// share; unknown fields are skipped.
fn read_entry_field(
    r: &mut BytesReader,
    bytes: &[u8],
    tag: u32,
    status: &mut Status,
    op: &mut Option<Operate>,
) -> quick_protobuf::Result<()> {
    match tag {
        8 => *status = r.read_enum(bytes)?,
        18 => *op = Some(decode_nested::<Operate>(r.read_bytes(bytes)?)?),
        tag => r.read_unknown(bytes, tag)?,
    }
    Ok(())
}

/// Decodes nested message bytes, already cut to their own length, as a
/// top-level message.
fn decode_nested<'a, M: MessageRead<'a>>(bytes: &'a [u8]) -> quick_protobuf::Result<M> {
    M::from_reader(&mut BytesReader::from_bytes(bytes), bytes)
}

#[cfg(test)]
mod tests {
    use asynchronous_codec::{Decoder as _, Encoder as _};
    use libp2p::bytes::BytesMut;
    use proptest::prelude::*;

    use super::*;
    use crate::proto::pointer::{Operations, Status};

    fn decode_answer(frame: &[u8], limit: usize) -> Result<Option<Answer>, Failure> {
        let mut codec = Codec::<Ask, SafeAnswer>::new(limit);
        let decoded = codec.decode(&mut BytesMut::from(frame))?;
        Ok(decoded.map(|SafeAnswer(answer)| answer))
    }

    #[test]
    fn answer_round_trips_through_safe_reader() {
        let answer = Answer {
            status: Status::Ok_pb,
            op: Some(Operate {
                op: Operations::Mut,
                value: "v".into(),
                sign: "s".into(),
                time: 7,
                author: vec![1; 32],
                round: 0,
                key: String::new(),
            }),
            more: vec![
                Entry {
                    status: Status::NotExist,
                    op: None,
                },
                Entry {
                    status: Status::Ok_pb,
                    op: Some(Operate {
                        op: Operations::Del,
                        sign: "t".into(),
                        time: 8,
                        author: vec![2; 32],
                        ..Operate::default()
                    }),
                },
            ],
            ranges: vec![
                RangeReply {
                    kind: Reconciled::Split,
                    parts: vec![sample_range(), sample_range()],
                    ..RangeReply::default()
                },
                RangeReply {
                    kind: Reconciled::Differences,
                    items: sample_range().items,
                    resume: "r".into(),
                    ..RangeReply::default()
                },
            ],
        };
        let mut frame = BytesMut::new();
        Codec::<Answer, Ask>::new(1024)
            .encode(answer.clone(), &mut frame)
            .expect("encodes");
        assert_eq!(decode_answer(&frame, 1024).expect("decodes"), Some(answer));
    }

    fn sample_range() -> Range {
        Range {
            lower: "a".into(),
            upper: "m".into(),
            sum: vec![5; 16],
            count: 3,
            listed: true,
            items: vec![
                Item {
                    key: "b".into(),
                    have: Some(Have {
                        time: 4,
                        op: Operations::Del,
                        sign: vec![6; 16],
                    }),
                },
                Item {
                    key: "c".into(),
                    have: None,
                },
            ],
        }
    }

    #[test]
    fn nested_overrun_inside_a_range_item_is_malformed_not_a_panic() {
        // Ask.ranges[0].items[0] claims 2 bytes and hides a key-length
        // overrun.
        let item = [0x0a, 0x09, b'x'];
        let range = [vec![0x32, 0x02], item.to_vec()].concat();
        let ask = [vec![0x22, range.len() as u8], range].concat();
        let frame = [vec![ask.len() as u8], ask].concat();
        assert!(matches!(decode_ask(&frame, 64), Err(Failure::Malformed(_))));
    }

    fn decode_ask(frame: &[u8], limit: usize) -> Result<Option<Ask>, Failure> {
        let mut codec = Codec::<Answer, SafeAsk>::new(limit);
        let decoded = codec.decode(&mut BytesMut::from(frame))?;
        Ok(decoded.map(|SafeAsk(ask)| ask))
    }

    #[test]
    fn ask_round_trips_through_safe_reader() {
        let ask = Ask {
            key: "a".into(),
            more: vec!["b".into(), "c".into()],
            have: vec![
                Have::default(),
                Have {
                    time: 9,
                    op: Operations::Del,
                    sign: vec![3; 16],
                },
                Have::default(),
            ],
            ranges: vec![sample_range(), Range::default()],
        };
        let mut frame = BytesMut::new();
        Codec::<Ask, Answer>::new(1024)
            .encode(ask.clone(), &mut frame)
            .expect("encodes");
        assert_eq!(decode_ask(&frame, 1024).expect("decodes"), Some(ask));
    }

    #[test]
    fn nested_overrun_inside_a_have_is_malformed_not_a_panic() {
        // Ask.have[0] claims 1 byte and hides a string-length overrun.
        let have = [0x1a, 0x01, 0x1a, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        let frame = [vec![have.len() as u8], have.to_vec()].concat();
        assert!(matches!(decode_ask(&frame, 64), Err(Failure::Malformed(_))));
    }

    #[test]
    fn nested_overrun_is_malformed_not_a_panic() {
        // Answer.op claims 1 byte; inside, a string tag whose length byte lies
        // past the nested end, then an unknown fixed64 field.
        let body = [0x12, 0x01, 0x12, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut frame = vec![body.len() as u8];
        frame.extend_from_slice(&body);
        assert!(matches!(
            decode_answer(&frame, 64),
            Err(Failure::Malformed(_))
        ));
    }

    #[test]
    fn nested_overrun_inside_an_entry_is_malformed_not_a_panic() {
        // Answer.more[0] holds an Entry whose op claims 1 byte and hides the
        // same overrun as above inside it.
        let entry = [0x12, 0x01, 0x12, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        let body = [&[0x1a, entry.len() as u8][..], &entry].concat();
        let frame = [vec![body.len() as u8], body].concat();
        assert!(matches!(
            decode_answer(&frame, 64),
            Err(Failure::Malformed(_))
        ));
    }

    #[test]
    fn length_prefix_above_limit_is_too_large_before_the_body() {
        // 65 announced, no body sent: the codec must not wait for it.
        assert!(matches!(decode_answer(&[65], 64), Err(Failure::TooLarge)));
    }

    #[test]
    fn overflowing_varint_prefix_is_malformed() {
        assert!(matches!(
            decode_answer(&[0xff; 11], 64),
            Err(Failure::Malformed(_))
        ));
    }

    /// Documents why [`SafeAnswer`] exists: the generated reader panics
    /// (integer overflow) on the same bytes when overflow checks are on.
    #[cfg(debug_assertions)]
    #[test]
    fn generated_answer_reader_panics_on_nested_overrun() {
        let body = [0x12, 0x01, 0x12, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        let read = std::panic::catch_unwind(|| {
            let _ = Answer::from_reader(&mut BytesReader::from_bytes(&body), &body);
        });
        assert!(read.is_err());
    }

    /// The same for the other nested messages the `Safe*` readers cut out
    /// first: the generated readers panic on an overrun inside an `Entry`,
    /// a `Have`, or a `Have` inside the `Item` of a range or of a reply,
    /// bytes the `Safe*` readers refuse as malformed. The panic is in
    /// quick-protobuf's `BytesReader`, under every generated
    /// `read_message`, so the readers stay until quick-protobuf bounds
    /// nested reads.
    #[cfg(debug_assertions)]
    #[test]
    fn generated_readers_panic_on_every_nested_overrun() {
        fn panics<M: for<'a> MessageRead<'a>>(body: &[u8]) -> bool {
            std::panic::catch_unwind(|| {
                let _ = M::from_reader(&mut BytesReader::from_bytes(body), body);
            })
            .is_err()
        }
        let framed = |body: &[u8]| [&[body.len() as u8][..], body].concat();
        // A nested field (`outer`) claims 1 byte; inside, a length-delimited
        // field (`inner`) whose length byte lies past the nested end, then an
        // unknown fixed64.
        let overrun =
            |outer: u8, inner: u8| [outer, 0x01, inner, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0];

        let entry = overrun(0x12, 0x12);
        let answer = [&[0x1a, entry.len() as u8][..], &entry].concat();
        assert!(panics::<Answer>(&answer), "Answer.more[0].op");
        assert!(matches!(
            decode_answer(&framed(&answer), 64),
            Err(Failure::Malformed(_))
        ));

        let ask = overrun(0x1a, 0x1a);
        assert!(panics::<Ask>(&ask), "Ask.have[0]");
        assert!(matches!(
            decode_ask(&framed(&ask), 64),
            Err(Failure::Malformed(_))
        ));

        let item = overrun(0x12, 0x1a);
        let range = [&[0x32, item.len() as u8][..], &item].concat();
        let ask = [&[0x22, range.len() as u8][..], &range].concat();
        assert!(panics::<Ask>(&ask), "Ask.ranges[0].items[0].have");
        assert!(matches!(
            decode_ask(&framed(&ask), 64),
            Err(Failure::Malformed(_))
        ));

        let reply = [&[0x1a, item.len() as u8][..], &item].concat();
        let answer = [&[0x22, reply.len() as u8][..], &reply].concat();
        assert!(panics::<Answer>(&answer), "Answer.ranges[0].items[0].have");
        assert!(matches!(
            decode_answer(&framed(&answer), 64),
            Err(Failure::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(
            head in prop::sample::select(vec![
                vec![], vec![0x12, 0x01], vec![0x12, 0x03], vec![0x1a, 0x02, 0x12], vec![0x1a, 0x05],
            ]),
            tail in prop::collection::vec(any::<u8>(), 0..80),
        ) {
            let body = [head, tail].concat();
            let frame = [vec![body.len() as u8], body].concat();
            let _ = decode_answer(&frame, 127);
            let _ = decode_ask(&frame, 127);
        }
    }
}

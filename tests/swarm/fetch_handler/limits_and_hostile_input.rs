//! Limits and hostile input: garbage, truncated and oversize frames,
//! stream caps both ways, and answers built to break the reader. A module
//! of `fetch_handler` so that it shares the test behaviour and the pair.

use super::*;
use pointer::internals::wire::DecodeError;

#[tokio::test]
async fn garbage_is_rejected_and_the_node_keeps_answering() {
    bounded(async {
        let b = Fetch::new(limits(), Mode::Answer);
        let mut pair = Pair::to(b).await;

        // A frame of 4 bytes whose field 1 claims 5 bytes.
        let overrun = [0x04, 0x0a, 0x05, 0xff, 0xfe];
        // Field 1 is not UTF-8.
        let not_utf8 = [0x03, 0x0a, 0x01, 0xff];
        // A length prefix that never ends within 64 bits.
        let bad_varint = [0xff; 11];
        for bytes in [&overrun[..], &not_utf8, &bad_varint] {
            assert!(abuse(&mut pair, bytes, false).await.is_empty());
            let error = pair.inbound_failure_at_b().await;
            assert!(
                matches!(error, InboundFailure::Malformed(_)),
                "{bytes:?}: {error:?}"
            );
        }
        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn truncated_frame_is_rejected_and_the_node_keeps_answering() {
    bounded(async {
        let b = Fetch::new(limits(), Mode::Answer);
        let mut pair = Pair::to(b).await;

        // 10 bytes announced, 3 sent, then the write side is closed.
        assert!(abuse(&mut pair, &[0x0a, 0x0a, 0x01, b'k'], true)
            .await
            .is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(matches!(error, InboundFailure::Malformed(_)), "{error:?}");

        // Opened and closed without a byte.
        assert!(abuse(&mut pair, &[], true).await.is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(
            matches!(error, InboundFailure::ConnectionClosed),
            "{error:?}"
        );

        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn oversize_prefix_is_rejected_without_reading_the_body() {
    bounded(async {
        // Small, yet large enough for `b`'s answer of one signed record
        // (about 140 bytes) in `assert_still_answers`.
        let small = FetchLimits {
            max_message_size: 256,
            ..limits()
        };
        let b = Fetch::new(small, Mode::Answer);
        let mut pair = Pair::to(b).await;

        // Announce 257 bytes (varint 0x81 0x02), send none, keep the stream
        // open: `b` must not wait.
        assert!(abuse(&mut pair, &[0x81, 0x02], false).await.is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(
            matches!(error, InboundFailure::TooLarge { limit: 256 }),
            "{error:?}"
        );

        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn streams_beyond_the_inbound_cap_are_refused() {
    bounded(async {
        let capped = FetchLimits {
            max_inbound_streams: 2,
            ..limits()
        };
        let b = Fetch::new(capped, Mode::Answer);
        let mut pair = Pair::to(b).await;
        let mut control = pair.a.behaviour().raw.new_control();
        let peer = pair.b_id();

        // Two silent streams fill `b`'s slots; a third is refused unread.
        let (held, refused) = pair
            .run(async {
                let mut held = Vec::new();
                for _ in 0..2 {
                    held.push(control.open_stream(peer, PROTOCOL).await.expect("open"));
                }
                let mut extra = control.open_stream(peer, PROTOCOL).await.expect("open");
                let _ = extra.write_all(&[0x03, 0x0a, 0x01, b'k']).await;
                (held, read_until_end(&mut extra).await)
            })
            .await;
        assert!(refused.is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(
            matches!(error, InboundFailure::TooManyStreams { limit: 2 }),
            "{error:?}"
        );

        // Closing the silent streams frees the slots for a normal ask.
        drop(held);
        for _ in 0..2 {
            let error = pair.inbound_failure_at_b().await;
            assert!(
                matches!(error, InboundFailure::ConnectionClosed),
                "{error:?}"
            );
        }
        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn asks_beyond_the_outbound_cap_fail_fast() {
    bounded(async {
        let capped = FetchLimits {
            max_outbound_streams: 2,
            ..limits()
        };
        let b = Fetch::new(limits(), Mode::Hold);
        let mut pair = Pair::new(Some(Fetch::new(capped, Mode::Answer)), Some(b)).await;
        let peer = pair.b_id();

        let _held: Vec<u64> = (0..2).map(|_| pair.fetch_a().ask(peer, "k")).collect();
        let extra = pair.fetch_a().ask(peer, "k");
        let result = pair.answer_to(extra).await;
        assert!(
            matches!(result, Err(OutboundFailure::TooManyRequests { limit: 2 })),
            "{result:?}"
        );
    })
    .await
}

#[tokio::test]
async fn hostile_answers_are_errors_not_panics() {
    bounded(async {
        let small = FetchLimits {
            max_message_size: 64,
            ..limits()
        };
        let mut pair = Pair::new(Some(Fetch::new(small, Mode::Answer)), None).await;
        let mut incoming = pair
            .b
            .behaviour()
            .raw
            .new_control()
            .accept(PROTOCOL)
            .expect("accept");
        let peer = pair.b_id();

        // Oversize length prefix, then an `Operate` that overruns its length
        // (this panics quick-protobuf's generated `Answer` reader).
        let overrun = [13, 0x12, 0x01, 0x12, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        for reply in [&[65u8][..], &overrun] {
            let id = pair.fetch_a().ask(peer, "k");
            pair.run(async {
                let (_, mut stream) = incoming.next().await.expect("inbound raw stream");
                read_until_end(&mut stream).await;
                let _ = stream.write_all(reply).await;
                let _ = stream.close().await;
            })
            .await;
            let result = pair.answer_to(id).await;
            let expected = match reply.len() {
                1 => matches!(result, Err(OutboundFailure::TooLarge { limit: 64 })),
                _ => matches!(result, Err(OutboundFailure::Malformed(_))),
            };
            assert!(expected, "{reply:?}: {result:?}");
        }
    })
    .await
}

/// Frames `answer` as on the fetch stream.
fn answer_frame(answer: &proto::pointer::Answer) -> Vec<u8> {
    let mut out = Vec::new();
    quick_protobuf::Writer::new(&mut out)
        .write_message(answer)
        .expect("writing to a Vec cannot fail");
    out
}

#[tokio::test]
async fn each_entry_decodes_on_its_own_and_extra_entries_are_malformed() {
    use proto::pointer::{Answer, Entry as PbEntry, Status};
    bounded(async {
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), None).await;
        let mut incoming = pair
            .b
            .behaviour()
            .raw
            .new_control()
            .accept(PROTOCOL)
            .expect("accept");
        let peer = pair.b_id();

        let good = pointer::internals::wire::to_operate(&record("b", "v"));
        let short_author = proto::pointer::Operate {
            author: vec![1; 31],
            ..good.clone()
        };
        let entry = |status, op| PbEntry { status, op };
        // Asked: a, b, c. A bare Ok, a good record, a bad record.
        let mixed = Answer {
            status: Status::Ok_pb,
            op: None,
            more: vec![
                entry(Status::Ok_pb, Some(good)),
                entry(Status::Ok_pb, Some(short_author)),
            ],
            ranges: Vec::new(),
        };
        // Four entries for three keys.
        let too_many = Answer {
            status: Status::NotExist,
            op: None,
            more: vec![entry(Status::NotExist, None); 3],
            ranges: Vec::new(),
        };
        for reply in [mixed, too_many] {
            let id = pair.fetch_a().ask_many(peer, &["a", "b", "c"]);
            let bytes = answer_frame(&reply);
            pair.run(async {
                let (_, mut stream) = incoming.next().await.expect("inbound raw stream");
                read_until_end(&mut stream).await;
                let _ = stream.write_all(&bytes).await;
                let _ = stream.close().await;
            })
            .await;
            let result = pair.answer_to(id).await;
            if reply.more.len() == 3 {
                assert!(
                    matches!(result, Err(OutboundFailure::Malformed(_))),
                    "{result:?}"
                );
                continue;
            }
            let entries = result.expect("a well-formed answer").entries;
            assert_eq!(entries.len(), 3, "{entries:?}");
            assert!(
                matches!(entries[0], Err(DecodeError::Protobuf(_))),
                "{entries:?}"
            );
            assert_eq!(entries[1], Ok(Entry::Record(record("b", "v"))));
            assert_eq!(entries[2], Err(DecodeError::AuthorLength(31)));
        }
    })
    .await
}

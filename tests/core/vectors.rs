//! The test vectors of `docs/spec.md` ("Test vectors"), recomputed through
//! the crate's public API. The literals here and in the spec are the same
//! strings: change one, change the other.
//!
//! The vectors were also cross-checked against an independent
//! implementation written from the spec alone (Python, `cryptography`).

use base64::{engine::general_purpose::STANDARD, Engine};
use ed25519_dalek::SigningKey;
use pointer::internals::exchange::{self, Version};
use pointer::internals::proto::pointer::{Answer, Ask, Entry, Have, Operations, Status};
use pointer::internals::wire;
use pointer::{Author, Op, Record};
use quick_protobuf::{deserialize_from_slice, MessageWrite, Writer};

/// One vector, exactly as printed in the spec.
struct Vector {
    name: &'static str,
    /// The key as text, and as the hex of its UTF-8 bytes (the bytes rule:
    /// they pin the Unicode normalization of non-ASCII keys).
    key: &'static str,
    key_hex: &'static str,
    seed_hex: &'static str,
    public_key_hex: &'static str,
    peer_id: &'static str,
    op: Op,
    value: &'static str,
    value_hex: &'static str,
    time: i64,
    signed_bytes_hex: &'static str,
    signature_hex: &'static str,
    signature_base64: &'static str,
    operate_hex: &'static str,
    message_id_hex: &'static str,
}

const VECTORS: [Vector; 4] = [
    Vector {
        name: "1: Mut",
        key: "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5/greeting",
        key_hex: "313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b5048352f6772656574696e67",
        seed_hex: "0101010101010101010101010101010101010101010101010101010101010101",
        public_key_hex: "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        peer_id: "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5",
        op: Op::Mut,
        value: "hello",
        value_hex: "68656c6c6f",
        time: 1_700_000_000_000,
        signed_bytes_hex: "706f696e7465722f7265636f72642f7631000000003d313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b5048352f6772656574696e678a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c000000000568656c6c6f0000018bcfe56800",
        signature_hex: "225307e86358233807f25926423da823e73fb17e196ec92e5989b4376f5b6c59e860db0f7d5b1c013c35146120f3f4468cf62c17492aac5a9f3296cecbfc0805",
        signature_base64: "IlMH6GNYIzgH8lkmQj2oI+c/sX4ZbskuWYm0N29bbFnoYNsPfVscATw1FGEg8/RGjPYsF0kqrFqfMpbOy/wIBQ==",
        operate_hex: "120568656c6c6f1a58496c4d4836474e59497a6748386c6b6d516a326f492b632f7358345a62736b7557596d304e32396262466e6f594e7350665673634154773146474567382f52476a50597346306b71724671664d70624f792f774942513d3d2080d095ffbc312a208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        message_id_hex: "e41eae09ad8cc632f4ccad520093d994fa98f7d7f2179b2c623d904550119bcc",
    },
    Vector {
        name: "2: Del",
        key: "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5/greeting",
        key_hex: "313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b5048352f6772656574696e67",
        seed_hex: "0101010101010101010101010101010101010101010101010101010101010101",
        public_key_hex: "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        peer_id: "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5",
        op: Op::Del,
        value: "",
        value_hex: "",
        time: 1_700_000_060_000,
        signed_bytes_hex: "706f696e7465722f7265636f72642f7631000000003d313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b5048352f6772656574696e678a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c01000000000000018bcfe65260",
        signature_hex: "c5cffa782be8bfd5d3b56965f0dc2e63e9382892fa3338d66948399f5cf7de0ee2640a4e670fdf358d4a59614d1e216a3a46c2fa953f3b17cd874d773698af09",
        signature_base64: "xc/6eCvov9XTtWll8NwuY+k4KJL6MzjWaUg5n1z33g7iZApOZw/fNY1KWWFNHiFqOkbC+pU/OxfNh013NpivCQ==",
        operate_hex: "08011a5878632f366543766f7639585474576c6c384e7775592b6b344b4a4c364d7a6a57615567356e317a33336737695a41704f5a772f664e59314b5757464e486946714f6b62432b70552f4f78664e683031334e70697643513d3d20e0a499ffbc312a208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        message_id_hex: "d657d60e3c7f49a60b74d0ac40c4a09c19a2e943162951b0a7177fce96d8e8d8",
    },
    Vector {
        name: "3: Mut, non-ASCII key and value",
        key: "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq/café ☕",
        key_hex: "313244334b6f6f574a576f61715a6844616f454673684637526831627059396f68696846687a6357366436394c72324e415375712f636166c3a920e29895",
        seed_hex: "0202020202020202020202020202020202020202020202020202020202020202",
        public_key_hex: "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
        peer_id: "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq",
        op: Op::Mut,
        value: "Grüße, 世界 🌍",
        value_hex: "4772c3bcc39f652c20e4b896e7958c20f09f8c8d",
        time: 1_700_000_123_456,
        signed_bytes_hex: "706f696e7465722f7265636f72642f7631000000003e313244334b6f6f574a576f61715a6844616f454673684637526831627059396f68696846687a6357366436394c72324e415375712f636166c3a920e298958139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b39400000000144772c3bcc39f652c20e4b896e7958c20f09f8c8d0000018bcfe74a40",
        signature_hex: "363f5d6b628132d0f357cc99e3aab275f4eb70bbf56e2d6274eb1c4d74ec0455a6374e5b40367f0c6048293f3ebe41e9849b47a164bb2f515893706b6d483202",
        signature_base64: "Nj9da2KBMtDzV8yZ46qydfTrcLv1bi1idOscTXTsBFWmN05bQDZ/DGBIKT8+vkHphJtHoWS7L1FYk3BrbUgyAg==",
        operate_hex: "12144772c3bcc39f652c20e4b896e7958c20f09f8c8d1a584e6a396461324b424d74447a5638795a3436717964665472634c763162693169644f7363545854734246576d4e30356251445a2f444742494b54382b766b4870684a74486f5753374c3146596b3342726255677941673d3d20c0949dffbc312a208139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
        message_id_hex: "82cf0358f25b789ed955612ede3bab36b2398c55a33c6023f8a8ff31b30f3378",
    },
    Vector {
        name: "4: Mut, empty value, not an owned key",
        key: "shared/config",
        key_hex: "7368617265642f636f6e666967",
        seed_hex: "0303030303030303030303030303030303030303030303030303030303030303",
        public_key_hex: "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1",
        peer_id: "12D3KooWRndVhVZPCiQwHBBBdg769GyrPUW13zxwqQyf9r3ANaba",
        op: Op::Mut,
        value: "",
        value_hex: "",
        time: 1,
        signed_bytes_hex: "706f696e7465722f7265636f72642f7631000000000d7368617265642f636f6e666967ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d100000000000000000000000001",
        signature_hex: "1bde91432f053aed6343b5402928df7d7d102dfb0de78ad110166d1cc9a0a8855c234c5946f254c2265818922376e396f2c944836960c6e2155c30f4c4fc9e0f",
        signature_base64: "G96RQy8FOu1jQ7VAKSjffX0QLfsN54rREBZtHMmgqIVcI0xZRvJUwiZYGJIjduOW8slEg2lgxuIVXDD0xPyeDw==",
        operate_hex: "1a5847393652517938464f75316a513756414b536a66665830514c66734e3534725245425a74484d6d67714956634930785a52764a5577695a59474a496a64754f5738736c4567326c6778754956584444307850796544773d3d20012a20ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1",
        message_id_hex: "3ebd2ba51cbe2a8bdd3974956c66e271f1a427bb3431f030bc7032b54497cc96",
    },
];

/// Fetch frames (length prefix included) of the spec's fetch example.
const ASK_FRAME_HEX: &str = "3f0a3d313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b5048352f6772656574696e67";
const ANSWER_OK_FRAME_HEX: &str = "8d01128a01120568656c6c6f1a58496c4d4836474e59497a6748386c6b6d516a326f492b632f7358345a62736b7557596d304e32396262466e6f594e7350665673634154773146474567382f52476a50597346306b71724671664d70624f792f774942513d3d2080d095ffbc312a208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
const ANSWER_NOT_EXIST_FRAME_HEX: &str = "020801";

/// Fetch frames of the versions extension (spec §13 versions extension):
/// an asker that holds vector 2 (the tombstone) for vector 1's key and
/// nothing for vector 4's key asks for both; the answerer holds vectors 1
/// and 4. Length prefixes included.
const VERSIONED_ASK_FRAME_HEX: &str = "6d0a3d313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b5048352f6772656574696e67120d7368617265642f636f6e6669671a1b08e0a499ffbc3110011a10c5cffa782be8bfd5d3b56965f0dc2e631a00";
const ANSWER_CURRENT_FRAME_HEX: &str = "850108021a8001127e1a5847393652517938464f75316a513756414b536a66665830514c66734e3534725245425a74484d6d67714956634930785a52764a5577695a59474a496a64754f5738736c4567326c6778754956584444307850796544773d3d20012a20ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1";
/// A single-key `Answer` with status `Current` (2) and nothing else.
const ANSWER_CURRENT_ONLY_FRAME_HEX: &str = "020802";

/// Generous decode limit: the vectors are far below every default.
const LIMIT: usize = 64 * 1024;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn signer(v: &Vector) -> SigningKey {
    let seed: [u8; 32] = unhex(v.seed_hex).try_into().expect("32-byte seed");
    SigningKey::from_bytes(&seed)
}

fn signed(v: &Vector) -> Record {
    Record::sign(v.key, v.op, v.value, v.time, &signer(v))
}

/// A message with its unsigned-varint length prefix, as on the fetch stream.
/// A message's protobuf bytes, without the length prefix.
fn body(message: &impl MessageWrite) -> Vec<u8> {
    let mut out = Vec::new();
    message
        .write_message(&mut Writer::new(&mut out))
        .expect("writing to a Vec cannot fail");
    out
}

fn frame(message: &impl MessageWrite) -> Vec<u8> {
    let mut out = Vec::new();
    Writer::new(&mut out)
        .write_message(message)
        .expect("writing to a Vec cannot fail");
    out
}

#[test]
fn keys_and_values_are_the_spec_bytes() {
    for v in &VECTORS {
        assert_eq!(hex(v.key.as_bytes()), v.key_hex, "{}: key", v.name);
        assert_eq!(hex(v.value.as_bytes()), v.value_hex, "{}: value", v.name);
    }
}

#[test]
fn public_key_and_peer_id() {
    for v in &VECTORS {
        let author = Author::from(&signer(v));
        assert_eq!(
            hex(author.as_bytes()),
            v.public_key_hex,
            "{}: public key",
            v.name
        );
        let peer = author.peer_id().expect("valid Ed25519 key");
        assert_eq!(peer.to_string(), v.peer_id, "{}: PeerId", v.name);
    }
}

#[test]
fn signed_bytes_and_signature() {
    for v in &VECTORS {
        let record = signed(v);
        assert_eq!(
            hex(&record.signed_bytes()),
            v.signed_bytes_hex,
            "{}: signed bytes",
            v.name
        );
        assert_eq!(
            hex(record.signature().as_bytes()),
            v.signature_hex,
            "{}: signature",
            v.name
        );
        assert_eq!(
            STANDARD.encode(record.signature().as_bytes()),
            v.signature_base64,
            "{}: signature base64",
            v.name
        );
        assert!(record.verify(), "{}: verifies", v.name);
    }
}

#[test]
fn operate_encoding_and_message_id() {
    for v in &VECTORS {
        let bytes = wire::encode_operate(&signed(v));
        assert_eq!(hex(&bytes), v.operate_hex, "{}: Operate", v.name);
        assert_eq!(
            hex(&wire::message_id(
                &format!("/pointer/record/{}", v.key),
                &bytes
            )),
            v.message_id_hex,
            "{}: gossipsub message id",
            v.name
        );
    }
}

#[test]
fn operate_bytes_decode_to_the_record_and_verify() {
    for v in &VECTORS {
        let decoded =
            wire::decode_operate(v.key, &unhex(v.operate_hex), LIMIT).expect("vector decodes");
        assert_eq!(decoded, signed(v), "{}: decoded record", v.name);
        assert_eq!(decoded.key(), v.key);
        assert_eq!(decoded.op(), v.op);
        assert_eq!(decoded.value(), v.value);
        assert_eq!(decoded.time(), v.time);
        assert_eq!(hex(decoded.author().as_bytes()), v.public_key_hex);
        assert_eq!(hex(decoded.signature().as_bytes()), v.signature_hex);
        assert!(decoded.verify(), "{}: decoded record verifies", v.name);
    }
}

#[test]
fn operate_bytes_do_not_verify_under_another_key() {
    // The key is not in the Operate; it is inside the signature.
    for v in &VECTORS {
        let moved = wire::decode_operate("another/key", &unhex(v.operate_hex), LIMIT)
            .expect("shape is fine");
        assert!(!moved.verify(), "{}: replay onto another key", v.name);
    }
}

#[test]
fn fetch_frames() {
    let v = &VECTORS[0];
    let ask = Ask {
        key: v.key.to_owned(),
        more: Vec::new(),
        have: Vec::new(),
        ranges: Vec::new(),
    };
    assert_eq!(hex(&frame(&ask)), ASK_FRAME_HEX);
    let found = Answer {
        status: Status::Ok_pb,
        op: Some(wire::to_operate(&signed(v))),
        more: Vec::new(),
        ranges: Vec::new(),
    };
    assert_eq!(hex(&frame(&found)), ANSWER_OK_FRAME_HEX);
    // The Answer's `op` field is the vector's Operate bytes, verbatim.
    assert!(ANSWER_OK_FRAME_HEX.ends_with(v.operate_hex));
    let missing = Answer {
        status: Status::NotExist,
        op: None,
        more: Vec::new(),
        ranges: Vec::new(),
    };
    assert_eq!(hex(&frame(&missing)), ANSWER_NOT_EXIST_FRAME_HEX);
}

/// The batch extension (spec §13): further keys follow the first as field
/// 2 of `Ask`, their answers as field 3 of `Answer`, each an `Entry` with
/// the fields of `Answer`. A single-key exchange is byte for byte the
/// original one.
#[test]
fn batched_fetch_frames_extend_the_single_ones() {
    let (v, w) = (&VECTORS[0], &VECTORS[1]);
    let single = body(&Ask {
        key: v.key.to_owned(),
        more: Vec::new(),
        have: Vec::new(),
        ranges: Vec::new(),
    });
    let batched = body(&Ask {
        key: v.key.to_owned(),
        more: vec![w.key.to_owned()],
        have: Vec::new(),
        ranges: Vec::new(),
    });
    let field = [&[0x12, w.key.len() as u8][..], w.key.as_bytes()].concat();
    assert_eq!(batched, [single, field].concat());

    let operate = wire::to_operate(&signed(v));
    let first = Answer {
        status: Status::Ok_pb,
        op: Some(operate.clone()),
        more: Vec::new(),
        ranges: Vec::new(),
    };
    let entry = Entry {
        status: Status::Ok_pb,
        op: Some(operate),
    };
    let with_more = Answer {
        more: vec![
            entry.clone(),
            Entry {
                status: Status::NotExist,
                op: None,
            },
        ],
        ..first.clone()
    };
    // An Entry encodes exactly like an Answer with the same two fields.
    let entry_bytes = body(&entry);
    assert_eq!(entry_bytes, body(&first));
    let len = entry_bytes.len();
    assert!((128..16_384).contains(&len), "a two-byte length here");
    let mut expected = body(&first);
    expected.extend([0x1a, (len as u8 & 0x7f) | 0x80, (len >> 7) as u8]);
    expected.extend(&entry_bytes);
    expected.extend([0x1a, 0x02, 0x08, 0x01]);
    assert_eq!(body(&with_more), expected);
}

/// The versions extension (spec §13 versions extension): `Ask.have`
/// (field 3) carries one `Have { time, op, sign }` per key, in the order of
/// `key` then `more`, `sign` being the first 16 bytes of the signature and
/// an empty `Have` meaning "nothing held"; an answerer holding nothing newer
/// than the asker's version answers status `Current` (2) without a record.
/// An `Ask` without versions is byte for byte the plain one (above).
#[test]
fn versioned_fetch_frames_extend_the_batched_ones() {
    let (v1, v2, v4) = (&VECTORS[0], &VECTORS[1], &VECTORS[3]);
    assert_eq!(v1.key, v2.key, "vector 2 deletes vector 1's key");

    // The asker's version of vector 1's key: vector 2, the tombstone.
    let held = Version::of(&signed(v2));
    assert_eq!(held.time, v2.time);
    assert_eq!(held.op, Op::Del);
    assert_eq!(hex(&held.signature), v2.signature_hex[..32]);
    let have = Have {
        time: held.time,
        op: Operations::Del,
        sign: held.signature.to_vec(),
    };
    let ask = Ask {
        key: v1.key.to_owned(),
        more: vec![v4.key.to_owned()],
        have: vec![have.clone(), Have::default()],
        ranges: Vec::new(),
    };
    assert_eq!(hex(&frame(&ask)), VERSIONED_ASK_FRAME_HEX);
    let decoded: Ask = deserialize_from_slice(&unhex(VERSIONED_ASK_FRAME_HEX)).expect("decodes");
    assert_eq!(decoded, ask);

    // Field 3 follows the batched `Ask` once per key: time (field 1),
    // op (field 2, Del = 1) and the signature prefix (field 3, 16 bytes);
    // the empty `Have` of the key held by nothing is two bytes, 1a 00.
    let plain = body(&Ask {
        have: Vec::new(),
        ..ask.clone()
    });
    // The varint of vector 2's time, as field 4 of its Operate has it.
    let time = "e0a499ffbc31";
    assert!(v2.operate_hex.contains(&format!("20{time}")));
    let have_hex = format!("08{time}10011a10{}", &v2.signature_hex[..32]);
    assert_eq!(hex(&body(&have)), have_hex);
    let expected = format!("{}1a{:02x}{have_hex}1a00", hex(&plain), have_hex.len() / 2);
    assert_eq!(hex(&body(&ask)), expected);

    // The answerer's entries, as the crate decides them: vector 1 is older
    // than the asker's tombstone, so `Current`; vector 4's key the asker
    // does not hold, so the record itself.
    assert_eq!(
        exchange::Entry::answer(Some(&signed(v1)), Some(&held)),
        exchange::Entry::Current
    );
    assert_eq!(
        exchange::Entry::answer(Some(&signed(v4)), None),
        exchange::Entry::Record(signed(v4))
    );
    let answer = Answer {
        status: Status::Current,
        op: None,
        more: vec![Entry {
            status: Status::Ok_pb,
            op: Some(wire::to_operate(&signed(v4))),
        }],
        ranges: Vec::new(),
    };
    assert_eq!(hex(&frame(&answer)), ANSWER_CURRENT_FRAME_HEX);
    let decoded: Answer =
        deserialize_from_slice(&unhex(ANSWER_CURRENT_FRAME_HEX)).expect("decodes");
    assert_eq!(decoded, answer);
    // The `Entry` carries vector 4's Operate bytes, verbatim.
    assert!(ANSWER_CURRENT_FRAME_HEX.ends_with(v4.operate_hex));

    let current = Answer {
        status: Status::Current,
        op: None,
        more: Vec::new(),
        ranges: Vec::new(),
    };
    assert_eq!(hex(&frame(&current)), ANSWER_CURRENT_ONLY_FRAME_HEX);
}

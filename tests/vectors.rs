use base64::Engine;
use ed25519_dalek::SigningKey;
use pointer::{wire, Op, Record};
use quick_protobuf::{MessageWrite, Writer};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn frame<M: MessageWrite>(m: &M) -> Vec<u8> {
    let mut body = Vec::new();
    m.write_message(&mut Writer::new(&mut body)).unwrap();
    let mut out = Vec::new();
    let mut n = body.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend(body);
    out
}

#[test]
fn gen() {
    let k1 = SigningKey::from_bytes(&[1; 32]);
    let k2 = SigningKey::from_bytes(&[2; 32]);
    let k3 = SigningKey::from_bytes(&[3; 32]);
    let p1 = pointer::Author::from(&k1).peer_id().unwrap();
    let p2 = pointer::Author::from(&k2).peer_id().unwrap();
    let v = [
        (
            format!("{p1}/greeting"),
            Op::Mut,
            "hello",
            1_700_000_000_000i64,
            &k1,
            [1u8; 32],
        ),
        (
            format!("{p1}/greeting"),
            Op::Del,
            "",
            1_700_000_060_000,
            &k1,
            [1; 32],
        ),
        (
            format!("{p2}/café ☕"),
            Op::Mut,
            "Grüße, 世界 🌍",
            1_700_000_123_456,
            &k2,
            [2; 32],
        ),
        ("shared/config".to_string(), Op::Mut, "", 1, &k3, [3; 32]),
    ];
    for (key, op, value, time, sk, seed) in v {
        let r = Record::sign(&key, op, value, time, sk);
        println!("key={key:?}\nkey_hex={}\nseed={}\npub={}\npeer={}\nop={op:?}\nvalue={value:?}\nvalue_hex={}\ntime={time}\nsigned={}\nsig={}\nsig_b64={}\noperate={}\nask_frame={}\nanswer_frame={}\n",
            hex(key.as_bytes()), hex(&seed), hex(r.author().as_bytes()), r.author().peer_id().unwrap(), hex(value.as_bytes()),
            hex(&r.signed_bytes()), hex(r.signature().as_bytes()),
            base64::engine::general_purpose::STANDARD.encode(r.signature().as_bytes()),
            hex(&wire::encode_operate(&r)),
            hex(&frame(&pointer::proto::pointer::Ask { key: key.clone() })),
            hex(&frame(&pointer::proto::pointer::Answer { status: pointer::proto::pointer::Status::Ok_pb, op: Some(wire::to_operate(&r)) })),
        );
    }
    println!(
        "notexist={}",
        hex(&frame(&pointer::proto::pointer::Answer {
            status: pointer::proto::pointer::Status::NotExist,
            op: None
        }))
    );
}

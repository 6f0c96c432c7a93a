//! Generates the Rust types of `proto/pointer.proto` with pb-rs at build time.
//!
//! The output is used exactly as pb-rs writes it. pb-rs 0.10 names the enum
//! value `Status.Ok` `Ok_pb` in the enum but `Status::Ok` in `Default` and
//! the writer; `src/lib.rs` gives `Status` an associated constant `Ok` equal
//! to `Ok_pb`, so both names resolve without editing the generated text.

use std::path::PathBuf;

fn main() {
    let proto = PathBuf::from("proto/pointer.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let out = out_dir.join("proto");
    // pb-rs refuses to overwrite stale output on some versions; start clean.
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create OUT_DIR/proto");
    let configs = pb_rs::ConfigBuilder::new(&[proto], None, Some(&out), &[PathBuf::from("proto")])
        .expect("read proto/pointer.proto")
        .headers(false)
        .dont_use_cow(true)
        .build();
    pb_rs::types::FileDescriptor::run(&configs).expect("generate Rust from proto/pointer.proto");
}

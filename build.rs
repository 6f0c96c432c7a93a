//! Generates the Rust types of `proto/pointer.proto` with pb-rs at build time.

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
    fix_reserved_variant(&out.join("pointer.rs"));
}

/// pb-rs 0.10 renames the enum variant `Ok` (a name the prelude already uses)
/// to `Ok_pb` in the enum, but still writes `Status::Ok` in `Default` and in
/// the writer. Point every use at the renamed variant; the wire is unchanged.
fn fix_reserved_variant(file: &PathBuf) {
    let code = std::fs::read_to_string(file).expect("read generated code");
    let fixed = code
        .replace("Status::Ok_pb", "Status::Ok")
        .replace("Status::Ok", "Status::Ok_pb");
    std::fs::write(file, fixed).expect("write generated code");
}

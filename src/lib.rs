#![doc = "pointer"]

pub mod accept;
pub mod order;
pub mod record;
pub mod replica;
pub mod store;
pub mod trickle;
pub mod validator;
pub mod wire;

/// Rust types generated from `proto/pointer.proto` by pb-rs at build time.
#[allow(non_camel_case_types, non_snake_case, dead_code, unused_imports, missing_docs, clippy::all)]
pub mod proto {
    /// The `pointer` protobuf package.
    pub mod pointer {
        include!(concat!(env!("OUT_DIR"), "/proto/pointer.rs"));
    }
}

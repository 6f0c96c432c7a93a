//! The record and its rules: signing and checking a record, the order on
//! records (and their compact [`Version`](order::Version)), the checks
//! before acceptance, who may write, topics, the range fingerprints of
//! reconciliation, and why bytes do not decode. No I/O, no clock, no
//! libp2p swarm: every layer above builds on these.

pub mod accept;
pub(crate) mod author_keys;
pub(crate) mod decode_error;
pub mod order;
pub mod reconcile;
pub mod record;
pub mod topic;
pub mod validator;

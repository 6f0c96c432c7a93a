//! The partition of scenario 2 in `tests/swarm/convergence.rs`: two sides joined only by a
//! bridge, and what each side writes to key `i` while the bridge is down.
//! Shared by the real-swarm tests, the process tests and the heal bench, so
//! all three measure the same plan. Plain data: no harness needed.

#![allow(dead_code)]

/// The bridge topology of scenario 2: side A = {0, 1}, side B = {2, 3},
/// and the bridge X = 4 linked to all four.
pub const A1: usize = 0;
pub const A2: usize = 1;
pub const B1: usize = 2;
pub const B2: usize = 3;
pub const X: usize = 4;
pub const SIDES: [(usize, usize); 2] = [(A1, A2), (B1, B2)];
pub const BRIDGE: [(usize, usize); 4] = [(X, A1), (X, A2), (X, B1), (X, B2)];

/// One write made during the partition.
#[derive(Clone, Copy)]
pub enum Write {
    Put(usize),
    Del(usize),
}

/// What the two sides do to key `i` while the bridge is down (side A
/// first, side B later), by `i % 7`:
///
/// 0. both sides write it, B's later write wins;
/// 1. side A deletes it, side B leaves it alone;
/// 2. side A deletes it, side B writes it later: the value wins, side A
///    must follow the key again;
/// 3. side A writes it, side B leaves it alone;
/// 4. side B writes it, side A left it alone;
/// 5. side A writes it, side B deletes it later: side A must learn the
///    delete;
/// 6. nobody touches it: every node, the bridge too, holds the same record.
pub fn plan(i: usize) -> (Option<Write>, Option<Write>) {
    use Write::*;
    match i % 7 {
        0 => (Some(Put(A1)), Some(Put(B1))),
        1 => (Some(Del(A1)), None),
        2 => (Some(Del(A2)), Some(Put(B2))),
        3 => (Some(Put(A2)), None),
        4 => (None, Some(Put(B1))),
        5 => (Some(Put(A1)), Some(Del(B2))),
        _ => (None, None),
    }
}

//! The cost model: what a peer's input makes us do, charged to that peer.
//!
//! Every reaction to a peer's input that sends bytes or reads the store on
//! its behalf (an answer to its `Ask`, the range replies and ask-backs it
//! causes, the comparisons its range replies make us run) is priced in
//! bytes and taken from that peer's account. An account starts full at
//! `burst`, refills at `per_second`, and earns `earned_per_byte` for every
//! byte the peer sends us of its own accord (asks and gossip), never above
//! `burst`. A peer in debt is served no more: its asks wait until the
//! account is back in credit (the asker sees a slow answer, as from a busy
//! node), and the reactions its gossip or range replies would cause are
//! skipped (republish and the next anti-entropy round make up for them).
//!
//! So what a peer makes us send is bounded by
//! `burst + per_second × t + earned_per_byte × (what it sent)`, plus one
//! answer (an account goes into debt by at most the answer that emptied
//! it). Honest peers that catch up on many keys are served at
//! `per_second`; the defaults let a node catch up a million 100-byte
//! records from one peer in about half a minute.
//!
//! Invalid records are priced apart ([`misbehaviour`](crate::coordinator::misbehaviour)):
//! they prove malice and lead to a ban, whereas a peer in debt may simply
//! be catching up.

use std::collections::HashMap;

use libp2p::PeerId;

use crate::core::reconcile::RangeReply;
use crate::wire;
use crate::wire::exchange::{Entry, Reply, Request};

/// What a key's read costs us beyond the bytes of its answer: a store
/// lookup and the entry's framing.
const READ_COST: usize = 32;
/// What a version, a fingerprint or an item's framing weighs on the wire.
const VERSION_COST: usize = 40;

/// One peer's account, in bytes.
#[derive(Debug, Clone, Copy)]
struct Account {
    balance: i64,
    at_ms: i64,
}

/// The accounts of the peers whose input we reacted to lately.
#[derive(Debug)]
pub(crate) struct Ledger {
    burst: i64,
    per_second: i64,
    earned_per_byte: i64,
    accounts: HashMap<PeerId, Account>,
}

impl Ledger {
    /// A ledger where each account holds up to `burst` bytes, refills at
    /// `per_second` and earns `earned_per_byte` per byte received.
    pub fn new(burst: usize, per_second: usize, earned_per_byte: u32) -> Self {
        Ledger {
            burst: i64::try_from(burst).unwrap_or(i64::MAX),
            per_second: i64::try_from(per_second).unwrap_or(i64::MAX).max(1),
            earned_per_byte: i64::from(earned_per_byte),
            accounts: HashMap::new(),
        }
    }

    /// `peer`'s account, refilled up to `now_ms`.
    fn account(&mut self, peer: PeerId, now_ms: i64) -> &mut Account {
        let (burst, per_second) = (self.burst, self.per_second);
        let account = self.accounts.entry(peer).or_insert(Account {
            balance: burst,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(account.at_ms).max(0);
        let refill = elapsed.saturating_mul(per_second) / 1000;
        account.balance = account.balance.saturating_add(refill).min(burst);
        account.at_ms = account.at_ms.max(now_ms);
        account
    }

    /// `peer` sent us `bytes` of its own accord.
    pub fn earn(&mut self, peer: PeerId, bytes: usize, now_ms: i64) {
        let earned = i64::try_from(bytes)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.earned_per_byte);
        let burst = self.burst;
        let account = self.account(peer, now_ms);
        account.balance = account.balance.saturating_add(earned).min(burst);
    }

    /// Whether we still react to `peer`'s input at `now_ms`.
    pub fn in_credit(&mut self, peer: PeerId, now_ms: i64) -> bool {
        self.account(peer, now_ms).balance > 0
    }

    /// Charges `peer` `bytes` of work done on its behalf.
    pub fn spend(&mut self, peer: PeerId, bytes: usize, now_ms: i64) {
        let cost = i64::try_from(bytes).unwrap_or(i64::MAX);
        let account = self.account(peer, now_ms);
        account.balance = account.balance.saturating_sub(cost);
    }

    /// How long from `now_ms` until `peer` is in credit again (0 if it is).
    pub fn wait_ms(&mut self, peer: PeerId, now_ms: i64) -> i64 {
        let per_second = self.per_second;
        let debt = 1 - self.account(peer, now_ms).balance;
        if debt <= 0 {
            return 0;
        }
        // Rounded up, so that at the end of the wait the refill is there.
        debt.saturating_mul(1000).saturating_add(per_second - 1) / per_second
    }

    /// `peer` disconnected. An account in debt is kept until it refills,
    /// so that reconnecting does not wipe a debt; full accounts go, this
    /// one's and any other's (one is made full again when next needed).
    pub fn peer_gone(&mut self, peer: PeerId, now_ms: i64) {
        let (burst, per_second) = (self.burst, self.per_second);
        self.account(peer, now_ms);
        self.accounts.retain(|_, account| {
            let elapsed = now_ms.saturating_sub(account.at_ms).max(0);
            let refill = elapsed.saturating_mul(per_second) / 1000;
            account.balance.saturating_add(refill) < burst
        });
    }

    /// Accounts held (connected peers and indebted departed ones).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.accounts.len()
    }
}

/// What `request` weighs on the wire, about: what the asker earns by it.
pub(crate) fn request_bytes(request: &Request) -> usize {
    let keys: usize = request
        .keys
        .iter()
        .map(|k| k.key.len() + 8 + if k.have.is_some() { VERSION_COST } else { 0 })
        .sum();
    let ranges: usize = request
        .ranges
        .iter()
        .map(|r| r.range.lower.len() + r.range.upper.as_ref().map_or(0, String::len))
        .map(|bounds| bounds + VERSION_COST)
        .sum();
    keys + ranges
}

/// What answering with `reply` costs us: its bytes, and a read per key.
pub(crate) fn reply_cost(reply: &Reply) -> usize {
    let entries: usize = reply
        .entries
        .iter()
        .map(|entry| match entry {
            Entry::Record(record) => wire::entry_min_cost(record) + READ_COST,
            Entry::NotExist | Entry::Current => READ_COST,
        })
        .sum();
    entries + reply.ranges.iter().map(range_reply_cost).sum::<usize>()
}

/// What a range reply weighs, sent or compared: its parts or its items.
pub(crate) fn range_reply_cost(reply: &RangeReply) -> usize {
    match reply {
        RangeReply::Equal => VERSION_COST,
        RangeReply::Split(parts) => parts
            .iter()
            .map(|(range, _)| {
                range.lower.len() + range.upper.as_ref().map_or(0, String::len) + VERSION_COST
            })
            .sum(),
        RangeReply::Listed { items, .. } | RangeReply::Differences { items, .. } => items
            .iter()
            .map(|item| item.key.len() + VERSION_COST + READ_COST)
            .sum(),
    }
}

/// What asking a peer back about `key` costs us.
pub(crate) fn ask_cost(key: &str) -> usize {
    key.len() + 8 + VERSION_COST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_starts_full_goes_into_debt_and_refills() {
        let peer = PeerId::random();
        let mut ledger = Ledger::new(1_000, 500, 2);
        assert!(ledger.in_credit(peer, 0));
        ledger.spend(peer, 1_500, 0);
        assert!(!ledger.in_credit(peer, 0), "500 bytes in debt");
        assert_eq!(ledger.wait_ms(peer, 0), 1_002, "501 bytes at 500 a second");
        assert!(!ledger.in_credit(peer, 1_000));
        assert!(ledger.in_credit(peer, 1_002));
        // Refills stop at the burst.
        ledger.spend(peer, 1_001, 100_000);
        assert!(!ledger.in_credit(peer, 100_000));
    }

    #[test]
    fn what_a_peer_sends_earns_it_credit_up_to_the_burst() {
        let peer = PeerId::random();
        let mut ledger = Ledger::new(1_000, 1, 2);
        ledger.spend(peer, 1_100, 0);
        assert!(!ledger.in_credit(peer, 0));
        ledger.earn(peer, 60, 0);
        assert!(ledger.in_credit(peer, 0), "120 bytes earned for 60 sent");
        ledger.earn(peer, 10_000, 0);
        ledger.spend(peer, 1_000, 0);
        assert!(!ledger.in_credit(peer, 0), "earnings stop at the burst");
    }

    #[test]
    fn reconnecting_keeps_a_debt_and_full_accounts_are_forgotten() {
        let (debtor, idle) = (PeerId::random(), PeerId::random());
        let mut ledger = Ledger::new(1_000, 1_000, 2);
        ledger.spend(debtor, 3_000, 0);
        ledger.in_credit(idle, 0);
        ledger.peer_gone(idle, 0);
        ledger.peer_gone(debtor, 0);
        assert_eq!(ledger.len(), 1, "only the debt is kept");
        assert!(
            !ledger.in_credit(debtor, 1_500),
            "back at once, still in debt"
        );
        ledger.peer_gone(debtor, 5_000);
        assert_eq!(ledger.len(), 0, "refilled, forgotten");
    }

    #[test]
    fn a_record_answered_costs_its_bytes_and_a_read() {
        use ed25519_dalek::SigningKey;
        let key = SigningKey::from_bytes(&[7; 32]);
        let record = crate::core::record::Record::sign(
            "k",
            crate::core::record::Op::Mut,
            &"v".repeat(1000),
            1,
            &key,
        );
        let reply = Reply {
            entries: vec![Entry::Record(record.clone()), Entry::NotExist],
            ranges: Vec::new(),
        };
        let cost = reply_cost(&reply);
        assert!(cost > 1000 && cost == wire::entry_min_cost(&record) + 2 * READ_COST);
    }
}

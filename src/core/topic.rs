//! The gossipsub topics records travel on, and how a key maps to them.
//!
//! The seed's wire gives every key its own topic, `/pointer/record/<key>`.
//! That costs gossipsub state per key and per peer, and gossipsub sends all
//! of a node's subscriptions in one hello RPC on every connection: past
//! some 50,000 keys the hello outgrows what a peer accepts and is dropped
//! whole, so the two never learn what the other follows.
//!
//! The *sharded topics* extension (spec §17) hashes each key onto one of a
//! fixed number of shard topics, `/pointer/shard/<count>/<index>`, so a
//! node that follows a million keys joins at most `count` topics. Records
//! on a shard topic name their key (`Operate.key`). A node that uses shards
//! still joins a key's own topic once a connected peer follows the key that
//! way, so a node that speaks only the seed's wire keeps working with it.

use sha2::{Digest, Sha256};

/// Prefix of a key's own topic: `/pointer/record/<key>`.
pub const TOPIC_PREFIX: &str = "/pointer/record/";

/// Prefix of a shard topic: `/pointer/shard/<count>/<index>`.
pub const SHARD_PREFIX: &str = "/pointer/shard/";

/// A topic records travel on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// The key's own topic (the seed's wire).
    Key(String),
    /// Shard `index` of `count`: the records of every key that hashes there.
    Shard {
        /// How many shards the keys are spread over.
        count: u16,
        /// This shard, below `count`.
        index: u16,
    },
}

impl Topic {
    /// The shard topic of `key` among `count` shards (`count` at least 1).
    pub fn shard_of(key: &str, count: u16) -> Topic {
        Topic::Shard {
            count,
            index: shard_index(key, count),
        }
    }

    /// The gossipsub topic string.
    pub fn name(&self) -> String {
        match self {
            Topic::Key(key) => format!("{TOPIC_PREFIX}{key}"),
            Topic::Shard { count, index } => format!("{SHARD_PREFIX}{count}/{index}"),
        }
    }

    /// The topic a gossipsub topic string names, if it is a record topic.
    /// Shard topics are recognised only for `shards` shards (0: none): a
    /// shard of another count is another, foreign, set of topics.
    pub fn parse(name: &str, shards: u16) -> Option<Topic> {
        if let Some(key) = name.strip_prefix(TOPIC_PREFIX) {
            return Some(Topic::Key(key.to_owned()));
        }
        let (count, index) = name.strip_prefix(SHARD_PREFIX)?.split_once('/')?;
        let (count, index) = (parse_decimal(count)?, parse_decimal(index)?);
        (shards != 0 && count == shards && index < count).then_some(Topic::Shard { count, index })
    }
}

/// Which of `count` shards `key` belongs to: the first eight bytes of the
/// key's SHA-256, big-endian, modulo `count`. Every implementation must
/// compute the same, so it is part of the wire (spec §17).
pub fn shard_index(key: &str, count: u16) -> u16 {
    let digest = Sha256::digest(key.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let index = u64::from_be_bytes(head) % u64::from(count.max(1));
    u16::try_from(index).unwrap_or(0)
}

/// A decimal without sign or leading zeros, so that each shard has one
/// name only.
fn parse_decimal(s: &str) -> Option<u16> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let key = Topic::Key("a/b".into());
        assert_eq!(key.name(), "/pointer/record/a/b");
        assert_eq!(Topic::parse(&key.name(), 0), Some(key.clone()));
        assert_eq!(Topic::parse(&key.name(), 64), Some(key));
        let shard = Topic::Shard {
            count: 64,
            index: 7,
        };
        assert_eq!(shard.name(), "/pointer/shard/64/7");
        assert_eq!(Topic::parse(&shard.name(), 64), Some(shard));
    }

    #[test]
    fn shards_of_another_count_or_malformed_are_foreign() {
        for name in [
            "/pointer/shard/64/7",  // shards off
            "/pointer/shard/32/7",  // another count
            "/pointer/shard/64/64", // out of range
            "/pointer/shard/64/07", // not canonical
            "/pointer/shard/64/+7",
            "/pointer/shard/64",
            "/pointer/shard//7",
            "/other/topic",
        ] {
            let shards = if name == "/pointer/shard/64/7" { 0 } else { 64 };
            assert_eq!(Topic::parse(name, shards), None, "{name}");
        }
    }

    #[test]
    fn the_shard_of_a_key_is_fixed_by_its_hash() {
        // SHA-256("hello") begins 2cf24dba5fb0a30e: that, modulo 256, is 0x0e.
        assert_eq!(shard_index("hello", 256), 0x0e);
        assert_eq!(shard_index("hello", 1), 0);
        let spread: std::collections::BTreeSet<u16> = (0..1000)
            .map(|i| shard_index(&format!("k{i}"), 16))
            .collect();
        assert_eq!(spread.len(), 16, "a thousand keys reach every shard");
    }
}

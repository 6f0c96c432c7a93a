//! The bounds a [`Config`] must keep, and [`check`], which
//! [`ConfigBuilder::build`](super::ConfigBuilder::build) runs: a setting
//! that cannot work is refused, never clamped.

use std::time::Duration;

use super::Config;

/// Longest duration any setting accepts: ten years.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Most threads [`ConfigBuilder::verify_threads`](crate::ConfigBuilder::verify_threads) accepts.
pub const MAX_VERIFY_THREADS: usize = 256;

/// Most shard topics [`ConfigBuilder::topic_shards`](crate::ConfigBuilder::topic_shards) accepts: a hello
/// naming all of them stays under 100 KiB.
pub const MAX_TOPIC_SHARDS: u16 = 4096;

/// Largest `max_message_bytes` accepted: 64 MiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Largest `max_gossip_rpc_bytes` accepted: 1 GiB.
pub const MAX_GOSSIP_RPC_BYTES: usize = 1024 * 1024 * 1024;

/// Bytes an `Operate` adds to its value at most: field tags and lengths,
/// the 88-character signature, the 32-byte author, the time (spec §14).
pub const OPERATE_OVERHEAD: usize = 139;

/// Why [`ConfigBuilder::build`](crate::ConfigBuilder::build) refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A count or an interval that must be positive is zero.
    #[error("{knob} must be positive")]
    Zero {
        /// The builder method.
        knob: &'static str,
    },
    /// A duration beyond [`MAX_DURATION`].
    #[error("{knob} of {value:?} is longer than the {max:?} allowed")]
    TooLong {
        /// The builder method.
        knob: &'static str,
        /// The value given.
        value: Duration,
        /// The most allowed.
        max: Duration,
    },
    /// A size beyond what the node can allocate sensibly.
    #[error("{knob} of {value} bytes is more than the {max} allowed")]
    TooLarge {
        /// The builder method.
        knob: &'static str,
        /// The value given.
        value: usize,
        /// The most allowed.
        max: usize,
    },
    /// A count beyond its ceiling ([`MAX_TOPIC_SHARDS`],
    /// [`MAX_VERIFY_THREADS`]).
    #[error("{knob} of {value} is more than the {max} allowed")]
    TooMany {
        /// The builder method.
        knob: &'static str,
        /// The value given.
        value: usize,
        /// The most allowed.
        max: usize,
    },
    /// A record with a value of `max_value_bytes` would not fit in
    /// `max_message_bytes`, so such writes could never be sent.
    #[error("a record with a {value_bytes}-byte value needs up to {needed} bytes, more than max_message_bytes ({max_message_bytes})")]
    ValueDoesNotFit {
        /// `max_value_bytes`.
        value_bytes: usize,
        /// The largest `Operate` it allows.
        needed: usize,
        /// `max_message_bytes`.
        max_message_bytes: usize,
    },
}

/// Most ranges [`ConfigBuilder::max_reconcile_ranges`](crate::ConfigBuilder::max_reconcile_ranges) allows.
pub const MAX_RECONCILE_RANGES: usize = 256;

pub(super) fn check(c: &Config) -> Result<(), ConfigError> {
    let positive = [
        ("max_key_bytes", c.limits.max_key_bytes),
        ("max_message_bytes", c.max_message_bytes),
        ("max_gossip_rpc_bytes", c.max_gossip_rpc_bytes),
        ("fetch_fanout", c.fetch_fanout),
        ("max_keys_per_ask", c.max_keys_per_ask),
        ("max_inbound_fetch_streams", c.max_inbound_fetch_streams),
        ("max_outbound_fetch_streams", c.max_outbound_fetch_streams),
        (
            "max_inbound_fetch_streams_total",
            c.max_inbound_fetch_streams_total,
        ),
        ("max_topics_per_peer", c.max_topics_per_peer),
        ("peer_work_budget", c.peer_work_burst),
        (
            "topic_changes_per_second",
            c.topic_changes_per_second as usize,
        ),
        ("republish_per_second", c.republish_per_second as usize),
        ("peer_work_budget", c.peer_work_per_second),
        ("discovery_rate", c.discovery_rate as usize),
        ("discovery_dials", c.discovery_dials),
        ("verify_threads", c.verify_threads),
        ("max_reconcile_ranges", c.max_reconcile_ranges),
        ("max_reconcile_rounds", c.max_reconcile_rounds),
        ("max_reconcile_pending", c.max_reconcile_pending),
        (
            "settled_republish_every",
            c.settled_republish_every as usize,
        ),
    ];
    for (knob, value) in positive {
        if value == 0 {
            return Err(ConfigError::Zero { knob });
        }
    }
    if c.auto_shards_after > 0 && c.auto_shards == 0 {
        return Err(ConfigError::Zero {
            knob: "auto_topic_shards",
        });
    }
    let durations = [
        ("republish_interval", c.republish_interval, true),
        ("fetch_timeout", c.fetch_timeout, true),
        ("get_grace", c.get_grace, false),
        ("heartbeat_interval", c.heartbeat_interval, true),
        ("invalid_record_budget", c.invalid_record_window, true),
        ("tombstone_ttl", c.tombstone_ttl, false),
        ("store_flush_interval", c.store_flush_interval, false),
        ("discovery_interval", c.discovery_interval, true),
        ("settled_after", c.settled_after, false),
        ("ban_duration", c.ban_duration, false),
        (
            "max_clock_skew",
            Duration::from_millis(u64::try_from(c.limits.max_clock_skew_ms).unwrap_or(u64::MAX)),
            false,
        ),
    ];
    for (knob, value, must_be_positive) in durations {
        if must_be_positive && value.is_zero() {
            return Err(ConfigError::Zero { knob });
        }
        if value > MAX_DURATION {
            let max = MAX_DURATION;
            return Err(ConfigError::TooLong { knob, value, max });
        }
    }
    let counts = [
        (
            "topic_shards",
            usize::from(c.topic_shards),
            usize::from(MAX_TOPIC_SHARDS),
        ),
        (
            "auto_topic_shards",
            usize::from(c.auto_shards),
            usize::from(MAX_TOPIC_SHARDS),
        ),
        ("verify_threads", c.verify_threads, MAX_VERIFY_THREADS),
        (
            "max_reconcile_ranges",
            c.max_reconcile_ranges,
            MAX_RECONCILE_RANGES,
        ),
    ];
    for (knob, value, max) in counts {
        if value > max {
            return Err(ConfigError::TooMany { knob, value, max });
        }
    }
    let sizes = [
        ("max_message_bytes", c.max_message_bytes, MAX_MESSAGE_BYTES),
        (
            "max_gossip_rpc_bytes",
            c.max_gossip_rpc_bytes,
            MAX_GOSSIP_RPC_BYTES,
        ),
        ("max_key_bytes", c.limits.max_key_bytes, MAX_MESSAGE_BYTES),
        (
            "max_value_bytes",
            c.limits.max_value_bytes,
            MAX_MESSAGE_BYTES,
        ),
    ];
    for (knob, value, max) in sizes {
        if value > max {
            return Err(ConfigError::TooLarge { knob, value, max });
        }
    }
    // On a shard topic the record names its key: tag, length and key.
    let key_field = if c.topic_shards > 0 {
        c.limits.max_key_bytes + 3
    } else {
        0
    };
    let needed = c.limits.max_value_bytes + OPERATE_OVERHEAD + key_field;
    if needed > c.max_message_bytes {
        return Err(ConfigError::ValueDoesNotFit {
            value_bytes: c.limits.max_value_bytes,
            needed,
            max_message_bytes: c.max_message_bytes,
        });
    }
    Ok(())
}

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

use super::*;

fn every_knob() -> ConfigBuilder {
    Config::builder()
        .max_key_bytes(10)
        .max_value_bytes(20)
        .max_message_bytes(40 + OPERATE_OVERHEAD)
        .max_gossip_rpc_bytes(40)
        .max_clock_skew(Duration::from_secs(1))
        .tombstone_ttl(Duration::from_secs(2))
        .republish_interval(Duration::from_secs(3))
        .fetch_timeout(Duration::from_secs(4))
        .get_grace(Duration::from_millis(70))
        .fetch_fanout(5)
        .max_keys_per_ask(7)
        .author_key_cache(8)
        .refused_record_cache(9)
        .store_flush_interval(Duration::from_millis(6))
        .invalid_record_budget(11, Duration::from_secs(12))
        .ban_duration(Duration::from_secs(13))
        .max_banned_peers(14)
        .max_topics_per_peer(15)
        .max_subscription_bytes(16)
        .max_inbound_fetch_streams_total(17)
        .topic_shards(18)
        .verify_threads(19)
        .peer_work_budget(20, 21)
        .work_earned_per_byte(22)
        .collected_delete_memory(23)
        .topic_changes_per_second(24)
        .auto_topic_shards(25, 26)
        .republish_per_second(27)
}

#[test]
fn builder_sets_every_limit() {
    let c = every_knob().build().expect("valid");
    assert_eq!(
        c.limits(),
        &Limits {
            max_key_bytes: 10,
            max_value_bytes: 20,
            max_clock_skew_ms: 1000
        }
    );
    assert_eq!(c.max_message_bytes(), 40 + OPERATE_OVERHEAD);
    assert_eq!(c.max_gossip_rpc_bytes(), 40);
    assert_eq!(c.tombstone_ttl(), Duration::from_secs(2));
    assert_eq!(c.republish_interval(), Duration::from_secs(3));
    assert_eq!(c.fetch_timeout(), Duration::from_secs(4));
    assert_eq!(c.get_grace(), Duration::from_millis(70));
    assert_eq!(c.fetch_fanout(), 5);
    assert_eq!(c.max_keys_per_ask(), 7);
    assert_eq!(c.author_key_cache(), 8);
    assert_eq!(c.refused_record_cache(), 9);
    assert_eq!(c.store_flush_interval(), Duration::from_millis(6));
    assert_eq!(c.invalid_record_budget(), (11, Duration::from_secs(12)));
    assert_eq!(c.ban_duration(), Duration::from_secs(13));
    assert_eq!(c.max_banned_peers(), 14);
    assert_eq!(c.max_topics_per_peer(), 15);
    assert_eq!(c.max_subscription_bytes(), 16);
    assert_eq!(c.max_inbound_fetch_streams_total(), 17);
    assert_eq!(c.topic_shards(), 18);
    assert_eq!(c.verify_threads(), 19);
    assert_eq!(c.peer_work_budget(), (20, 21));
    assert_eq!(c.work_earned_per_byte(), 22);
    assert_eq!(c.collected_delete_memory(), 23);
    assert_eq!(c.topic_changes_per_second(), 24);
    assert_eq!(c.auto_topic_shards(), (25, 26));
    assert_eq!(c.republish_per_second(), 27);
    assert!(Config::default().verify_threads() >= 1);
    assert_eq!(
        Config::builder()
            .verify_threads(0)
            .build()
            .expect_err("zero"),
        ConfigError::Zero {
            knob: "verify_threads"
        }
    );
    assert!(matches!(
        Config::builder()
            .verify_threads(MAX_VERIFY_THREADS + 1)
            .build(),
        Err(ConfigError::TooMany {
            knob: "verify_threads",
            ..
        })
    ));
}

#[test]
fn shards_are_bounded_and_make_room_for_the_key() {
    assert_eq!(Config::default().topic_shards(), 0, "a topic per key");
    assert_eq!(
        Config::builder()
            .topic_shards(MAX_TOPIC_SHARDS + 1)
            .build()
            .expect_err("too many"),
        ConfigError::TooMany {
            knob: "topic_shards",
            value: usize::from(MAX_TOPIC_SHARDS) + 1,
            max: usize::from(MAX_TOPIC_SHARDS)
        }
    );
    let tight = || {
        Config::builder()
            .max_key_bytes(100)
            .max_value_bytes(1000)
            .max_message_bytes(1000 + OPERATE_OVERHEAD)
    };
    assert!(tight().build().is_ok());
    assert!(matches!(
        tight().topic_shards(16).build(),
        Err(ConfigError::ValueDoesNotFit { .. })
    ));
    let tight_auto = tight().auto_topic_shards(10, 16).build().expect("valid");
    assert_eq!(
        tight_auto.shard_topic_count(),
        0,
        "records that would not fit a shard topic keep a topic per key"
    );
    let roomy = Config::builder()
        .auto_topic_shards(10, 16)
        .build()
        .expect("valid");
    assert_eq!(roomy.shard_topic_count(), 16);
}

#[test]
fn the_defaults_build() {
    assert!(Config::builder().build().is_ok());
}

#[test]
fn values_that_cannot_work_are_refused_not_clamped() {
    let zero = |b: ConfigBuilder| b.build().expect_err("refused");
    for (builder, knob) in [
        (Config::builder().discovery_rate(0), "discovery_rate"),
        (Config::builder().peer_work_budget(0, 1), "peer_work_budget"),
        (
            Config::builder().auto_topic_shards(1, 0),
            "auto_topic_shards",
        ),
        (
            Config::builder().republish_per_second(0),
            "republish_per_second",
        ),
        (
            Config::builder().topic_changes_per_second(0),
            "topic_changes_per_second",
        ),
        (Config::builder().peer_work_budget(1, 0), "peer_work_budget"),
        (Config::builder().discovery_dials(0), "discovery_dials"),
        (
            Config::builder().discovery_interval(Duration::ZERO),
            "discovery_interval",
        ),
    ] {
        assert_eq!(zero(builder), ConfigError::Zero { knob });
    }
    assert_eq!(
        zero(Config::builder().fetch_fanout(0)),
        ConfigError::Zero {
            knob: "fetch_fanout"
        }
    );
    assert_eq!(
        zero(Config::builder().max_keys_per_ask(0)),
        ConfigError::Zero {
            knob: "max_keys_per_ask"
        }
    );
    assert_eq!(
        zero(Config::builder().republish_interval(Duration::ZERO)),
        ConfigError::Zero {
            knob: "republish_interval"
        }
    );
    for (knob, builder) in [
        (
            "republish_interval",
            Config::builder().republish_interval(Duration::MAX),
        ),
        (
            "fetch_timeout",
            Config::builder().fetch_timeout(Duration::MAX),
        ),
        ("get_grace", Config::builder().get_grace(Duration::MAX)),
        (
            "store_flush_interval",
            Config::builder().store_flush_interval(Duration::MAX),
        ),
        (
            "tombstone_ttl",
            Config::builder().tombstone_ttl(Duration::MAX),
        ),
        (
            "max_clock_skew",
            Config::builder().max_clock_skew(Duration::MAX),
        ),
    ] {
        match builder.build() {
            Err(ConfigError::TooLong { knob: k, .. }) => assert_eq!(k, knob),
            other => panic!("{knob}: {other:?}"),
        }
    }
    let huge = Config::builder().max_message_bytes(usize::MAX).build();
    assert!(
        matches!(
            huge,
            Err(ConfigError::TooLarge {
                knob: "max_message_bytes",
                ..
            })
        ),
        "{huge:?}"
    );
    let unfit = Config::builder()
        .max_value_bytes(64 * 1024)
        .max_message_bytes(64 * 1024)
        .build();
    assert!(
        matches!(unfit, Err(ConfigError::ValueDoesNotFit { .. })),
        "{unfit:?}"
    );
}

#[test]
fn a_maximal_record_fits_its_overhead() {
    let signer = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let value = "v".repeat(1000);
    let record = crate::Record::sign("k", crate::Op::Mut, &value, i64::MAX, &signer);
    let encoded = crate::wire::encode_operate(&record).len();
    assert!(encoded <= value.len() + OPERATE_OVERHEAD, "{encoded}");
}

#[test]
fn reconciliation_knobs_have_defaults_and_bounds() {
    let c = Config::default();
    assert_eq!(c.reconcile_min_keys(), 1024);
    assert_eq!(c.max_reconcile_ranges(), 16);
    assert_eq!(c.max_reconcile_rounds(), 4096);
    assert_eq!(c.max_reconcile_pending(), 8192);
    let set = Config::builder()
        .reconcile_min_keys(0)
        .max_reconcile_ranges(MAX_RECONCILE_RANGES)
        .max_reconcile_rounds(3)
        .max_reconcile_pending(5)
        .build()
        .expect("in bounds");
    assert_eq!(set.reconcile_min_keys(), 0, "0 always reconciles ranges");
    assert_eq!(set.max_reconcile_ranges(), MAX_RECONCILE_RANGES);
    assert_eq!(set.max_reconcile_rounds(), 3);
    assert_eq!(set.max_reconcile_pending(), 5);
    for (knob, builder) in [
        (
            "max_reconcile_ranges",
            Config::builder().max_reconcile_ranges(0),
        ),
        (
            "max_reconcile_rounds",
            Config::builder().max_reconcile_rounds(0),
        ),
        (
            "max_reconcile_pending",
            Config::builder().max_reconcile_pending(0),
        ),
    ] {
        assert_eq!(builder.build().err(), Some(ConfigError::Zero { knob }));
    }
    let over = Config::builder()
        .max_reconcile_ranges(MAX_RECONCILE_RANGES + 1)
        .build();
    assert!(
        matches!(
            over,
            Err(ConfigError::TooMany {
                knob: "max_reconcile_ranges",
                ..
            })
        ),
        "{over:?}"
    );
}

#[test]
fn settled_republish_knobs_have_defaults_and_bounds() {
    let c = Config::default();
    assert_eq!(c.settled_after(), Duration::from_secs(600));
    assert_eq!(c.settled_republish_every(), 32);
    let set = Config::builder()
        .settled_after(Duration::ZERO)
        .settled_republish_every(1)
        .build()
        .expect("in bounds");
    assert_eq!(set.settled_after(), Duration::ZERO);
    assert_eq!(set.settled_republish_every(), 1, "1: every firing");
    assert_eq!(
        Config::builder().settled_republish_every(0).build().err(),
        Some(ConfigError::Zero {
            knob: "settled_republish_every"
        })
    );
    assert!(matches!(
        Config::builder()
            .settled_after(MAX_DURATION + Duration::from_secs(1))
            .build(),
        Err(ConfigError::TooLong {
            knob: "settled_after",
            ..
        })
    ));
}

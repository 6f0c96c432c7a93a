//! Random schedules: a topology, clock skews, and a timeline of writes,
//! deletes, reads, hostile injections, partitions, heals, crashes and
//! restarts, all drawn from one seed.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};

/// The shape of the network's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// 0 – 1 – 2 – … – n-1.
    Line,
    /// A line whose ends are linked.
    Ring,
    /// Node 0 linked to every other.
    Star,
    /// A random tree plus a few extra links: sparse, and connected.
    Sparse,
    /// Every pair linked.
    Full,
}

/// How a hostile node forges a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed by a key the validator does not allow.
    Unauthorized,
    /// An allowed author's record with its value changed after signing.
    BadSignature,
}

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `put(key, value)` on a node.
    Put {
        /// The node.
        node: usize,
        /// Index into the scenario's keys.
        key: usize,
        /// The value.
        value: String,
    },
    /// `delete(key)` on a node.
    Delete {
        /// The node.
        node: usize,
        /// Index into the scenario's keys.
        key: usize,
    },
    /// `get(key)` on a node.
    Get {
        /// The node.
        node: usize,
        /// Index into the scenario's keys.
        key: usize,
    },
    /// A node injects a forged record, newer than anything written.
    Inject {
        /// The hostile node.
        node: usize,
        /// Index into the scenario's keys.
        key: usize,
        /// How it is forged.
        forgery: Forgery,
    },
    /// The topology's links between the two sides are cut.
    Partition {
        /// Which side each node is on.
        side: Vec<bool>,
    },
    /// Every topology link whose ends are up is restored.
    HealAll,
    /// A node crashes (keeping its store).
    Crash {
        /// The node.
        node: usize,
    },
    /// A crashed node restarts and relinks to its topology neighbours.
    Restart {
        /// The node.
        node: usize,
    },
}

/// A schedule to run: see [`Scenario::random`].
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed it was drawn from (and the network's seed).
    pub seed: u64,
    /// Node identities.
    pub signers: Vec<SigningKey>,
    /// Nodes whose authors the validator refuses.
    pub unauthorized: Vec<usize>,
    /// Clock skew per node, in milliseconds.
    pub skews_ms: Vec<i64>,
    /// The keys written; every node follows every key from the start.
    pub keys: Vec<String>,
    /// The shape of the links.
    pub topology: Topology,
    /// The links of that shape.
    pub links: Vec<(usize, usize)>,
    /// The timeline, in order.
    pub steps: Vec<(Duration, Step)>,
    /// Each node's `topic_shards` (0: a topic per key): all 0, all
    /// sharded, or a mix, so that nodes with and without the extension
    /// are checked together.
    pub shards: Vec<u16>,
    /// Each node's `auto_topic_shards` threshold (0: never), to the same
    /// count of shards as the sharded nodes: a node with a topic per key
    /// moves to shards once it follows that many keys, and then leaves
    /// the key topics only sharded peers are on.
    pub auto_shards: Vec<usize>,
    /// Each node's `reconcile_min_keys`: 0 reconciles by key ranges
    /// (spec §18) from the first key on, the default only past 1,024 keys,
    /// so never here. All one, all the other, or a mix.
    pub reconcile_min_keys: Vec<usize>,
    /// Each node's `settled_after`: zero (every record is settled at once,
    /// so a node reconciling by ranges republishes a record at one firing
    /// in `settled_republish_every` only) or the default. All one, all the
    /// other, or a mix.
    pub settled_after: Vec<Duration>,
}

/// Bounds of random scenarios.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Fewest and most nodes.
    pub nodes: (usize, usize),
    /// Most keys.
    pub keys: usize,
    /// Most steps on the timeline.
    pub steps: usize,
    /// How long the timeline lasts.
    pub span: Duration,
    /// Largest clock skew of a node, either way, in milliseconds.
    pub max_skew_ms: i64,
    /// Whether partitions, crashes and hostile injections happen.
    pub faults: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            nodes: (3, 10),
            keys: 3,
            steps: 24,
            span: Duration::from_secs(40),
            max_skew_ms: 6_000,
            faults: true,
        }
    }
}

impl Scenario {
    /// A random scenario of `shape`, drawn from `seed`.
    pub fn random(seed: u64, shape: &Shape) -> Scenario {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = rng.random_range(shape.nodes.0..=shape.nodes.1.max(shape.nodes.0));
        let signers = (0..n)
            .map(|_| SigningKey::from_bytes(&rng.random()))
            .collect();
        let unauthorized = if shape.faults && n > 3 {
            vec![n - 1]
        } else {
            Vec::new()
        };
        let skews_ms = (0..n)
            .map(|_| rng.random_range(-shape.max_skew_ms..=shape.max_skew_ms))
            .collect();
        let keys = (0..rng.random_range(1..=shape.keys.max(1)))
            .map(|k| format!("key/{k}"))
            .collect();
        let topology = *[
            Topology::Line,
            Topology::Ring,
            Topology::Star,
            Topology::Sparse,
            Topology::Sparse,
            Topology::Full,
        ]
        .choose(&mut rng)
        .unwrap_or(&Topology::Line);
        let links = links(topology, n, &mut rng);
        let mut scenario = Scenario {
            seed,
            signers,
            unauthorized,
            skews_ms,
            keys,
            topology,
            links,
            steps: Vec::new(),
            shards: Vec::new(),
            auto_shards: Vec::new(),
            reconcile_min_keys: Vec::new(),
            settled_after: Vec::new(),
        };
        scenario.steps = scenario.timeline(shape, &mut rng);
        scenario.shards = shard_counts(seed, n);
        scenario.auto_shards = auto_shards(seed, n);
        scenario.reconcile_min_keys = reconcile_min_keys(seed, n);
        scenario.settled_after = settled_after(seed, n);
        scenario
    }

    /// The scenario in a few lines: nodes, skews, links and the timeline.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "seed {}: {} nodes ({:?}), unauthorized {:?}, keys {:?}\nskews ms {:?}\nlinks {:?}\nshards {:?} auto after {:?}\nreconcile_min_keys {:?}\nsettled_after {:?}\n",
            self.seed,
            self.nodes(),
            self.topology,
            self.unauthorized,
            self.keys,
            self.skews_ms,
            self.links,
            self.shards,
            self.auto_shards,
            self.reconcile_min_keys,
            self.settled_after
        );
        for (at, step) in &self.steps {
            out.push_str(&format!("  {at:>12.3?}  {step:?}\n"));
        }
        out
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.signers.len()
    }

    /// When the last step happens.
    pub fn last_step(&self) -> Duration {
        self.steps.last().map_or(Duration::ZERO, |(at, _)| *at)
    }

    fn timeline(&self, shape: &Shape, rng: &mut SmallRng) -> Vec<(Duration, Step)> {
        let n = self.nodes();
        let start = Duration::from_secs(1);
        let count = rng.random_range(1..=shape.steps.max(1));
        let mut times: Vec<Duration> = (0..count)
            .map(|_| start + shape.span.mul_f64(rng.random::<f64>()))
            .collect();
        times.sort();
        let mut down = vec![false; n];
        let mut steps = Vec::new();
        for (i, at) in times.into_iter().enumerate() {
            let step = self.random_step(shape, rng, &mut down, i);
            steps.push((at, step));
        }
        // The end: heal everything, restart every crashed node.
        let end = start + shape.span + Duration::from_millis(1);
        steps.push((end, Step::HealAll));
        for (node, down) in down.iter().enumerate() {
            if *down {
                steps.push((end, Step::Restart { node }));
            }
        }
        steps
    }

    fn random_step(&self, shape: &Shape, rng: &mut SmallRng, down: &mut [bool], i: usize) -> Step {
        let n = self.nodes();
        let node = rng.random_range(0..n);
        let key = rng.random_range(0..self.keys.len());
        let roll = if shape.faults {
            rng.random_range(0..100)
        } else {
            rng.random_range(0..60)
        };
        match roll {
            0..=34 => Step::Put {
                node,
                key,
                value: format!("v{i}"),
            },
            35..=49 => Step::Delete { node, key },
            50..=59 => Step::Get { node, key },
            60..=66 => Step::Inject {
                node,
                key,
                forgery: if rng.random_bool(0.5) {
                    Forgery::Unauthorized
                } else {
                    Forgery::BadSignature
                },
            },
            67..=78 => Step::Partition {
                side: (0..n).map(|_| rng.random_bool(0.5)).collect(),
            },
            79..=86 => Step::HealAll,
            87..=93 if !down[node] => {
                down[node] = true;
                Step::Crash { node }
            }
            _ => match down.iter().position(|d| *d) {
                Some(node) => {
                    down[node] = false;
                    Step::Restart { node }
                }
                None => Step::HealAll,
            },
        }
    }
}

/// Shards per node, drawn from their own generator so that the rest of a
/// seed's schedule is what it was before shards existed. Two shards over at
/// most a handful of keys: keys share shards, and a node is on a shard for
/// keys it relays and keys it holds at once.
fn shard_counts(seed: u64, n: usize) -> Vec<u16> {
    const SHARDS: u16 = SIM_SHARDS;
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5348_4152_4453);
    match rng.random_range(0..3) {
        0 => vec![0; n],
        1 => vec![SHARDS; n],
        _ => (0..n)
            .map(|_| if rng.random_bool(0.5) { SHARDS } else { 0 })
            .collect(),
    }
}

/// Each node's `auto_topic_shards` threshold, from a generator of its own
/// (as [`shard_counts`]): none in two seeds of three, else each node off
/// or moving after its first or second key.
fn auto_shards(seed: u64, n: usize) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x4155_544f);
    match rng.random_range(0..3) {
        0 | 1 => vec![0; n],
        _ => (0..n).map(|_| rng.random_range(0..3)).collect(),
    }
}

/// The count of shards sharded nodes use, auto or not.
pub const SIM_SHARDS: u16 = 2;

/// Each node's `reconcile_min_keys`, from a generator of its own (as
/// [`shard_counts`]), so that the rest of a seed's schedule is unchanged.
fn reconcile_min_keys(seed: u64, n: usize) -> Vec<usize> {
    let default = crate::config::Config::default().reconcile_min_keys();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5241_4e47_4553);
    match rng.random_range(0..3) {
        0 => vec![0; n],
        1 => vec![default; n],
        _ => (0..n)
            .map(|_| if rng.random_bool(0.5) { 0 } else { default })
            .collect(),
    }
}

/// Each node's `settled_after`, from a generator of its own (as
/// [`shard_counts`]), so that the rest of a seed's schedule is unchanged.
fn settled_after(seed: u64, n: usize) -> Vec<Duration> {
    let default = crate::config::Config::default().settled_after();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5345_5454_4c45);
    match rng.random_range(0..3) {
        0 => vec![Duration::ZERO; n],
        1 => vec![default; n],
        _ => (0..n)
            .map(|_| {
                if rng.random_bool(0.5) {
                    Duration::ZERO
                } else {
                    default
                }
            })
            .collect(),
    }
}

/// The links of `topology` over `n` nodes.
pub fn links(topology: Topology, n: usize, rng: &mut SmallRng) -> Vec<(usize, usize)> {
    let mut links = Vec::new();
    match topology {
        Topology::Line => links.extend((1..n).map(|i| (i - 1, i))),
        Topology::Ring => {
            links.extend((1..n).map(|i| (i - 1, i)));
            if n > 2 {
                links.push((0, n - 1));
            }
        }
        Topology::Star => links.extend((1..n).map(|i| (0, i))),
        Topology::Full => {
            for a in 0..n {
                links.extend((a + 1..n).map(|b| (a, b)));
            }
        }
        Topology::Sparse => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            for i in 1..n {
                let parent = order[rng.random_range(0..i)];
                links.push((parent.min(order[i]), parent.max(order[i])));
            }
            for _ in 0..n / 3 {
                let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
                if a != b && !links.contains(&(a.min(b), a.max(b))) {
                    links.push((a.min(b), a.max(b)));
                }
            }
        }
    }
    links
}

//! Runs a [`Scenario`] on a [`Network`] and checks convergence: after the
//! last write and the last heal, within the bound, every node holds, for
//! every key, the newest record written (none if none was), and nothing
//! invalid is stored anywhere.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use super::network::{NetParams, Network, NodeSetup, Traffic};
use super::scenario::{Forgery, Scenario, Step};
use crate::config::Config;
use crate::coordinator::replica::WriteError;
use crate::core::accept::RejectReason;
use crate::core::order::precedence;
use crate::core::record::{Op, Record};
use crate::core::validator::{AllowList, Validator};
use crate::store::RecordStore;

/// How the nodes are configured and how long convergence may take.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every node's republish interval.
    pub republish_interval: Duration,
    /// Every node's allowed clock skew.
    pub max_clock_skew: Duration,
    /// How long after the last step every node must agree.
    pub bound: Duration,
    /// How often agreement is checked after the last step.
    pub check_every: Duration,
    /// The model network.
    pub net: NetParams,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            republish_interval: Duration::from_secs(10),
            max_clock_skew: Duration::from_secs(10),
            bound: Duration::from_secs(30),
            check_every: Duration::from_millis(250),
            net: NetParams::default(),
        }
    }
}

/// A run that converged.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's seed.
    pub seed: u64,
    /// From the last step until every node agreed for good.
    pub converged_after: Duration,
    /// What crossed the network.
    pub traffic: Traffic,
}

/// A run that did not converge, or stored something invalid.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The scenario's seed: replay it with [`run`] on
    /// [`Scenario::random`]`(seed, …)`.
    pub seed: u64,
    /// What went wrong, with the nodes' state.
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {}: {}", self.seed, self.reason)
    }
}

/// Runs `scenario` under `settings` and checks it.
pub fn run(scenario: &Scenario, settings: &Settings) -> Result<Report, Failure> {
    run_traced(scenario, settings, false)
}

/// [`run`], printing every input and output of every node when `trace`.
pub fn run_traced(
    scenario: &Scenario,
    settings: &Settings,
    trace: bool,
) -> Result<Report, Failure> {
    let fail = |reason: String| Failure {
        seed: scenario.seed,
        reason,
    };
    let allowed: Vec<PeerId> = allowed_peers(scenario);
    let config =
        node_config(settings, &allowed, scenario).map_err(|e| fail(format!("settings: {e}")))?;
    let mut net = build(scenario, settings, config, trace);
    let mut written: Vec<Record> = Vec::new();
    for (at, step) in &scenario.steps {
        net.run_until(*at);
        apply(&mut net, scenario, step, &mut written).map_err(fail)?;
    }
    let last = scenario.last_step();
    let deadline = last + settings.bound;
    let mut last_disagreement = Some(last);
    let mut at = last;
    while at < deadline {
        at += settings.check_every;
        net.run_until(at);
        if disagreement(&net, scenario, &written).is_some() {
            last_disagreement = Some(at);
        }
    }
    if let Some(reason) = disagreement(&net, scenario, &written) {
        return Err(fail(format!(
            "not converged {:?} after the last step ({:?}, {:?} topology {:?}): {reason}",
            settings.bound,
            scenario.topology,
            scenario.nodes(),
            scenario.links
        )));
    }
    if let Some(reason) = invalid_record(&net, &allowed) {
        return Err(fail(reason));
    }
    let converged_after = last_disagreement.map_or(Duration::ZERO, |t| t.saturating_sub(last));
    Ok(Report {
        seed: scenario.seed,
        converged_after,
        traffic: net.traffic(),
    })
}

fn allowed_peers(scenario: &Scenario) -> Vec<PeerId> {
    let net_peer = |s: &SigningKey| crate::core::record::Author::from(s).peer_id();
    (0..scenario.nodes())
        .filter(|i| !scenario.unauthorized.contains(i))
        .filter_map(|i| net_peer(&scenario.signers[i]))
        .collect()
}

/// What every node runs with; settings that make no valid `Config` fail
/// the run rather than a node.
fn node_config(
    settings: &Settings,
    allowed: &[PeerId],
    scenario: &Scenario,
) -> Result<impl Fn(usize) -> NodeSetup + 'static, crate::config::ConfigError> {
    let (republish, skew) = (settings.republish_interval, settings.max_clock_skew);
    let allowed = allowed.to_vec();
    let (shards, nodes) = (scenario.shards.clone(), scenario.shards.len());
    let auto = scenario.auto_shards.clone();
    let by_ranges = scenario.reconcile_min_keys.clone();
    let settled = scenario.settled_after.clone();
    let make = move |i: usize| {
        Config::builder()
            .republish_interval(republish)
            .max_clock_skew(skew)
            .topic_shards(shards.get(i).copied().unwrap_or(0))
            .auto_topic_shards(
                auto.get(i).copied().unwrap_or(0),
                super::scenario::SIM_SHARDS,
            )
            .reconcile_min_keys(by_ranges.get(i).copied().unwrap_or(0))
            .settled_after(settled.get(i).copied().unwrap_or_default())
            .build()
    };
    for i in 0..nodes.max(1) {
        make(i)?;
    }
    // The same settings again, so the same (valid) result.
    Ok(move |i| {
        let validator: Box<dyn Validator> = Box::new(AllowList::new(allowed.clone()));
        (make(i).unwrap_or_default(), validator)
    })
}

fn build(
    scenario: &Scenario,
    settings: &Settings,
    config: impl Fn(usize) -> NodeSetup + 'static,
    trace: bool,
) -> Network {
    let mut net = Network::new(
        scenario.seed,
        scenario.signers.clone(),
        &scenario.skews_ms,
        settings.net.clone(),
        config,
    );
    net.set_trace(trace);
    for &(a, b) in &scenario.links {
        net.link(a, b);
    }
    for i in 0..scenario.nodes() {
        for key in &scenario.keys {
            net.command(i, |c, _| c.subscribe(key));
        }
    }
    net
}

fn apply(
    net: &mut Network,
    scenario: &Scenario,
    step: &Step,
    written: &mut Vec<Record>,
) -> Result<(), String> {
    match step {
        Step::Put { node, key, value } => {
            let key = &scenario.keys[*key];
            let result = net.command(*node, |c, now| c.put(key, value, now));
            record_write(scenario, *node, result, written)?;
        }
        Step::Delete { node, key } => {
            let key = &scenario.keys[*key];
            let result = net.command(*node, |c, now| c.delete(key, now));
            record_write(scenario, *node, result, written)?;
        }
        Step::Get { node, key } => {
            net.command(*node, |c, now| c.get(&scenario.keys[*key], now));
        }
        Step::Inject { node, key, forgery } => {
            let forged = forge(net, scenario, *node, &scenario.keys[*key], *forgery);
            net.inject(*node, &forged);
        }
        Step::Partition { side } => {
            for &(a, b) in &scenario.links {
                if side[a] != side[b] {
                    net.cut(a, b);
                }
            }
        }
        Step::HealAll => {
            for &(a, b) in &scenario.links {
                net.link(a, b);
            }
        }
        Step::Crash { node } => net.crash(*node),
        Step::Restart { node } => {
            net.restart(*node);
            // Subscriptions are the application's, not the store's: it
            // follows its keys again when it starts.
            for key in &scenario.keys {
                net.command(*node, |c, _| c.subscribe(key));
            }
            for &(a, b) in &scenario.links {
                if a == *node || b == *node {
                    net.link(a, b);
                }
            }
        }
    }
    Ok(())
}

/// Keeps a local write that succeeded; an unauthorized node's must fail.
fn record_write(
    scenario: &Scenario,
    node: usize,
    result: Option<Result<Record, WriteError>>,
    written: &mut Vec<Record>,
) -> Result<(), String> {
    let unauthorized = scenario.unauthorized.contains(&node);
    match result {
        None => Ok(()),
        Some(Ok(record)) if unauthorized => {
            Err(format!("unauthorized node {node} wrote {record:?}"))
        }
        Some(Ok(record)) => {
            written.push(record);
            Ok(())
        }
        Some(Err(WriteError::Invalid(RejectReason::Unauthorized))) if unauthorized => Ok(()),
        Some(Err(e)) => Err(format!("node {node}: local write failed: {e}")),
    }
}

/// A record that would win over everything written so far, if accepted.
fn forge(net: &Network, scenario: &Scenario, node: usize, key: &str, forgery: Forgery) -> Record {
    let time = net.clock_ms(node) + 1;
    match forgery {
        Forgery::Unauthorized => {
            let signer = match scenario.unauthorized.first() {
                Some(&i) => scenario.signers[i].clone(),
                None => SigningKey::from_bytes(&[0xee; 32]),
            };
            Record::sign(key, Op::Mut, "forged", time, &signer)
        }
        Forgery::BadSignature => {
            let honest = Record::sign(key, Op::Mut, "honest", time, net.signer(0));
            Record::from_parts(
                key.to_owned(),
                Op::Mut,
                "tampered".to_owned(),
                time,
                *honest.author(),
                *honest.signature(),
            )
        }
    }
}

/// The newest record written for `key`, if any.
fn newest<'a>(written: &'a [Record], key: &str) -> Option<&'a Record> {
    written
        .iter()
        .filter(|r| r.key() == key)
        .max_by(|a, b| precedence(a, b))
}

/// Why the nodes do not (yet) agree, or `None` if they do.
fn disagreement(net: &Network, scenario: &Scenario, written: &[Record]) -> Option<String> {
    for key in &scenario.keys {
        let expected = newest(written, key);
        for i in 0..net.len() {
            let Some(node) = net.node(i) else {
                return Some(format!("node {i} is down"));
            };
            let held = node.record(key);
            let agrees = match (held.as_deref(), expected) {
                (None, None) => true,
                (Some(h), Some(e)) => precedence(h, e) == Ordering::Equal && h == e,
                _ => false,
            };
            if !agrees {
                return Some(format!(
                    "{key}: node {i} holds {:?}, newest written is {:?}; following: {}",
                    held.as_deref().map(describe),
                    expected.map(describe),
                    node.is_subscribed(key)
                ));
            }
        }
    }
    None
}

fn describe(r: &Record) -> String {
    format!("{:?} {:?} @{}", r.op(), r.value(), r.time())
}

/// A stored record that a node should have refused, if any.
fn invalid_record(net: &Network, allowed: &[PeerId]) -> Option<String> {
    let validator = AllowList::new(allowed.iter().copied());
    for i in 0..net.len() {
        let Some(node) = net.node(i) else { continue };
        for record in node.store().records() {
            // Afresh: the outcome a record remembers was set by the code
            // under test.
            if !record.verify_afresh() || !validator.may_write(record.key(), record.author()) {
                return Some(format!("node {i} stores an invalid record {record:?}"));
            }
        }
    }
    None
}

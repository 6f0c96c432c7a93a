//! Command-line arguments.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use pointer::{AllowList, Config, ConfigError, Open, OwnedKeys, Validator};

/// Listen addresses when none are given: every IPv4 interface, a free TCP
/// port and a free QUIC port (the node prints the ones it got).
pub const DEFAULT_LISTEN: [&str; 2] = ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"];

/// A pointer node: a key-value store shared by every node it reaches.
///
/// Reads commands on standard input, one a line (type `help`), and prints
/// answers and network events on standard output.
#[derive(Debug, Parser)]
#[command(name = "node", version)]
pub struct Args {
    /// Address to listen on (repeatable). Default: /ip4/0.0.0.0/tcp/0 and
    /// /ip4/0.0.0.0/udp/0/quic-v1, also added when every address given is
    /// a relay's (ending in /p2p-circuit): a node behind a NAT needs ports
    /// of its own to punch a direct connection.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,

    /// Peer to connect to at start (repeatable), e.g. an address another
    /// node printed: /ip4/192.168.1.20/tcp/40123/p2p/12D3KooW...
    #[arg(long, value_name = "MULTIADDR")]
    pub dial: Vec<Multiaddr>,

    /// Keep the node's identity (DIR/identity.key) and its records
    /// (DIR/records.redb) in DIR, created on first start. Without it the
    /// node has a fresh identity and keeps records in memory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Who may write which key: `owned` (a key "<PeerId>/<name>" only by
    /// that peer), `open` (anyone, any key) or `allow:<peer-id>,...`
    /// (these peers, any key).
    #[arg(long, value_name = "POLICY", default_value = "owned")]
    pub validator: ValidatorArg,

    /// Do not discover peers on the local network with mDNS.
    #[arg(long)]
    pub no_mdns: bool,

    /// A DHT node to join through (repeatable), with its peer id:
    /// /dns4/boot.example.org/tcp/4001/p2p/12D3KooW... Names are resolved
    /// (/dns, /dns4, /dns6).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,

    /// Do not run the Kademlia DHT: followers of a key are then found only
    /// among connected peers.
    #[arg(long)]
    pub no_dht: bool,

    /// Serve as a circuit relay (libp2p circuit relay v2), so that nodes
    /// behind NATs reach each other through this one. A relay serves only
    /// with a known public address: give it with --external-address, or
    /// the addresses the node listens on are announced as its own.
    #[arg(long)]
    pub relay_server: bool,

    /// An address others can reach this node at (repeatable), announced
    /// to peers and in DHT records, e.g. /ip4/203.0.113.7/tcp/4001.
    #[arg(long, value_name = "MULTIADDR")]
    pub external_address: Vec<Multiaddr>,

    /// Most records (values and tombstones) the store keeps.
    #[arg(long, value_name = "N", default_value_t = pointer::store::DEFAULT_MAX_RECORDS)]
    pub max_records: usize,

    /// Largest value accepted, in bytes (the wire limit follows).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_VALUE_BYTES)]
    pub max_value_bytes: usize,

    /// Spread keys over N shard topics instead of a topic per key (0, the
    /// default, keeps a topic per key). Following many keys, a node then
    /// joins at most N topics, and its hello to a new peer stays small.
    /// Every node of a network should use the same N.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub topic_shards: u16,

    /// With a topic per key (--topic-shards 0), move to 256 shard topics
    /// once the node follows N keys, keeping the key topics of peers that
    /// do not shard. 0: never.
    #[arg(long, value_name = "N", default_value_t = 8_192)]
    pub auto_shards_after: usize,

    /// Serve metrics (Pointer's and libp2p's, for Prometheus) over HTTP at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9464; port 0 picks a free one,
    /// printed at start.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Most connections open at once, in total.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: u32,

    /// Most connections to one peer at once (a direct and a relayed one
    /// may stand side by side while hole punching).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_connections_per_peer: u32,

    /// Most inbound connections from one IP address at once, whatever
    /// identities they present.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_connections_per_ip: usize,

    /// Most new inbound connections from one IP address in any 10 s
    /// (refused before their handshake): a host that reconnects in a loop
    /// makes the node set up each connection again.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_new_connections_per_ip: u32,

    /// Most inbound connections still in their handshake at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_pending_connections: u32,

    /// Refuse new connections once the process uses this percentage of
    /// the machine's memory.
    #[arg(long, value_name = "PERCENT", default_value_t = 90.0)]
    pub max_memory_percent: f64,

    /// Longest wait, in seconds, between tries to reconnect a lost peer
    /// given with --dial, --bootstrap or `dial`, or to listen again through
    /// a relay (the wait starts at 1 s and doubles up to this). Each try is
    /// one dial; short waits join a healed network up again within seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub redial_max_secs: u64,

    /// Seconds before opening another relayed connection to a peer this
    /// node dialed through a relay and reaches no other way, so that DCUtR
    /// tries to punch a direct connection again; the wait doubles up to 16
    /// times this. 0: never.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub punch_retry_secs: u64,

    /// Print one JSON object per line instead of readable text.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The listen addresses asked for, or the defaults.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        let relayed = |a: &Multiaddr| a.iter().any(|p| p == Protocol::P2pCircuit);
        let mut addrs = self.listen.clone();
        if addrs.iter().all(relayed) {
            let defaults = DEFAULT_LISTEN
                .iter()
                .map(|a| a.parse().expect("default listen addresses are valid"));
            addrs.splice(0..0, defaults);
        }
        addrs
    }
}

impl Args {
    /// The connection bounds the flags give.
    pub fn limits(&self) -> crate::limits::Limits {
        crate::limits::Limits {
            total: self.max_connections,
            per_peer: self.max_connections_per_peer,
            pending: self.max_pending_connections,
            per_ip: self.max_connections_per_ip,
            new_per_ip: self.max_new_connections_per_ip,
            max_memory_fraction: self.max_memory_percent / 100.0,
        }
    }
}

/// `--max-value-bytes` when not given: the library's default.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 60 * 1024;

/// The shard count `--auto-shards-after` moves to: the library's default,
/// so that nodes that move agree.
const AUTO_SHARDS: u16 = 256;

impl Args {
    /// The node's `pointer::Config`: the limits.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let overhead = pointer::OPERATE_OVERHEAD + 2 * 1024;
        let message = self.max_value_bytes.saturating_add(overhead).max(64 * 1024);
        Config::builder()
            .max_value_bytes(self.max_value_bytes)
            .max_message_bytes(message)
            .topic_shards(self.topic_shards)
            .auto_topic_shards(self.auto_shards_after, AUTO_SHARDS)
            .build()
    }
}

/// The `--validator` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatorArg {
    Owned,
    Open,
    Allow(Vec<PeerId>),
}

impl ValidatorArg {
    /// The validator of this policy.
    pub fn validator(&self) -> Box<dyn Validator> {
        match self {
            ValidatorArg::Owned => Box::new(OwnedKeys),
            ValidatorArg::Open => Box::new(Open),
            ValidatorArg::Allow(peers) => Box::new(AllowList::new(peers.clone())),
        }
    }
}

impl FromStr for ValidatorArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owned" => Ok(ValidatorArg::Owned),
            "open" => Ok(ValidatorArg::Open),
            _ => {
                let list = s
                    .strip_prefix("allow:")
                    .ok_or("expected owned, open or allow:<peer-id>,...")?;
                let peers = list
                    .split(',')
                    .map(|p| p.trim().parse().map_err(|e| format!("{p:?}: {e}")))
                    .collect::<Result<Vec<PeerId>, _>>()?;
                Ok(ValidatorArg::Allow(peers))
            }
        }
    }
}

impl fmt::Display for ValidatorArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidatorArg::Owned => f.write_str("owned"),
            ValidatorArg::Open => f.write_str("open"),
            ValidatorArg::Allow(peers) => {
                let peers: Vec<String> = peers.iter().map(PeerId::to_string).collect();
                write!(f, "allow:{}", peers.join(","))
            }
        }
    }
}

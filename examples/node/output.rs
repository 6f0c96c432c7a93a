//! Everything the node prints on standard output: one `Line` per answer or
//! event, as readable text or (with `--json`) as one JSON object whose
//! `"event"` field names the variant. The README documents this schema;
//! change both together.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io::Write;

use libp2p::{Multiaddr, PeerId};
use pointer::{Author, GetOutcome, Record, Source};
use serde::Serialize;

/// One answer or event.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Line {
    Started {
        peer_id: String,
        validator: String,
        /// The data directory, or `null` for a fresh identity and memory.
        data_dir: Option<String>,
        /// Records (tombstones included) found in the store at start.
        records: usize,
        mdns: bool,
        /// Shard topics keys are spread over; 0 for a topic per key.
        topic_shards: u16,
    },
    Listening {
        address: String,
    },
    /// `--metrics`: where the metrics are served.
    Metrics {
        /// The socket address bound, `IP:PORT`.
        address: String,
        /// `http://IP:PORT/metrics`.
        url: String,
    },
    ListenExpired {
        address: String,
    },
    Discovered {
        peer_id: String,
        address: String,
    },
    Connected {
        peer_id: String,
        address: String,
    },
    Disconnected {
        peer_id: String,
    },
    Dialing {
        address: String,
    },
    Put {
        key: String,
        value: String,
        time: i64,
        /// The name given, when the node made it into an owned key.
        owned_name: Option<String>,
    },
    Del {
        key: String,
        time: i64,
    },
    Updated(RecordLine),
    Deleted(RecordLine),
    Get {
        key: String,
        /// `found`, `not_found` or `timed_out`.
        status: &'static str,
        value: Option<String>,
        author: Option<String>,
        time: Option<i64>,
    },
    Sub {
        key: String,
        /// `false`: the key was followed already.
        new: bool,
    },
    Unsub {
        key: String,
        /// `false`: the key was not followed.
        was_following: bool,
    },
    /// Several keys followed at once: how many, and how many were new.
    SubMany {
        keys: usize,
        new: usize,
    },
    /// Several keys unfollowed at once.
    UnsubMany {
        keys: usize,
        were_following: usize,
    },
    List {
        records: Vec<RecordLine>,
    },
    Peers {
        peers: Vec<PeerLine>,
    },
    Id {
        peer_id: String,
        validator: String,
    },
    Addrs {
        addresses: Vec<String>,
    },
    Help {
        commands: Vec<HelpLine>,
    },
    Rejected {
        peer_id: String,
        key: String,
        reason: String,
    },
    PublishFailed {
        key: String,
        reason: String,
    },
    Error {
        /// The command word this answers, or `null` for a network error.
        command: Option<String>,
        message: String,
    },
    Bye,
}

/// A record, as in `updated`, `deleted` and `list`.
#[derive(Debug, Serialize)]
pub struct RecordLine {
    pub key: String,
    /// `null` for a deleted key (a tombstone).
    pub value: Option<String>,
    pub author: String,
    pub time: i64,
    /// `gossip` or `fetch` in `updated` and `deleted` (local writes are
    /// answered by `put` and `del`), `store` in `list`.
    pub source: &'static str,
    /// The peer that sent it (gossip, fetch); `null` otherwise.
    pub from: Option<String>,
    /// Whether this node follows the key (`list` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub following: Option<bool>,
}

impl RecordLine {
    pub fn new(record: &Record, source: Source) -> Self {
        let (source, from) = match source {
            Source::Local => ("local", None),
            Source::Gossip { peer } => ("gossip", Some(peer_text(peer))),
            Source::Fetch { peer } => ("fetch", Some(peer_text(peer))),
        };
        RecordLine {
            key: record.key().to_owned(),
            value: (!record.is_tombstone()).then(|| record.value().to_owned()),
            author: author(record),
            time: record.time(),
            source,
            from,
            following: None,
        }
    }

    /// A stored record for `list`.
    pub fn stored(record: &Record, following: bool) -> Self {
        RecordLine {
            source: "store",
            following: Some(following),
            ..RecordLine::new(record, Source::Local)
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PeerLine {
    pub peer_id: String,
    /// The remote address of the oldest connection.
    pub address: String,
    /// The remote address of every connection, oldest first.
    pub connections: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HelpLine {
    pub usage: &'static str,
    pub description: &'static str,
}

impl Line {
    pub fn get(key: String, outcome: GetOutcome) -> Self {
        let (status, record) = match outcome {
            GetOutcome::Found(record) => ("found", Some(record)),
            GetOutcome::NotFound => ("not_found", None),
            GetOutcome::TimedOut => ("timed_out", None),
        };
        Line::Get {
            key,
            status,
            value: record.as_ref().map(|r| r.value().to_owned()),
            author: record.as_ref().map(author),
            time: record.as_ref().map(Record::time),
        }
    }

    /// The answer to a command that failed.
    pub fn error(command: &str, message: impl fmt::Display) -> Self {
        Line::Error {
            command: Some(command.to_owned()),
            message: message.to_string(),
        }
    }

    /// A failure that answers no command (a dial, the store, a listener).
    pub fn network_error(message: impl fmt::Display) -> Self {
        Line::Error {
            command: None,
            message: message.to_string(),
        }
    }
}

/// `addr/p2p/peer`: an address another node can `--dial` as printed.
pub fn dialable(addr: &Multiaddr, peer: PeerId) -> String {
    addr.clone()
        .with_p2p(peer)
        .unwrap_or_else(|a| a)
        .to_string()
}

/// Most names [`NAMES`] remembers before it starts again.
const NAMES_KEPT: usize = 4096;

thread_local! {
    /// The text of the peers and authors printed lately. Every `updated`
    /// line names two, nearly always the same few, and encoding them anew
    /// in base58 was about a tenth of the node's CPU while it caught up a
    /// few hundred thousand records.
    static NAMES: RefCell<(HashMap<PeerId, String>, HashMap<Author, String>)> =
        RefCell::default();
}

fn peer_text(peer: PeerId) -> String {
    NAMES.with_borrow_mut(|(peers, _)| {
        if peers.len() >= NAMES_KEPT {
            peers.clear();
        }
        peers
            .entry(peer)
            .or_insert_with(|| peer.to_string())
            .clone()
    })
}

fn author(record: &Record) -> String {
    let key = *record.author();
    NAMES.with_borrow_mut(|(_, authors)| {
        if authors.len() >= NAMES_KEPT {
            authors.clear();
        }
        authors
            .entry(key)
            .or_insert_with(|| match key.peer_id() {
                Some(peer) => peer.to_string(),
                None => format!("{key:?}"),
            })
            .clone()
    })
}

/// Writes lines to standard output in the chosen format.
pub struct Printer {
    pub json: bool,
}

impl Printer {
    /// Prints one line. A closed standard output is ignored: the node goes
    /// on serving its peers.
    pub fn print(&self, line: &Line) {
        let text = if self.json {
            serde_json::to_string(line).expect("lines serialize")
        } else {
            line.to_string()
        };
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }
}

/// The readable form. Values are quoted, so spaces and empty strings show.
impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Started {
                peer_id,
                validator,
                data_dir,
                records,
                mdns,
                topic_shards,
            } => {
                let store = match data_dir {
                    Some(dir) => format!("{records} records in {dir}"),
                    None => "records in memory".to_owned(),
                };
                let mdns = if *mdns { "on" } else { "off" };
                let topics = match topic_shards {
                    0 => "a topic per key".to_owned(),
                    n => format!("{n} shard topics"),
                };
                write!(f, "node {peer_id}\n  validator {validator}, {store}, mDNS {mdns}, {topics}; type help for commands")
            }
            Line::Listening { address } => write!(f, "listening on {address}"),
            Line::Metrics { url, .. } => write!(f, "metrics on {url}"),
            Line::ListenExpired { address } => write!(f, "no longer listening on {address}"),
            Line::Discovered { peer_id, address } => {
                write!(f, "discovered {peer_id} at {address} (mDNS)")
            }
            Line::Connected { peer_id, address } => {
                write!(f, "connected to {peer_id} at {address}")
            }
            Line::Disconnected { peer_id } => write!(f, "disconnected from {peer_id}"),
            Line::Dialing { address } => write!(f, "dialing {address}"),
            Line::Put {
                key,
                value,
                owned_name,
                ..
            } => {
                write!(f, "put {} = {value:?}", Shown(key))?;
                match owned_name {
                    Some(name) => write!(f, " (your owned key for {name:?})"),
                    None => Ok(()),
                }
            }
            Line::Del { key, .. } => write!(f, "deleted {}", Shown(key)),
            Line::Updated(r) => {
                let key = Shown(&r.key);
                write!(f, "updated {key} = {:?}{}", value(r), via(r))
            }
            Line::Deleted(r) => write!(f, "deleted {}{}", Shown(&r.key), via(r)),
            Line::Get {
                key, status, value, ..
            } => {
                let key = Shown(key);
                match value {
                    Some(value) => write!(f, "{key} = {value:?}"),
                    None if *status == "timed_out" => {
                        write!(f, "{key}: no peer answered in time")
                    }
                    None => write!(f, "{key}: not found"),
                }
            }
            Line::Sub { key, new: true } => write!(f, "following {}", Shown(key)),
            Line::Sub { key, new: false } => write!(f, "already following {}", Shown(key)),
            Line::Unsub { key, was_following } => match was_following {
                true => write!(f, "stopped following {}", Shown(key)),
                false => write!(f, "was not following {}", Shown(key)),
            },
            Line::SubMany { keys, new } => {
                write!(f, "following {keys} keys ({new} new)")
            }
            Line::UnsubMany {
                keys,
                were_following,
            } => write!(f, "stopped following {were_following} of {keys} keys"),
            Line::List { records } => list(f, records),
            Line::Peers { peers } => {
                write!(f, "connected peers: {}", peers.len())?;
                peers.iter().try_for_each(|p| {
                    write!(f, "\n  {} at {}", p.peer_id, p.connections.join(", "))
                })
            }
            Line::Id { peer_id, validator } => write!(f, "{peer_id} (validator {validator})"),
            Line::Addrs { addresses } => {
                write!(f, "listening on:")?;
                addresses.iter().try_for_each(|a| write!(f, "\n  {a}"))
            }
            Line::Help { commands } => {
                write!(f, "commands:")?;
                commands
                    .iter()
                    .try_for_each(|c| write!(f, "\n  {:<18} {}", c.usage, c.description))
            }
            Line::Rejected {
                peer_id,
                key,
                reason,
            } => {
                let key = Shown(key);
                write!(f, "rejected a record for {key} from {peer_id}: {reason}")
            }
            Line::PublishFailed { key, reason } => {
                let key = Shown(key);
                write!(
                    f,
                    "note: {key} not published: {reason}; peers that ask get it"
                )
            }
            Line::Error { message, .. } => write!(f, "error: {message}"),
            Line::Bye => write!(f, "bye"),
        }
    }
}

fn list(f: &mut fmt::Formatter<'_>, records: &[RecordLine]) -> fmt::Result {
    write!(f, "records: {}", records.len())?;
    for r in records {
        match &r.value {
            Some(value) => write!(f, "\n  {} = {value:?}", Shown(&r.key))?,
            None => write!(f, "\n  {} (deleted)", Shown(&r.key))?,
        }
        if r.following == Some(true) {
            write!(f, " [following]")?;
        }
    }
    Ok(())
}

/// A key as the readable output shows it: as it is when every character
/// prints and none is a space, quoted and escaped otherwise. Keys come
/// from remote peers; printed raw, one holding a newline or a terminal
/// escape could fake lines of output or drive the user's terminal.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.0.is_empty()
            && !self.0.starts_with('"')
            && self
                .0
                .chars()
                .all(|c| !c.is_control() && !c.is_whitespace());
        match plain {
            true => f.write_str(self.0),
            false => write!(f, "{:?}", self.0),
        }
    }
}

fn value(r: &RecordLine) -> &str {
    r.value.as_deref().unwrap_or_default()
}

fn via(r: &RecordLine) -> String {
    match (r.source, &r.from) {
        ("gossip", Some(peer)) => format!(" (gossip from {peer})"),
        ("fetch", Some(peer)) => format!(" (fetched from {peer})"),
        _ => String::new(),
    }
}

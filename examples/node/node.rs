//! The running node and what each command does. Commands answer at once,
//! except `get`, whose answer comes as an event when the peers asked have
//! answered (see `events.rs`).

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::time::Duration;

use futures::channel::mpsc::Receiver;
use futures::{FutureExt, StreamExt};
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Swarm};
use pointer::discovery::Kad;
use pointer::{OwnedKeys, RecordStore, WriteError};

use crate::cli::ValidatorArg;
use crate::command::{self, Command, HELP};
use crate::follows::Follows;
use crate::input::Input;
use crate::net::Behaviour;
use crate::output::{dialable, HelpLine, Line, PeerLine, Printer, RecordLine};
use crate::punch::Punch;
use crate::redial::Redial;
use crate::relay_quic::RelayQuic;
use crate::relisten::Relisten;
use crate::Error;

/// How long `quit` waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Longest wait at start for the node's own listeners to have an address
/// before it dials anyone (see [`Node::await_listen_addrs`]).
const LISTEN_ADDRS_WAIT: Duration = Duration::from_secs(2);

/// Most swarm events handled after each input line before the next line is
/// read (see `Node::handle_ready_events`).
const EVENTS_PER_LINE: usize = 64;

pub struct Node<S: RecordStore + 'static> {
    pub(crate) swarm: Swarm<Behaviour<S>>,
    printer: Printer,
    validator: ValidatorArg,
    /// Connected peers and the remote address of each of their
    /// connections, in the order they opened (a relayed one and the
    /// direct one hole punching made stand side by side for a while).
    pub(crate) peers: BTreeMap<PeerId, Vec<(ConnectionId, Multiaddr)>>,
    /// Dials the user asked for: their failures are reported, while those
    /// of mDNS dials (often to unreachable interfaces) are only logged.
    pub(crate) user_dials: HashSet<ConnectionId>,
    /// Announce each address the node listens on as reachable (a relay
    /// server given no `--external-address`).
    pub(crate) listen_is_external: bool,
    /// libp2p-metrics' recorder, with `--metrics` (see `metrics.rs`).
    pub(crate) swarm_metrics: Option<libp2p::metrics::Metrics>,
    /// With `--data-dir`: the journal of followed keys.
    follows: Option<Follows>,
    /// Addresses dialed on the user's word, dialed again when lost.
    pub(crate) redial: Redial,
    pub(crate) relisten: Relisten,
    pub(crate) punch: Punch,
    pub(crate) relay_quic: RelayQuic,
    /// Listeners opened at start that have no address yet.
    pub(crate) unaddressed: HashSet<ListenerId>,
}

impl<S: RecordStore + 'static> Node<S> {
    pub fn new(swarm: Swarm<Behaviour<S>>, printer: Printer, validator: ValidatorArg) -> Self {
        Node {
            swarm,
            printer,
            validator,
            peers: BTreeMap::new(),
            user_dials: HashSet::new(),
            listen_is_external: false,
            swarm_metrics: None,
            follows: None,
            redial: Redial::default(),
            relisten: Relisten::default(),
            punch: Punch::default(),
            relay_quic: RelayQuic::default(),
            unaddressed: HashSet::new(),
        }
    }

    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    pub fn pointer(&self) -> &pointer::Behaviour<S, Toggle<Kad>> {
        &self.swarm.behaviour().pointer
    }

    fn pointer_mut(&mut self) -> &mut pointer::Behaviour<S, Toggle<Kad>> {
        &mut self.swarm.behaviour_mut().pointer
    }

    /// The DHT, unless `--no-dht`.
    pub(crate) fn kad(
        &mut self,
    ) -> Option<&mut libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>> {
        self.pointer_mut()
            .discovery_mut()
            .as_mut()
            .map(Kad::behaviour_mut)
    }

    /// Joins the DHT through `addr`, which must end in `/p2p/<peer id>`:
    /// the peer goes into the routing table, is dialed, and a bootstrap
    /// fills the table from it.
    pub fn bootstrap(&mut self, addr: Multiaddr) -> Result<(), Error> {
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(
                format!("--bootstrap {addr}: the address must end in /p2p/<peer id>").into(),
            );
        };
        let Some(kad) = self.kad() else {
            return Err("--bootstrap needs the DHT (drop --no-dht)".into());
        };
        kad.add_address(&peer, addr.clone());
        if let Err(e) = kad.bootstrap() {
            tracing::debug!("bootstrap not started: {e}");
        }
        self.dial(addr, "--bootstrap");
        Ok(())
    }

    pub fn mdns_enabled(&self) -> bool {
        self.swarm.behaviour().mdns.is_enabled()
    }

    pub fn print(&self, line: &Line) {
        self.printer.print(line);
    }

    /// Listens on `addr`; a relay address is kept (see [`Relisten`]).
    pub fn listen(&mut self, addr: Multiaddr) -> Result<(), Error> {
        let id = self
            .swarm
            .listen_on(addr.clone())
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        if addr.iter().any(|p| p == Protocol::P2pCircuit) {
            self.relay_quic.note(&addr);
            self.relisten.listening(&addr, id);
        } else {
            self.unaddressed.insert(id);
        }
        Ok(())
    }

    /// Handles swarm events until every listener opened so far on a port
    /// of the node's own has an address, or `LISTEN_ADDRS_WAIT` passed.
    /// Until then TCP does not dial from the listen port (a listener on
    /// 0.0.0.0 registers its port for reuse only when its interfaces are
    /// reported), and identify has no listen port to translate an
    /// ephemeral one to: a relay dialed first observes the ephemeral
    /// port, and that port, which no later dial uses, is the only TCP
    /// address DCUtR gives for hole punching. Behind a NAT both sides'
    /// SYNs are then dropped and no direct connection ever forms.
    pub async fn await_listen_addrs(&mut self) {
        let deadline = tokio::time::Instant::now() + LISTEN_ADDRS_WAIT;
        while !self.unaddressed.is_empty() {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(event) => self.on_swarm_event(event),
                Err(_) => {
                    tracing::warn!(
                        listeners = self.unaddressed.len(),
                        "listeners without an address after {LISTEN_ADDRS_WAIT:?}; dialing anyway"
                    );
                    self.unaddressed.clear();
                }
            }
        }
    }

    /// Listens again through a relay whose listener closed.
    fn listen_again(&mut self, addr: Multiaddr) {
        match self.swarm.listen_on(addr.clone()) {
            Ok(id) => {
                tracing::debug!(%addr, "listening again");
                self.relisten.listening(&addr, id);
            }
            Err(e) => {
                tracing::debug!(%addr, "cannot listen again: {e}");
                self.relisten.refused(&addr, std::time::Instant::now());
            }
        }
    }

    /// Dials `addr`; the outcome comes as `connected` or an `error` line.
    /// `command` names what asked for it, for that error line.
    pub fn dial(&mut self, addr: Multiaddr, command: &str) {
        self.relay_quic.note(&addr);
        let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.user_dials.insert(id);
                self.redial.keep(addr.clone());
                self.redial.dialing(&addr, id);
                self.print(&Line::Dialing {
                    address: addr.to_string(),
                });
            }
            Err(e) => self.print(&Line::error(command, format!("cannot dial {addr}: {e}"))),
        }
    }

    /// Dials a lost peer again (see [`Redial`]); a failure is logged and
    /// tried again later, not reported as the user's dial.
    fn dial_again(&mut self, addr: Multiaddr) {
        let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                tracing::debug!(%addr, "dialing again");
                self.redial.dialing(&addr, id);
            }
            Err(e) => tracing::debug!(%addr, "cannot dial again: {e}"),
        }
    }

    /// Opens another relayed connection to `peer`, on which DCUtR tries to
    /// punch a direct one again (see [`Punch`]).
    fn punch_again(&mut self, peer: PeerId, addr: Multiaddr) {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => tracing::debug!(%addr, "relaying again to punch a direct connection"),
            Err(e) => tracing::debug!(%addr, "cannot relay again: {e}"),
        }
    }

    /// Handles the swarm events that are ready now, up to
    /// [`EVENTS_PER_LINE`]. A line can make several (a `put` and its
    /// publish, say), and the loop takes turns between input and events:
    /// without this, a script piping lines faster than the node works
    /// queued their events without bound (a writer of 300,000 keys held
    /// 1,427 B per key without it, 801 B with it; 2-core VM, 2026-12-07).
    fn handle_ready_events(&mut self) {
        for _ in 0..EVENTS_PER_LINE {
            match self.swarm.next().now_or_never() {
                Some(Some(event)) => self.on_swarm_event(event),
                _ => break,
            }
        }
    }

    /// Runs until `quit` or the end of the input.
    pub async fn run(mut self, mut input: Receiver<Input>) {
        loop {
            let next_redial = [
                self.redial.next_due(),
                self.relisten.next_due(),
                self.punch.next_due(),
            ]
            .into_iter()
            .flatten()
            .min();
            let redial = async move {
                match next_redial {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = redial => {
                    let now = std::time::Instant::now();
                    for addr in self.redial.due(now) {
                        self.dial_again(addr);
                    }
                    for addr in self.relisten.due(now) {
                        self.listen_again(addr);
                    }
                    for (peer, addr) in self.punch.due(now) {
                        self.punch_again(peer, addr);
                    }
                }
                line = input.next() => {
                    // End of input works like `quit`.
                    let Some(line) = line else { break };
                    if self.on_input(line).is_break() {
                        break;
                    }
                    self.handle_ready_events();
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
        self.close_connections().await;
        self.print(&Line::Bye);
    }

    /// Closes every connection before exiting, so peers see this node gone
    /// at once (over QUIC they would otherwise wait for an idle timeout).
    async fn close_connections(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let closed = async {
            while self.swarm.connected_peers().next().is_some() {
                let event = self.swarm.select_next_some().await;
                self.on_swarm_event(event);
            }
        };
        // A peer that does not acknowledge is not worth waiting for.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, closed).await;
    }

    fn on_input(&mut self, line: Input) -> ControlFlow<()> {
        let line = match line {
            Ok(line) => line,
            Err(message) => {
                self.print(&Line::network_error(message));
                return ControlFlow::Continue(());
            }
        };
        match command::parse(&line) {
            None => ControlFlow::Continue(()),
            Some(Err(e)) => {
                self.print(&Line::error(&e.command, e.message));
                ControlFlow::Continue(())
            }
            Some(Ok(command)) => self.on_command(command),
        }
    }

    fn on_command(&mut self, command: Command) -> ControlFlow<()> {
        match command {
            Command::Put { key, value } => self.put(key, value),
            Command::Get(key) => self.get(key),
            Command::Del(key) => self.del(key),
            Command::Sub(keys) => self.sub(keys),
            Command::SubFile(path) => self.sub_file(&path),
            Command::Unsub(keys) => self.unsub(keys),
            Command::Dial(addr) => self.dial(addr, "dial"),
            Command::List => self.list(),
            Command::Peers => self.print(&self.peers_line()),
            Command::Id => self.print(&Line::Id {
                peer_id: self.peer_id().to_string(),
                validator: self.validator.to_string(),
            }),
            Command::Addrs => self.print(&self.addrs_line()),
            Command::Help => self.print(&help_line()),
            Command::Quit => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Under the owned validator a plain name means this node's key
    /// `"<PeerId>/name"`: the only keys it may write. A key that starts
    /// with a PeerId is used as given, so others' keys can be read.
    fn full_key(&self, key: String) -> String {
        let plain_name = OwnedKeys::owner(&key).is_none();
        if self.validator == ValidatorArg::Owned && plain_name {
            self.pointer().owned_key(&key)
        } else {
            key
        }
    }

    fn put(&mut self, name: String, value: String) {
        let key = self.full_key(name.clone());
        let owned_name = (key != name).then_some(name);
        match self.pointer_mut().put(&key, &value) {
            Ok(record) => self.print(&Line::Put {
                time: record.time(),
                key,
                value,
                owned_name,
            }),
            Err(e) => self.print(&Line::error("put", self.write_error(&key, e))),
        }
    }

    fn del(&mut self, key: String) {
        let key = self.full_key(key);
        match self.pointer_mut().delete(&key) {
            Ok(record) => self.print(&Line::Del {
                key,
                time: record.time(),
            }),
            Err(e) => self.print(&Line::error("del", self.write_error(&key, e))),
        }
    }

    fn write_error(&self, key: &str, error: WriteError) -> String {
        match error {
            WriteError::Invalid(pointer::RejectReason::Unauthorized) => format!(
                "this node may not write {key} (validator {})",
                self.validator
            ),
            other => format!("{key}: {other}"),
        }
    }

    /// The answer comes later, as a `get` line (see `on_pointer_event`).
    fn get(&mut self, key: String) {
        let key = self.full_key(key);
        // `pointer::Behaviour::get` does not check the key: a key no peer could hold
        // would still be followed and asked for.
        if let Err(e) = self.pointer().config().limits().check(&key, "") {
            return self.print(&Line::error("get", e));
        }
        self.pointer_mut().get(&key);
    }

    /// Follows again the keys the journal lists (except those deleted
    /// since: a delete ends a follow), and journals from now on.
    pub fn follow_again(&mut self, journal: Follows, keys: Vec<String>) {
        let pointer = self.pointer();
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| !pointer.record(k).is_some_and(|r| r.is_tombstone()))
            .collect();
        if let Err(e) = self.pointer_mut().subscribe_many(&keys) {
            tracing::warn!("{}: {e}", journal.path().display());
        }
        self.follows = Some(journal);
    }

    /// Journals a change of follows; a failure is reported, not fatal.
    fn journal<'a>(&mut self, following: bool, keys: impl IntoIterator<Item = &'a str>) {
        let Some(journal) = self.follows.as_mut() else {
            return;
        };
        if let Err(e) = journal.record(following, keys) {
            let message = format!("cannot write {}: {e}", journal.path().display());
            self.print(&Line::network_error(message));
        }
    }

    /// One key prints what became of it; several, how many were new.
    fn sub(&mut self, keys: Vec<String>) {
        let mut keys: Vec<String> = keys.into_iter().map(|k| self.full_key(k)).collect();
        if keys.len() == 1 {
            let key = keys.remove(0);
            match self.pointer_mut().subscribe(&key) {
                Ok(new) => {
                    self.journal(true, [key.as_str()]);
                    self.print(&Line::Sub { key, new })
                }
                Err(e) => self.print(&Line::error("sub", e)),
            }
            return;
        }
        self.sub_many("sub", keys);
    }

    fn sub_many(&mut self, command: &str, keys: Vec<String>) {
        let count = keys.len();
        match self.pointer_mut().subscribe_many(&keys) {
            Ok(new) => {
                self.journal(true, keys.iter().map(String::as_str));
                self.print(&Line::SubMany { keys: count, new })
            }
            Err(e) => self.print(&Line::error(command, e)),
        }
    }

    fn sub_file(&mut self, path: &str) {
        let keys = std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: {e}"))
            .and_then(|text| command::keys_of_file(&text));
        match keys {
            Ok(keys) if keys.is_empty() => {
                self.print(&Line::error("sub-file", format!("{path}: no keys")))
            }
            Ok(keys) => {
                let keys: Vec<String> = keys.into_iter().map(|k| self.full_key(k)).collect();
                self.sub_many("sub-file", keys);
            }
            Err(e) => self.print(&Line::error("sub-file", e)),
        }
    }

    fn unsub(&mut self, keys: Vec<String>) {
        let many = keys.len() > 1;
        let (count, mut were) = (keys.len(), 0);
        for key in keys {
            let key = self.full_key(key);
            let was_following = self.pointer_mut().unsubscribe(&key);
            self.journal(false, [key.as_str()]);
            were += usize::from(was_following);
            if !many {
                self.print(&Line::Unsub { key, was_following });
            }
        }
        if many {
            self.print(&Line::UnsubMany {
                keys: count,
                were_following: were,
            });
        }
    }

    fn list(&self) {
        let pointer = self.pointer();
        let mut records: Vec<RecordLine> = pointer
            .records()
            .map(|r| RecordLine::stored(&r, pointer.is_subscribed(r.key())))
            .collect();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        self.print(&Line::List { records });
    }

    fn peers_line(&self) -> Line {
        let peers = self
            .peers
            .iter()
            .map(|(peer, links)| PeerLine {
                peer_id: peer.to_string(),
                address: links
                    .first()
                    .map(|(_, addr)| addr.to_string())
                    .unwrap_or_default(),
                connections: links.iter().map(|(_, addr)| addr.to_string()).collect(),
            })
            .collect();
        Line::Peers { peers }
    }

    fn addrs_line(&self) -> Line {
        let me = self.peer_id();
        let addresses = self.swarm.listeners().map(|a| dialable(a, me)).collect();
        Line::Addrs { addresses }
    }
}

fn help_line() -> Line {
    let commands = HELP
        .iter()
        .map(|&(usage, description)| HelpLine { usage, description })
        .collect();
    Line::Help { commands }
}

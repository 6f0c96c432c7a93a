//! What the node prints for each swarm event, and what it does about
//! peers found by mDNS and peers that stop answering pings.

use std::collections::BTreeMap;

use libp2p::gossipsub::PublishError;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, mdns, ping, Multiaddr, PeerId};
use pointer::{Event, RecordStore, Source};

use crate::net::NodeEvent;
use crate::node::Node;
use crate::output::{dialable, Line, RecordLine};
use crate::punch::is_relayed;

impl<S: RecordStore + 'static> Node<S> {
    pub(crate) fn on_swarm_event(&mut self, event: SwarmEvent<NodeEvent>) {
        self.record(&event);
        match event {
            SwarmEvent::Behaviour(NodeEvent::Pointer(e)) => self.on_pointer_event(e),
            SwarmEvent::Behaviour(NodeEvent::Mdns(e)) => self.on_mdns_event(e),
            SwarmEvent::Behaviour(NodeEvent::Ping(e)) => self.on_ping_event(e),
            SwarmEvent::Behaviour(NodeEvent::Identify(e)) => self.on_identify_event(*e),
            SwarmEvent::Behaviour(NodeEvent::Relay(e)) => tracing::info!("relay client: {e:?}"),
            SwarmEvent::Behaviour(NodeEvent::RelayServer(e)) => tracing::info!("relay: {e:?}"),
            SwarmEvent::Behaviour(NodeEvent::Dcutr(e)) => tracing::info!("dcutr: {e:?}"),
            SwarmEvent::Behaviour(NodeEvent::Autonat(e)) => tracing::debug!("autonat: {e:?}"),
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                self.unaddressed.remove(&listener_id);
                self.relisten.up(listener_id);
                if self.listen_is_external {
                    self.swarm.add_external_address(address.clone());
                }
                self.print(&Line::Listening {
                    address: dialable(&address, self.peer_id()),
                })
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => self.print(&Line::ListenExpired {
                address: dialable(&address, self.peer_id()),
            }),
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                tracing::info!("listener closed: {reason:?}");
                self.unaddressed.remove(&listener_id);
                self.relisten.closed(listener_id, std::time::Instant::now());
            }
            SwarmEvent::NewExternalAddrCandidate { address } => {
                tracing::debug!(%address, "observed at");
                self.punch.observed(&address, std::time::Instant::now());
            }
            SwarmEvent::ListenerError { error, .. } => {
                self.print(&Line::network_error(format!("listener failed: {error}")))
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                self.user_dials.remove(&connection_id);
                self.redial.connected(peer_id, connection_id);
                let address = endpoint.get_remote_address().clone();
                let dialed = endpoint.is_dialer().then_some(&address);
                self.punch
                    .connected(peer_id, dialed, &address, std::time::Instant::now());
                let links = self.peers.entry(peer_id).or_default();
                links.push((connection_id, address.clone()));
                if links.len() == 1 {
                    self.print(&Line::Connected {
                        peer_id: peer_id.to_string(),
                        address: address.to_string(),
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established: 1..,
                ..
            } => {
                if let Some(links) = self.peers.get_mut(&peer_id) {
                    links.retain(|(id, _)| *id != connection_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.peers.remove(&peer_id);
                self.redial.lost(peer_id, std::time::Instant::now());
                self.punch.lost(&peer_id);
                self.relay_quic.lost(&peer_id);
                self.print(&Line::Disconnected {
                    peer_id: peer_id.to_string(),
                });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                self.redial.failed(connection_id, std::time::Instant::now());
                if self.user_dials.remove(&connection_id) {
                    self.print(&Line::network_error(format!("dial failed: {error}")));
                } else {
                    tracing::debug!("dial failed: {error}");
                }
            }
            other => tracing::trace!("{other:?}"),
        }
    }

    fn on_pointer_event(&mut self, event: Event) {
        let line = match event {
            // Local writes were answered by `put` and `del` already.
            Event::RecordUpdated { source, .. } | Event::RecordDeleted { source, .. }
                if source == Source::Local =>
            {
                return
            }
            Event::RecordUpdated { record, source } => {
                Line::Updated(RecordLine::new(&record, source))
            }
            Event::RecordDeleted { record, source } => {
                Line::Deleted(RecordLine::new(&record, source))
            }
            Event::GetFinished { key, outcome, .. } => Line::get(key, outcome),
            Event::RecordRejected { peer, key, reason } => Line::Rejected {
                peer_id: peer.to_string(),
                key,
                reason: reason.to_string(),
            },
            Event::StoreFailed { key, error } => {
                Line::network_error(format!("could not store {key}: {error}"))
            }
            Event::PublishFailed { key, error } => Line::PublishFailed {
                key,
                reason: publish_reason(&error),
            },
            // A peer that left mid-answer, or one with an older protocol:
            // the catch-up asks others; worth a log line, not an answer.
            Event::FetchFailed { peer, keys, error } => {
                let first = keys.first().map(String::as_str).unwrap_or_default();
                let keys = keys.len();
                return tracing::info!(%peer, %first, keys, "fetch failed: {error}");
            }
            Event::InboundFetchFailed { peer, error } => {
                return tracing::info!(%peer, "inbound fetch failed: {error}")
            }
            Event::PeerBanned { peer, reason, .. } => {
                return tracing::warn!(%peer, "peer banned: {reason}")
            }
            Event::Kad(event) => return tracing::debug!("kad: {event:?}"),
        };
        self.print(&line);
    }

    /// A peer that runs our DHT goes into its routing table with the
    /// addresses it listens on (the address a peer dialed us from is an
    /// ephemeral port, of no use to others).
    fn on_identify_event(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        self.reach_relay_over_quic(peer_id, &info.listen_addrs);
        if !info.protocols.contains(&pointer::discovery::PROTOCOL) {
            return;
        }
        if let Some(kad) = self.kad() {
            for addr in info.listen_addrs {
                kad.add_address(&peer_id, addr);
            }
        }
    }

    /// A relay of ours reached over TCP only is dialed over QUIC too (see
    /// [`RelayQuic`](crate::relay_quic::RelayQuic)).
    fn reach_relay_over_quic(&mut self, peer: PeerId, listen: &[Multiaddr]) {
        let over_quic = self.peers.get(&peer).is_some_and(|links| {
            links
                .iter()
                .any(|(_, addr)| !is_relayed(addr) && addr.iter().any(|p| p == Protocol::QuicV1))
        });
        let addrs = self.relay_quic.identified(peer, listen, over_quic);
        if addrs.is_empty() {
            return;
        }
        tracing::info!(%peer, ?addrs, "dialing the relay over QUIC too, for hole punching");
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::Always)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "not dialing the relay over QUIC: {e}");
        }
    }

    /// Peers found on the LAN are dialed; the first connection is printed
    /// as `connected`.
    fn on_mdns_event(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        let mut by_peer: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
        for (peer, addr) in found {
            by_peer.entry(peer).or_default().push(addr);
        }
        for (peer, addrs) in by_peer {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            self.print(&Line::Discovered {
                peer_id: peer.to_string(),
                address: addrs[0].to_string(),
            });
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, "not dialing: {e}");
            }
        }
    }

    /// libp2p's ping leaves it to us to drop a peer that stopped answering;
    /// otherwise a vanished laptop stays "connected" for a long time.
    fn on_ping_event(&mut self, event: ping::Event) {
        if let Err(ping::Failure::Timeout) = event.result {
            tracing::info!(peer = %event.peer, "ping timed out; closing the connection");
            self.swarm.close_connection(event.connection);
        }
    }
}

/// gossipsub's reason, in the words a user needs.
fn publish_reason(error: &PublishError) -> String {
    match error {
        PublishError::NoPeersSubscribedToTopic => "no connected peer follows it yet".to_owned(),
        other => other.to_string(),
    }
}

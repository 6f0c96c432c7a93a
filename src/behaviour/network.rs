//! `Behaviour` as a `NetworkBehaviour`: connections and events go to the
//! gossipsub, the fetch handler and the discovery it joins; `poll` reads
//! the clock once and feeds the coordinator.

use std::task::{Context, Poll};

use either::Either;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    behaviour::ConnectionEstablished, CloseConnection, ConnectionClosed, ConnectionDenied,
    ConnectionHandler, ConnectionHandlerSelect, ConnectionId, DialFailure, FromSwarm,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;

use super::{now_ms, Behaviour, Gossip};
use crate::behaviour::discovery::{Discovered, Discovery};
use crate::behaviour::handler::Handler;
use crate::coordinator::Input;
use crate::core::topic::Topic;
use crate::event::Event;
use crate::store::RecordStore;

impl<S: RecordStore + 'static, D: Discovery> NetworkBehaviour for Behaviour<S, D> {
    type ConnectionHandler =
        ConnectionHandlerSelect<ConnectionHandlerSelect<THandler<Gossip>, Handler>, THandler<D>>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.gossipsub
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)?;
        self.discovery
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.refuse_banned(peer)?;
        let gossip = self.gossipsub.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        let discovery = self.discovery.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(gossip.select(self.new_handler(peer)).select(discovery))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let mut found = self.gossipsub.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        // The DHT knows the addresses of the followers a lookup found.
        found.extend(self.discovery.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?);
        Ok(found)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.refuse_banned(peer)?;
        let gossip = self.gossipsub.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        let discovery = self.discovery.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(gossip.select(self.new_handler(peer)).select(discovery))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.gossipsub.on_swarm_event(event);
        self.discovery.on_swarm_event(event);
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            }) => {
                self.dht_links.established(connection_id, peer_id, now_ms());
                self.on_connection_established(peer_id, connection_id)
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                self.dht_links.ended(connection_id);
                self.on_connection_closed(peer_id, connection_id)
            }
            FromSwarm::DialFailure(DialFailure { connection_id, .. }) => {
                self.dht_links.ended(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(Either::Left(gossip)) => self
                .gossipsub
                .on_connection_handler_event(peer, connection, gossip),
            Either::Left(Either::Right(event)) => self.on_fetch_event(peer, event),
            Either::Right(event) => self
                .discovery
                .on_connection_handler_event(peer, connection, event),
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        // The clock is read once: every input handled in this call is
        // judged at the same moment.
        let now = now_ms();
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(event);
            }
            if let Some(input) = self.inputs.pop_front() {
                self.probe.input(&input);
                self.core.handle(input, now);
                self.execute();
                continue;
            }
            if let Some(timer) = self.timers.poll_fired(cx) {
                let core = &mut self.core;
                self.probe
                    .timer(timer, || core.handle(Input::Timer(timer), now));
                self.execute();
                continue;
            }
            match self.discovery.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => {
                    self.on_discovered(event, now);
                    continue;
                }
                Poll::Ready(action) => {
                    if let ToSwarm::Dial { opts } = &action {
                        self.dht_links
                            .dialing(opts.connection_id(), opts.get_peer_id());
                    }
                    return Poll::Ready(
                        action
                            .map_in(Either::Right)
                            .map_out(|_| unreachable!("discovery events are handled above")),
                    );
                }
                Poll::Pending => {}
            }
            let core = &self.core;
            let needed = |p: PeerId, leaving: &[PeerId]| core.needs_peer(&p, leaving);
            for (peer_id, id) in self.dht_links.poll_due(cx, now, needed) {
                self.events.push_back(ToSwarm::CloseConnection {
                    peer_id,
                    connection: CloseConnection::One(id),
                });
            }
            self.pace(cx, now);
            match self.gossipsub.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => {
                    self.on_gossip_event(event, now);
                    self.execute();
                }
                Poll::Ready(action) => {
                    return Poll::Ready(
                        action
                            .map_in(|e| Either::Left(Either::Left(e)))
                            .map_out(|_| unreachable!("gossipsub events are handled above")),
                    )
                }
                Poll::Pending => {
                    // Everything at hand is handled: pack what waits into
                    // as few asks as possible.
                    self.core.pack_asks();
                    self.execute();
                    if self.events.is_empty() && self.inputs.is_empty() {
                        self.probe.poll_gauges(cx, &mut self.core);
                        self.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<S: RecordStore, D: Discovery> Behaviour<S, D> {
    fn on_discovered(&mut self, event: D::ToSwarm, now: i64) {
        // Rendezvous are record topics: a key's, or a shard of the count
        // we recognise.
        let shards = self.core.config().shard_topic_count();
        let input = match self.discovery.on_event(event) {
            Some(Discovered::Providers { topic, peers }) => {
                Topic::parse(&topic, shards).map(|topic| Input::Providers { topic, peers })
            }
            Some(Discovered::Done { topic }) => {
                Topic::parse(&topic, shards).map(|topic| Input::LookupDone { topic })
            }
            Some(Discovered::Event(event)) => {
                self.events.push_back(ToSwarm::GenerateEvent(*event));
                None
            }
            None => None,
        };
        if let Some(input) = input {
            self.core.handle(input, now);
            self.execute();
        }
    }
}

//! Relay addresses the node keeps listening through. A listener through a
//! relay lives as long as the node's connection to the relay and its
//! reservation there: when the relay restarts, a partition cuts it off or
//! it ends the reservation, the listener closes, and the node would no
//! longer be reachable through it. Each closed one is listened on again
//! after a backoff that doubles from 1 s to 5 s, and starts over at 1 s
//! once the relay has accepted the reservation again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::Multiaddr;

use crate::retry::{self, Retry};

/// See the [module docs](self).
#[derive(Debug)]
pub struct Relisten {
    /// The longest wait between tries.
    most: Duration,
    targets: Vec<Retry>,
    /// Open listeners, to the target each is for.
    listeners: HashMap<ListenerId, usize>,
}

impl Default for Relisten {
    fn default() -> Self {
        Relisten::new(retry::MOST)
    }
}

impl Relisten {
    /// Waits at most `most` between tries.
    pub fn new(most: Duration) -> Self {
        Relisten {
            most,
            targets: Vec::new(),
            listeners: HashMap::new(),
        }
    }

    /// `addr` is being listened on as `id`; kept from now on.
    pub fn listening(&mut self, addr: &Multiaddr, id: ListenerId) {
        let i = match self.targets.iter().position(|t| t.addr == *addr) {
            Some(i) => i,
            None => {
                self.targets.push(Retry::new(addr.clone()));
                self.targets.len() - 1
            }
        };
        self.targets[i].trying();
        self.listeners.insert(id, i);
    }

    /// Listener `id` has an address: the relay took the reservation.
    pub fn up(&mut self, id: ListenerId) {
        if let Some(&i) = self.listeners.get(&id) {
            self.targets[i].succeeded();
        }
    }

    /// Listener `id` closed at `now`: listened on again after the backoff,
    /// which doubles until a reservation is taken.
    pub fn closed(&mut self, id: ListenerId, now: Instant) {
        if let Some(i) = self.listeners.remove(&id) {
            self.targets[i].failed(now, self.most);
        }
    }

    /// Listening on `addr` could not start at `now`.
    pub fn refused(&mut self, addr: &Multiaddr, now: Instant) {
        if let Some(target) = self.targets.iter_mut().find(|t| t.addr == *addr) {
            target.failed(now, self.most);
        }
    }

    /// Addresses due to be listened on again at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Multiaddr> {
        self.targets
            .iter_mut()
            .filter_map(|t| t.take_if_due(now))
            .collect()
    }

    /// When the next try is due, if any is.
    pub fn next_due(&self) -> Option<Instant> {
        self.targets.iter().filter_map(Retry::due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::FIRST;

    fn circuit() -> Multiaddr {
        "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
            .parse()
            .expect("valid address")
    }

    #[test]
    fn a_closed_listener_is_opened_again_after_a_doubling_backoff() {
        let mut relisten = Relisten::default();
        let now = Instant::now();
        let addr = circuit();
        let first = ListenerId::next();
        relisten.listening(&addr, first);
        assert_eq!(relisten.next_due(), None, "nothing due while listening");

        relisten.closed(first, now);
        assert_eq!(relisten.next_due(), Some(now + FIRST));
        assert!(relisten.due(now).is_empty(), "not before the backoff");
        assert_eq!(relisten.due(now + FIRST), vec![addr.clone()]);
        assert_eq!(relisten.next_due(), None, "due once per closing");

        // The relay is still away: the next wait is twice as long.
        let second = ListenerId::next();
        relisten.listening(&addr, second);
        relisten.closed(second, now + FIRST);
        assert_eq!(relisten.next_due(), Some(now + FIRST + 2 * FIRST));

        // Back: a reservation resets the backoff.
        let _ = relisten.due(now + 3 * FIRST);
        let third = ListenerId::next();
        relisten.listening(&addr, third);
        relisten.up(third);
        relisten.closed(third, now + 10 * FIRST);
        assert_eq!(relisten.next_due(), Some(now + 11 * FIRST));
    }

    #[test]
    fn the_backoff_stops_growing_at_its_most() {
        let most = Duration::from_secs(3);
        let mut relisten = Relisten::new(most);
        let addr = circuit();
        let mut now = Instant::now();
        for _ in 0..20 {
            let id = ListenerId::next();
            relisten.listening(&addr, id);
            relisten.closed(id, now);
            now = relisten.next_due().expect("due");
            let _ = relisten.due(now);
        }
        let id = ListenerId::next();
        relisten.listening(&addr, id);
        relisten.closed(id, now);
        assert_eq!(relisten.next_due(), Some(now + most));
    }
}

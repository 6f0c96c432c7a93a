//! One address the node keeps trying: dialed again when its peer is lost,
//! or listened on again when its relay listener closes. The wait starts at
//! 1 s and doubles after each failure up to a most (`--redial-max-secs`);
//! a success starts it over.

use std::time::{Duration, Instant};

use libp2p::Multiaddr;

/// The first wait before another try.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between tries, by default: short, so that a network
/// whose partition heals is joined up again within seconds (the fault
/// suite wants agreement within 10 s of the heal); each try is one dial.
pub const MOST: Duration = Duration::from_secs(5);

/// See the [module docs](self).
#[derive(Debug)]
pub struct Retry {
    pub addr: Multiaddr,
    backoff: Duration,
    /// When to try next; `None` while up or being tried.
    due: Option<Instant>,
}

impl Retry {
    pub fn new(addr: Multiaddr) -> Self {
        Retry {
            addr,
            backoff: FIRST,
            due: None,
        }
    }

    /// It worked: the next loss waits [`FIRST`] again.
    pub fn succeeded(&mut self) {
        self.backoff = FIRST;
        self.due = None;
    }

    /// A try is under way.
    pub fn trying(&mut self) {
        self.due = None;
    }

    /// What was up went away at `now`: tried again after the wait.
    pub fn lost(&mut self, now: Instant) {
        self.due = Some(now + self.backoff);
    }

    /// A try failed at `now`: tried again after the wait, which doubles
    /// up to `most` for the time after.
    pub fn failed(&mut self, now: Instant, most: Duration) {
        self.due = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(most);
    }

    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The address, if due at `now`; it is not due again until it fails
    /// or is lost.
    pub fn take_if_due(&mut self, now: Instant) -> Option<Multiaddr> {
        let due = self.due.is_some_and(|due| due <= now);
        due.then(|| {
            self.due = None;
            self.addr.clone()
        })
    }
}

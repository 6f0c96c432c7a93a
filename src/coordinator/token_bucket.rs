//! A token bucket: `burst` units, refilled continuously at `burst` per
//! window. It bounds the invalid records a peer may send and the DHT work
//! a node starts.

/// See the [module docs](self). Starts full; time starts at its first use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    /// A full bucket, in thousandths of a unit (refill needs no floats).
    full: u64,
    window_ms: u64,
    milli: u64,
    at_ms: Option<i64>,
}

impl Default for TokenBucket {
    /// A bucket that never gives (no burst).
    fn default() -> Self {
        TokenBucket::new(0, 1)
    }
}

impl TokenBucket {
    /// A full bucket of `burst` units, refilled at `burst` per
    /// `window_ms`.
    pub fn new(burst: u32, window_ms: i64) -> Self {
        let full = u64::from(burst) * 1000;
        TokenBucket {
            full,
            window_ms: u64::try_from(window_ms).unwrap_or(1).max(1),
            milli: full,
            at_ms: None,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let at = *self.at_ms.get_or_insert(now_ms);
        let elapsed = u64::try_from(now_ms.saturating_sub(at)).unwrap_or(0);
        let earned = elapsed.saturating_mul(self.full) / self.window_ms;
        self.milli = self.milli.saturating_add(earned).min(self.full);
        self.at_ms = Some(now_ms.max(at));
    }

    /// Whether a unit is there at `now_ms`.
    pub fn has(&mut self, now_ms: i64) -> bool {
        self.refill(now_ms);
        self.milli >= 1000
    }

    /// Takes a unit at `now_ms`, if there is one.
    pub fn take(&mut self, now_ms: i64) -> bool {
        if !self.has(now_ms) {
            return false;
        }
        self.milli -= 1000;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_steady_rate() {
        let mut b = TokenBucket::new(3, 900);
        assert!((0..3).all(|_| b.take(0)));
        assert!(!b.take(0), "the burst is spent");
        assert!(b.take(300), "a third of the window refills one unit");
        assert!(!b.take(300));
        assert!((0..3).all(|_| b.take(10_000)), "refills up to the burst");
        assert!(!b.take(10_000), "no more than the burst");
    }

    #[test]
    fn the_default_bucket_never_gives() {
        assert!(!TokenBucket::default().take(1_000_000));
    }
}

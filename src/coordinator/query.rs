//! Bookkeeping of running `get`s: how many asked peers are still to reply,
//! and when a `get` stops waiting for them (`get_grace` after a first
//! answer with a record). The result itself is read from the store when
//! the round ends, so the query reports exactly what the node now holds.

use std::collections::HashMap;

use libp2p::PeerId;

use crate::event::QueryId;

#[derive(Debug)]
struct Query {
    key: String,
    waiting: usize,
    answered: bool,
    asked: Vec<PeerId>,
    /// When the round ends whatever is still outstanding.
    settle_at: Option<i64>,
}

/// A round of a query with no reply outstanding: its key, whether any peer
/// answered at all, and every peer asked so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    pub key: String,
    pub answered: bool,
    pub asked: Vec<PeerId>,
}

#[derive(Debug, Default)]
pub(crate) struct Queries {
    running: HashMap<QueryId, Query>,
}

impl Queries {
    /// Starts a query that waits for a reply from each of `asked`.
    pub fn start(&mut self, id: QueryId, key: String, asked: Vec<PeerId>) {
        self.more(id, key, false, Vec::new(), asked);
    }

    /// Goes on with a query whose last round is over (`done`), waiting for
    /// a reply from each of `more` too.
    pub fn resume(&mut self, id: QueryId, done: Finished, more: Vec<PeerId>) {
        self.more(id, done.key, done.answered, done.asked, more);
    }

    fn more(
        &mut self,
        id: QueryId,
        key: String,
        answered: bool,
        mut asked: Vec<PeerId>,
        more: Vec<PeerId>,
    ) {
        let waiting = more.len();
        asked.extend(more);
        let query = Query {
            key,
            waiting,
            answered,
            asked,
            settle_at: None,
        };
        self.running.insert(id, query);
    }

    /// One asked peer replied (`answered`) or failed; returns the query once
    /// no reply is outstanding.
    pub fn reply(&mut self, id: QueryId, answered: bool) -> Option<Finished> {
        let query = self.running.get_mut(&id)?;
        query.waiting = query.waiting.saturating_sub(1);
        query.answered |= answered;
        if query.waiting > 0 {
            return None;
        }
        self.take(id)
    }

    /// Ends the round of `id` at `at` at the latest, replies outstanding
    /// or not; an earlier end already set stays. Whether it was set now.
    pub fn settle_by(&mut self, id: QueryId, at: i64) -> bool {
        let Some(query) = self.running.get_mut(&id) else {
            return false;
        };
        if query.settle_at.is_some() {
            return false;
        }
        query.settle_at = Some(at);
        true
    }

    /// The rounds whose end is due by `now`, ended; and when the next one
    /// is due, if any.
    pub fn settle_due(&mut self, now: i64) -> (Vec<(QueryId, Finished)>, Option<i64>) {
        let due: Vec<QueryId> = self
            .running
            .iter()
            .filter(|(_, q)| q.settle_at.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        let ended = due
            .into_iter()
            .filter_map(|id| Some((id, self.take(id)?)))
            .collect();
        let next = self.running.values().filter_map(|q| q.settle_at).min();
        (ended, next)
    }

    fn take(&mut self, id: QueryId) -> Option<Finished> {
        let query = self.running.remove(&id)?;
        Some(Finished {
            key: query.key,
            answered: query.answered,
            asked: query.asked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishes_after_the_last_reply_and_remembers_answers() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut q = Queries::default();
        q.start(QueryId(1), "k".into(), vec![a, b]);
        assert_eq!(q.reply(QueryId(1), true), None);
        let done = q.reply(QueryId(1), false).expect("finished");
        assert_eq!(
            done,
            Finished {
                key: "k".into(),
                answered: true,
                asked: vec![a, b],
            }
        );
        assert_eq!(q.reply(QueryId(1), true), None, "a finished query is gone");
    }

    #[test]
    fn a_query_where_every_ask_failed_has_no_answer() {
        let a = PeerId::random();
        let mut q = Queries::default();
        q.start(QueryId(2), "k".into(), vec![a]);
        assert_eq!(
            q.reply(QueryId(2), false),
            Some(Finished {
                key: "k".into(),
                answered: false,
                asked: vec![a],
            })
        );
    }

    #[test]
    fn a_settled_round_ends_at_its_time_with_replies_outstanding() {
        let mut q = Queries::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        q.start(QueryId(1), "k".into(), vec![a, b]);
        assert_eq!(q.reply(QueryId(1), true), None);
        assert!(q.settle_by(QueryId(1), 500));
        assert!(!q.settle_by(QueryId(1), 900), "the first end stays");
        let (ended, next) = q.settle_due(499);
        assert!(ended.is_empty());
        assert_eq!(next, Some(500));
        let (ended, next) = q.settle_due(500);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1.asked, vec![a, b]);
        assert!(ended[0].1.answered);
        assert_eq!(next, None);
        // The late reply finds no query.
        assert_eq!(q.reply(QueryId(1), true), None);
    }

    #[test]
    fn a_resumed_query_keeps_its_answers_and_whom_it_asked() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut q = Queries::default();
        q.start(QueryId(3), "k".into(), vec![a]);
        let done = q.reply(QueryId(3), true).expect("first round over");
        q.resume(QueryId(3), done, vec![b]);
        let done = q.reply(QueryId(3), false).expect("second round over");
        assert!(done.answered);
        assert_eq!(done.asked, vec![a, b]);
    }
}

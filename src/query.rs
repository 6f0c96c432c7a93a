//! Bookkeeping of running `get`s: how many asked peers are still to reply.
//! The result itself is read from the store when the last reply is in, so
//! the query reports exactly what the node now holds.

use std::collections::HashMap;

use libp2p::PeerId;

use crate::event::QueryId;

#[derive(Debug)]
struct Query {
    key: String,
    waiting: usize,
    answered: bool,
    asked: Vec<PeerId>,
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

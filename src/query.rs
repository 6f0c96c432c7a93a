//! Bookkeeping of running `get`s: how many asked peers are still to reply.
//! The result itself is read from the store when the last reply is in, so
//! the query reports exactly what the node now holds.

use std::collections::HashMap;

use crate::event::QueryId;

#[derive(Debug)]
struct Query {
    key: String,
    waiting: usize,
    answered: bool,
}

/// A finished query: its key, and whether any peer answered at all.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    pub key: String,
    pub answered: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Queries {
    running: HashMap<QueryId, Query>,
}

impl Queries {
    /// Starts a query that waits for `asked` replies.
    pub fn start(&mut self, id: QueryId, key: String, asked: usize) {
        let query = Query {
            key,
            waiting: asked,
            answered: false,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishes_after_the_last_reply_and_remembers_answers() {
        let mut q = Queries::default();
        q.start(QueryId(1), "k".into(), 2);
        assert_eq!(q.reply(QueryId(1), true), None);
        let done = q.reply(QueryId(1), false).expect("finished");
        assert_eq!(
            done,
            Finished {
                key: "k".into(),
                answered: true
            }
        );
        assert_eq!(q.reply(QueryId(1), true), None, "a finished query is gone");
    }

    #[test]
    fn a_query_where_every_ask_failed_has_no_answer() {
        let mut q = Queries::default();
        q.start(QueryId(2), "k".into(), 1);
        assert_eq!(
            q.reply(QueryId(2), false),
            Some(Finished {
                key: "k".into(),
                answered: false
            })
        );
    }
}

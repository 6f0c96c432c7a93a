//! The behaviour's hooks into its metrics. With the `metrics` feature they
//! are [`crate::metrics`]'s; without it, the empty ones below, so the
//! behaviour calls them the same way either way and pays nothing.

#[cfg(feature = "metrics")]
pub(crate) use crate::metrics::Probe;

#[cfg(not(feature = "metrics"))]
pub(crate) use self::off::Probe;

#[cfg(not(feature = "metrics"))]
mod off {
    use std::task::Context;

    use crate::coordinator::{Coordinator, Input, Output, Timer};
    use crate::event::QueryId;
    use crate::store::RecordStore;
    use crate::wire::failure::InboundFailure;

    /// Hooks that do nothing: the crate is built without metrics.
    #[derive(Default)]
    pub(crate) struct Probe {}

    impl Probe {
        pub(crate) fn output(&mut self, _: &Output) {}
        pub(crate) fn input(&mut self, _: &Input) {}
        pub(crate) fn inbound_failed(&mut self, _: &InboundFailure) {}
        pub(crate) fn get_started(&mut self, _: QueryId) {}
        pub(crate) fn subscribed(&mut self, _: &str, _: impl FnOnce() -> bool) {}
        pub(crate) fn unsubscribed(&mut self, _: &str) {}
        pub(crate) fn changed(&mut self) {}
        pub(crate) fn poll_gauges<S: RecordStore>(
            &mut self,
            _: &mut Context<'_>,
            _: &mut Coordinator<S>,
        ) {
        }

        pub(crate) fn timer(&mut self, _: Timer, fire: impl FnOnce()) {
            fire()
        }

        pub(crate) fn flush(&mut self, flush: impl FnOnce()) {
            flush()
        }
    }
}

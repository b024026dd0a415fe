//! Round progress notifications: the round driver announces every transition it stores
//! (round opened, cohort fixed, stage opened, round completed or aborted), and long-polling
//! requests wait for the next announcement instead of devices polling the server.
//!
//! An announcement only says "something moved": waiters re-read storage, which stays the
//! one source of truth. Announcements stay within the process: with PostgreSQL and several
//! processes, a request waiting on a round that another process drives sees the transition
//! when its wait ends (and the device polls again), as a plain poll would.

use tokio::sync::watch;

/// A counter of transitions, watched by waiting requests.
#[derive(Debug)]
pub struct RoundProgress {
    transitions: watch::Sender<u64>,
}

impl Default for RoundProgress {
    fn default() -> Self {
        RoundProgress {
            transitions: watch::Sender::new(0),
        }
    }
}

impl RoundProgress {
    /// Wakes every waiter: a round changed phase.
    pub fn announce(&self) {
        self.transitions.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees announcements made from now on. Subscribe *before* reading
    /// storage, so a transition between the read and the wait is not missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.transitions.subscribe()
    }

    /// Transitions announced so far (for tests and metrics).
    pub fn transitions(&self) -> u64 {
        *self.transitions.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_subscribed_before_an_announcement_sees_it() {
        let progress = RoundProgress::default();
        let mut rx = progress.subscribe();
        progress.announce();
        let woke = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
        assert!(matches!(woke, Ok(Ok(()))));
        assert_eq!(progress.transitions(), 1);
    }

    #[tokio::test]
    async fn without_an_announcement_the_waiter_sleeps() {
        let progress = RoundProgress::default();
        let mut rx = progress.subscribe();
        let woke = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
        assert!(woke.is_err(), "no transition, no wake-up");
    }
}

//! The consumer thread's book of held jobs: each reserved job from its reservation until it is
//! settled — prefetched (waiting for room at the target) or running (handed to the target) —
//! with the connection session it was reserved under and when its lease needs extending.
//!
//! Owned by the consumer thread alone; no locks.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::TaskHandle;
use crate::queue::{Delivery, JobId, Outcome};

/// Where a held job is.
pub(crate) enum HeldState {
    /// Reserved ahead, waiting for room at the target.
    Prefetched,
    /// Handed to the target (queued there or running); the handle reports its outcome.
    Running(TaskHandle<Outcome>),
}

/// One held job.
pub(crate) struct Held {
    pub(crate) delivery: Delivery,
    /// The backend session the job was reserved under: once the backend's session moves on,
    /// the job is no longer this consumer's to settle.
    pub(crate) session: u64,
    pub(crate) state: HeldState,
    /// When the lease is to be extended (half the lease after the reservation or the last
    /// extension); `None` when the engine gives no lease.
    touch_at: Option<Instant>,
    /// When the lease runs out unless extended.
    lease_ends: Option<Instant>,
}

impl Held {
    fn extended(&mut self, now: Instant) {
        let lease = self.delivery.lease();
        if lease.is_zero() {
            self.touch_at = None;
            self.lease_ends = None;
        } else {
            self.touch_at = now.checked_add(lease / 2);
            self.lease_ends = now.checked_add(lease);
        }
    }
}

#[derive(Default)]
pub(crate) struct Book {
    next_key: u64,
    held: HashMap<u64, Held>,
    /// Keys of prefetched jobs, in reservation order. Invariant: exactly the keys of `held`
    /// whose state is `Prefetched`.
    prefetched: VecDeque<u64>,
}

impl Book {
    /// Records a job just reserved, as prefetched; returns its key.
    pub(crate) fn insert(&mut self, delivery: Delivery, session: u64, now: Instant) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        let mut held = Held {
            delivery,
            session,
            state: HeldState::Prefetched,
            touch_at: None,
            lease_ends: None,
        };
        held.extended(now);
        self.held.insert(key, held);
        self.prefetched.push_back(key);
        key
    }

    /// The oldest prefetched job.
    pub(crate) fn next_prefetched(&self) -> Option<(u64, &Delivery)> {
        let key = *self.prefetched.front()?;
        self.held.get(&key).map(|held| (key, &held.delivery))
    }

    /// The oldest prefetched job was handed to the target.
    pub(crate) fn started(&mut self, key: u64, handle: TaskHandle<Outcome>) {
        if self.prefetched.front() == Some(&key) {
            self.prefetched.pop_front();
        } else {
            self.prefetched.retain(|&k| k != key);
        }
        if let Some(held) = self.held.get_mut(&key) {
            held.state = HeldState::Running(handle);
        }
    }

    /// The running job's handle, to poll.
    pub(crate) fn handle_mut(&mut self, key: u64) -> Option<&mut TaskHandle<Outcome>> {
        match self.held.get_mut(&key) {
            Some(Held {
                state: HeldState::Running(handle),
                ..
            }) => Some(handle),
            _ => None,
        }
    }

    /// Removes a job (settled, or no longer held).
    pub(crate) fn remove(&mut self, key: u64) -> Option<Held> {
        let held = self.held.remove(&key)?;
        if matches!(held.state, HeldState::Prefetched) {
            self.prefetched.retain(|&k| k != key);
        }
        Some(held)
    }

    /// Removes and returns every prefetched job.
    pub(crate) fn take_prefetched(&mut self) -> Vec<Held> {
        let keys: Vec<u64> = self.prefetched.drain(..).collect();
        keys.into_iter()
            .filter_map(|key| self.held.remove(&key))
            .collect()
    }

    /// Removes and returns every running job.
    pub(crate) fn take_running(&mut self) -> Vec<Held> {
        let keys: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, held)| matches!(held.state, HeldState::Running(_)))
            .map(|(&key, _)| key)
            .collect();
        keys.into_iter()
            .filter_map(|key| self.held.remove(&key))
            .collect()
    }

    /// Jobs of `session` whose lease is due for an extension at `now`; their next extension is
    /// booked as if the extension happened now.
    pub(crate) fn due_extensions(&mut self, now: Instant, session: u64) -> Vec<JobId> {
        let mut due = Vec::new();
        for held in self.held.values_mut() {
            if held.session == session && held.touch_at.is_some_and(|at| at <= now) {
                held.extended(now);
                due.push(held.delivery.id().clone());
            }
        }
        due
    }

    /// Makes every job of `session` whose lease ends within `margin` due for an extension
    /// now; returns how many.
    pub(crate) fn hasten_extensions(
        &mut self,
        now: Instant,
        margin: Duration,
        session: u64,
    ) -> usize {
        let limit = now.checked_add(margin).unwrap_or(now);
        let mut hastened = 0;
        for held in self.held.values_mut() {
            if held.session == session && held.lease_ends.is_some_and(|end| end <= limit) {
                held.touch_at = Some(now);
                hastened += 1;
            }
        }
        hastened
    }

    /// The earliest booked extension among jobs of `session`.
    pub(crate) fn next_extension(&self, session: u64) -> Option<Instant> {
        self.held
            .values()
            .filter(|held| held.session == session)
            .filter_map(|held| held.touch_at)
            .min()
    }

    /// Drops prefetched jobs reserved under another session than `session` (the engine has
    /// them back); returns how many.
    pub(crate) fn drop_stale_prefetched(&mut self, session: u64) -> usize {
        let stale: Vec<u64> = self
            .prefetched
            .iter()
            .copied()
            .filter(|key| self.held.get(key).is_some_and(|h| h.session != session))
            .collect();
        for key in &stale {
            self.remove(*key);
        }
        stale.len()
    }

    /// Running jobs reserved under another session than `session`.
    pub(crate) fn stale_running(&self, session: u64) -> usize {
        self.held
            .values()
            .filter(|held| held.session != session && matches!(held.state, HeldState::Running(_)))
            .count()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub(crate) fn prefetched_len(&self) -> usize {
        self.prefetched.len()
    }

    pub(crate) fn running_len(&self) -> usize {
        self.held.len() - self.prefetched.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn delivery(id: u64, lease_secs: u64) -> Delivery {
        Delivery::new(
            JobId::number(id),
            Vec::new(),
            1,
            Duration::from_secs(lease_secs),
            Arc::from("test"),
        )
    }

    #[test]
    fn prefetched_jobs_start_in_reservation_order() {
        let mut book = Book::default();
        let now = Instant::now();
        let a = book.insert(delivery(10, 60), 1, now);
        let b = book.insert(delivery(11, 60), 1, now);
        assert_eq!(book.next_prefetched().map(|(k, _)| k), Some(a));
        let handle = crate::SchedulerService::builder()
            .build()
            .unwrap()
            .io()
            .submit(|| Outcome::Done)
            .unwrap();
        book.started(a, handle);
        assert_eq!(book.next_prefetched().map(|(k, _)| k), Some(b));
        assert_eq!((book.prefetched_len(), book.running_len()), (1, 1));
        assert!(book.handle_mut(a).is_some());
        assert!(book.handle_mut(b).is_none());
        assert_eq!(book.take_prefetched().len(), 1);
        assert_eq!(book.take_running().len(), 1);
        assert!(book.is_empty());
    }

    #[test]
    fn leases_are_extended_at_half_their_length() {
        let mut book = Book::default();
        let now = Instant::now();
        book.insert(delivery(1, 10), 1, now);
        book.insert(delivery(2, 0), 1, now);
        assert_eq!(book.next_extension(1), Some(now + Duration::from_secs(5)));
        assert!(
            book.due_extensions(now + Duration::from_secs(4), 1)
                .is_empty()
        );
        let later = now + Duration::from_secs(5);
        assert_eq!(book.due_extensions(later, 1), vec![JobId::number(1)]);
        assert_eq!(book.next_extension(1), Some(later + Duration::from_secs(5)));
        // Jobs of an old session are not the consumer's to extend.
        assert!(
            book.due_extensions(later + Duration::from_secs(60), 2)
                .is_empty()
        );
    }

    #[test]
    fn a_lease_warning_hastens_only_leases_that_end_soon() {
        let mut book = Book::default();
        let now = Instant::now();
        book.insert(delivery(1, 2), 1, now);
        book.insert(delivery(2, 60), 1, now);
        assert_eq!(book.hasten_extensions(now, Duration::from_secs(3), 1), 1);
        assert_eq!(book.due_extensions(now, 1), vec![JobId::number(1)]);
    }

    #[test]
    fn a_new_session_drops_prefetched_jobs_of_the_old_one() {
        let mut book = Book::default();
        let now = Instant::now();
        book.insert(delivery(1, 60), 1, now);
        book.insert(delivery(2, 60), 2, now);
        assert_eq!(book.drop_stale_prefetched(2), 1);
        assert_eq!(
            book.next_prefetched().map(|(_, d)| d.id().clone()),
            Some(JobId::number(2))
        );
        assert_eq!(book.stale_running(2), 0);
    }
}

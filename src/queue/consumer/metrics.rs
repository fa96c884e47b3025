//! [`ConsumerMetrics`]: what a consumer has done, and the counters its thread keeps them in.

use crate::loom::{AtomicU64, Ordering};

/// A snapshot of a consumer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerMetrics {
    /// Jobs reserved from the engine.
    pub reserved: u64,
    /// Jobs deleted (acknowledged) after their handler succeeded.
    pub deleted: u64,
    /// Jobs released back to the queue: transient failures, and jobs returned unstarted at
    /// shutdown.
    pub released: u64,
    /// Jobs buried (dead-lettered): permanent failures, and jobs out of attempts.
    pub buried: u64,
    /// Lease extensions (beanstalkd `touch`) of jobs that ran past half their lease.
    pub touched: u64,
    /// Jobs held now: reserved and not yet settled (running, queued at the target, or
    /// prefetched).
    pub in_flight: u64,
    /// Of those, jobs handed to the target (queued there or running).
    pub running: u64,
    /// Of those, jobs reserved ahead and waiting for room at the target (at most the
    /// prefetch, give or take what other submitters took from the room seen).
    pub prefetched: u64,
    /// Times the consumer held back from reserving because its target had no room: back
    /// pressure reaching the queue.
    pub reserve_waits: u64,
    /// Reserves that waited on an empty queue.
    pub empty_waits: u64,
    /// Handler failures (retries asked for, permanent failures, panics).
    pub failures: u64,
    /// Jobs whose lease was lost before they were settled (the connection dropped, or a lease
    /// ran out): the engine delivers them again.
    pub lost_leases: u64,
    /// Reconnections after a failed exchange.
    pub reconnects: u64,
}

/// The live counters. Each is written by the consumer thread only and read by `metrics()`
/// from any thread: relaxed atomics suffice, since no decision is taken on another thread's
/// reading of them (a snapshot may mix values from two moments).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) reserved: AtomicU64,
    pub(crate) deleted: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) buried: AtomicU64,
    pub(crate) touched: AtomicU64,
    pub(crate) running: AtomicU64,
    pub(crate) prefetched: AtomicU64,
    pub(crate) reserve_waits: AtomicU64,
    pub(crate) empty_waits: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) lost_leases: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ConsumerMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let running = get(&self.running);
        let prefetched = get(&self.prefetched);
        ConsumerMetrics {
            reserved: get(&self.reserved),
            deleted: get(&self.deleted),
            released: get(&self.released),
            buried: get(&self.buried),
            touched: get(&self.touched),
            in_flight: running + prefetched,
            running,
            prefetched,
            reserve_waits: get(&self.reserve_waits),
            empty_waits: get(&self.empty_waits),
            failures: get(&self.failures),
            lost_leases: get(&self.lost_leases),
            reconnects: get(&self.reconnects),
        }
    }
}

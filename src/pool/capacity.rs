//! The capacity waiters: callers blocked until the pool has room for their task
//! ([`Shared::admit_waiting`]), and the one-waiter-per-unit signal that wakes them.
//!
//! The protocol and its no-lost-signal argument are in `README.md` beside this file ("Waiting
//! for capacity"); the loom model `loom_waiting_submitter_is_admitted_when_a_worker_frees`
//! checks it.

use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::Shared;
use crate::loom::{Arc, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use crate::rejected::RejectKind;
use crate::task::Job;

/// The waiters of one pool.
pub(crate) struct Capacity {
    /// Callers blocked in [`Shared::admit_waiting`]; workers signal only when it is non-zero.
    /// `SeqCst`, paired with the capacity change (a `SeqCst` read-modify-write) made before a
    /// worker's load: either the waiter's attempt sees the room, or the worker sees the waiter.
    waiters: CachePadded<AtomicUsize>,
    /// Bumped by every signal that found a waiter: a waiter that sees it change between its
    /// admission attempt and its wait retries instead of waiting.
    epoch: AtomicU64,
    /// Held by a waiter from its epoch check until it is inside the wait, and by a signaller
    /// while it notifies; never while admitting.
    lock: Mutex<()>,
    /// Signalled (with `lock` held) when the pool may accept again: a worker became idle, a
    /// queued task was claimed, a thread exited, or shutdown began.
    signal: Condvar,
}

impl Capacity {
    pub(crate) fn new() -> Self {
        Self {
            waiters: CachePadded::new(AtomicUsize::new(0)),
            epoch: AtomicU64::new(0),
            lock: Mutex::new(()),
            signal: Condvar::new(),
        }
    }

    fn signal(&self, all: bool) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            let _guard = self.lock.lock();
            if all {
                self.signal.notify_all();
            } else {
                self.signal.notify_one();
            }
        }
    }
}

impl Shared {
    /// Wakes one caller blocked in [`admit_waiting`](Self::admit_waiting), if there is any.
    ///
    /// Called after the capacity change (a `SeqCst` read-modify-write). The `SeqCst` load pairs
    /// with the waiter's `SeqCst` increment made before it reads the epoch and tries to admit:
    /// either its attempt sees the capacity, or this load sees the waiter, bumps the epoch and
    /// notifies under the lock — which the waiter holds from its epoch check until it is inside
    /// the wait. The lock is never held while admitting, so a signal from inside an admission
    /// cannot deadlock.
    ///
    /// One unit of capacity wakes one waiter (thousands of IO threads may be waiting for a small
    /// CPU pool: waking them all for one slot would be a stampede). A waiter that leaves without
    /// taking capacity (its deadline passed) passes the signal on; shutdown wakes them all.
    #[inline]
    pub(crate) fn signal_capacity(&self) {
        self.capacity.signal(false);
    }

    /// Callers blocked in [`admit_waiting`](Self::admit_waiting) now.
    pub(crate) fn capacity_waiters(&self) -> usize {
        self.capacity.waiters.load(Ordering::Relaxed)
    }

    /// Wakes every waiting submitter (shutdown: they all leave with `Shutdown`).
    pub(crate) fn signal_capacity_all(&self) {
        self.capacity.signal(true);
    }

    /// Admits `job` (as CPU work when `cpu`: see `cpu.rs`), blocking while the pool is full,
    /// until `deadline` (forever without one).
    /// Returns the job when the deadline passes (`Busy`) or the pool shuts down (`Shutdown`).
    /// Counts the wait in `waited`; never counts a refusal (the caller does, if it hands the job
    /// back to its own caller).
    pub(crate) fn admit_waiting(
        this: &Arc<Self>,
        job: Job,
        deadline: Option<Instant>,
        cpu: bool,
    ) -> Result<(), (Job, RejectKind)> {
        let capacity = &this.capacity;
        capacity.waiters.fetch_add(1, Ordering::SeqCst);
        this.counters.waited.fetch_add(1, Ordering::Relaxed);
        let mut job = job;
        let result = loop {
            let epoch = capacity.epoch.load(Ordering::SeqCst);
            match Self::admit_as(this, job, cpu) {
                Ok(()) => break Ok(()),
                Err((back, RejectKind::Busy)) => {
                    job = back;
                    let left = match deadline {
                        Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                        None => Duration::from_secs(3600),
                    };
                    if left.is_zero() {
                        // a signal meant for this waiter may be lost with it: pass it on
                        capacity.waiters.fetch_sub(1, Ordering::SeqCst);
                        this.signal_capacity();
                        return Err((job, RejectKind::Busy));
                    }
                    let mut guard = capacity.lock.lock();
                    if capacity.epoch.load(Ordering::SeqCst) == epoch {
                        crate::loom::wait_timeout(&capacity.signal, &mut guard, left);
                    }
                }
                Err(other) => break Err(other),
            }
        };
        capacity.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

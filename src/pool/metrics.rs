//! What a pool counts ([`Counters`]) and the snapshot it reports ([`ThreadPoolMetrics`]).
//!
//! The pool counts only what it does itself: admissions, refusals, thread starts and exits,
//! wake-ups, waits for capacity, and how its tasks ended. What schedulers do on top of it (runs
//! on the caller's thread, flow hops, CPU_LIGHT overruns) is counted by them.

use crossbeam_utils::CachePadded;

use super::Shared;
use crate::loom::{AtomicU64, AtomicUsize, Ordering};
use crate::task::Tally;

/// Event counters. All only grow and are `Relaxed` (statistics, not synchronisation), except
/// that the shutdown report reads them `SeqCst` in a fixed order (see `shutdown.rs`).
/// Submit-side and worker-side counters sit on different cache lines.
#[derive(Default)]
pub(crate) struct Counters {
    /// Tasks accepted. Incremented before the task is pushed (or its thread spawned), so every
    /// task counted in `tally` was counted here first.
    pub(crate) submitted: CachePadded<AtomicU64>,
    /// Submissions refused for good ([`Shared::count_rejected`]).
    pub(crate) rejected: AtomicU64,
    /// Threads the OS or the spawn handler refused, before or after promising them.
    pub(crate) spawn_failures: AtomicU64,
    /// How tasks ended: counted by each job before it publishes its outcome (`task/report.rs`).
    pub(crate) tally: Tally,
    /// Threads that began running the worker loop.
    pub(crate) threads_started: AtomicU64,
    pub(crate) threads_retired: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) peak_threads: AtomicUsize,
    /// Submissions that waited for this pool to accept them ([`Shared::admit_waiting`]).
    pub(crate) waited: AtomicU64,
}

/// A snapshot of one pool's gauges and counters, taken without stopping the pool.
///
/// Gauges (`threads`, `idle`, `active`, `queued`) are read one after the other while the pool
/// runs, so they are individually exact but may not add up at a single instant. Counters only
/// grow. `completed` counts tasks that ran to their end, including those that panicked
/// (`panicked` is a subset of `completed`). Once a task's handle has returned its outcome
/// (`join`, or the future was ready), `completed`, `panicked` and `cancelled` include it — except
/// a task cancelled through its own handle, which is counted when the pool drops it from its
/// queue (at once if a thread reaches it, at the latest at shutdown).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadPoolMetrics {
    /// The pool's name (the thread-name prefix).
    pub name: String,
    /// Threads that never retire.
    pub core_size: usize,
    /// Most threads the pool may have.
    pub max_size: usize,
    /// Tasks that may wait in the queue when no thread is idle.
    pub queue_size: usize,
    /// Threads alive (or being started) now.
    pub threads: usize,
    /// Threads without a task now.
    pub idle: usize,
    /// Threads running a task now.
    pub active: usize,
    /// Tasks accepted and waiting for a thread now.
    pub queued: usize,
    /// Tasks accepted since the pool started.
    pub submitted: u64,
    /// Tasks that ran to their end (panicked or not).
    pub completed: u64,
    /// Tasks that never ran: cancelled through their handle, or by the pool at shutdown (or
    /// because the thread started for them was dropped unrun by a spawn handler).
    pub cancelled: u64,
    /// Submissions refused for good: the work went back to the caller (pool full, thread
    /// refused by the OS, or shut down). A submission that waited and was then accepted is not
    /// counted.
    pub rejected: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Threads the OS (or the spawn handler) refused to start, or that a spawn handler dropped
    /// unrun after promising them.
    pub spawn_failures: u64,
    /// Most threads alive at once.
    pub peak_threads: usize,
    /// Threads started since the pool was built.
    pub threads_started: u64,
    /// Threads that retired after their keep-alive.
    pub threads_retired: u64,
    /// Parked threads woken by a submission (at most one per accepted task; none while an awake
    /// idle thread can take the task).
    pub wakeups: u64,
    /// Submissions that had to wait for this pool to accept them (through a scheduler whose
    /// caller may wait).
    pub waited: u64,
}

impl Shared {
    pub(crate) fn metrics(&self) -> ThreadPoolMetrics {
        let state = self.state.load();
        let threads = self.threads.load(Ordering::Relaxed);
        let c = &self.counters;
        ThreadPoolMetrics {
            name: self.name.clone(),
            core_size: self.spec.core_size,
            max_size: self.spec.max_size,
            queue_size: self.spec.queue_size,
            threads,
            idle: state.idle(),
            active: threads.saturating_sub(state.idle()),
            queued: state.pending(),
            submitted: c.submitted.load(Ordering::Relaxed),
            completed: c.tally.completed.load(Ordering::Relaxed),
            cancelled: c.tally.cancelled.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            panicked: c.tally.panicked.load(Ordering::Relaxed),
            spawn_failures: c.spawn_failures.load(Ordering::Relaxed),
            peak_threads: c.peak_threads.load(Ordering::Relaxed),
            threads_started: c.threads_started.load(Ordering::Relaxed),
            threads_retired: c.threads_retired.load(Ordering::Relaxed),
            wakeups: c.wakeups.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
        }
    }
}

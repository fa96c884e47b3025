//! Graceful shutdown with a deadline, and the report that accounts for every accepted task.
//!
//! 1. Set `SHUTDOWN` in the admission word: from that read-modify-write on, no task is admitted
//!    (a growth in flight either sees the flag or is waited for, see `Shared::grow`).
//! 2. Wake every sleeper. Idle workers drain the queues; a worker exits once it is idle and
//!    nothing is pending.
//! 3. Wait until every thread has exited, or the deadline (but see "Who waits for whom").
//! 4. At the deadline, set `aborting`: workers cancel instead of run what they claim next, and the
//!    caller drains the injector and every worker deque, cancelling each task. If instead every
//!    thread exited, anything still queued (tasks admitted on the strength of a thread that a
//!    spawn handler accepted and then dropped) is drained and cancelled the same way.
//! 5. Report: counters are read `completed`, `cancelled`, then `submitted`, so every task counted
//!    finished was counted submitted first and `still_running` never underflows.
//!
//! ## Who waits for whom
//!
//! A shutdown waits for threads, and a thread may itself be waiting in a shutdown: two tasks
//! of one pool that each shut it down, or a task of pool A shutting down B while a task of B
//! shuts down A. Each would wait for the other until the deadline (forever without one). The
//! rule that breaks every such cycle:
//!
//! - A pool thread that waits in a shutdown (of any pool) is marked as waiting in its own
//!   pool's `Exits::in_shutdown_wait` for as long as it waits.
//! - A shutdown called *from a pool thread* does not wait for threads so marked (the caller's
//!   own thread included, when it shuts down its own pool): it returns once every other thread
//!   has exited, and reports the marked threads' tasks as `still_running`.
//!
//! A wait-for cycle would need a waiting shutdown to wait for a thread that is itself waiting
//! in a shutdown; a pool thread's shutdown never does, and a shutdown called from outside every
//! pool cannot be waited for by anyone, so no cycle can form. A marked thread is not abandoned:
//! its task goes on once its own shutdown call returns, and the thread exits as usual.

use std::time::{Duration, Instant};

use super::{Shared, worker};
use crate::loom::{Arc, Ordering};

/// What a shutdown did with the tasks the pool had accepted.
///
/// Every accepted task is in exactly one of `completed`, `cancelled` and `still_running`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks that ran to their end (including `panicked` ones).
    pub completed: u64,
    /// Tasks that never ran: cancelled through their handle, or at the deadline.
    pub cancelled: u64,
    /// Tasks still running when the report was made (the deadline passed first).
    pub still_running: u64,
    /// Tasks that panicked (a subset of `completed`).
    pub panicked: u64,
    /// `true` if the deadline passed before every thread exited.
    pub timed_out: bool,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Tasks accepted in all: `completed + cancelled + still_running`.
    pub fn accepted(&self) -> u64 {
        self.completed + self.cancelled + self.still_running
    }

    /// Adds another report's figures to this one (the service sums its pools).
    pub fn merge(&mut self, other: &ShutdownReport) {
        self.completed += other.completed;
        self.cancelled += other.cancelled;
        self.still_running += other.still_running;
        self.panicked += other.panicked;
        self.timed_out |= other.timed_out;
        self.elapsed = self.elapsed.max(other.elapsed);
    }
}

impl Shared {
    /// Stops admissions and wakes every sleeper and every waiting submitter; does not wait.
    pub(crate) fn begin_shutdown(&self) {
        if self.state.set_shutdown() {
            tracing::debug!(pool = %self.name, "shutdown requested");
        }
        self.sleep.wake_all(&self.state);
        self.signal_capacity_all();
    }

    pub(crate) fn shutdown(this: &Arc<Self>, timeout: Duration) -> ShutdownReport {
        let started = Instant::now();
        let deadline = started.checked_add(timeout);
        this.begin_shutdown();

        // The calling thread's own pool, if it is a pool thread, and its number there.
        let caller = worker::with_current(|ctx| ctx.map(|ctx| (ctx.shared.clone(), ctx.seq)));
        let me = caller
            .as_ref()
            .filter(|(own, _)| Arc::ptr_eq(own, this))
            .map(|(_, seq)| *seq);
        // Marked while it waits: shutdowns called from other pool threads do not wait for it.
        let _mark = caller.as_ref().map(|(own, _)| WaitingMark::new(own));
        let from_pool_thread = caller.is_some();

        let mut timed_out = false;
        let left_running = {
            let mut exits = this.exits.lock();
            loop {
                let threads = this.threads.load(Ordering::SeqCst);
                // Threads not waited for: those waiting in a shutdown (the caller's own thread
                // among them, if it is one of this pool's), when the caller is a pool thread.
                let exempt = if from_pool_thread {
                    exits.in_shutdown_wait
                } else {
                    0
                };
                if threads <= exempt {
                    break threads;
                }
                let left = match deadline {
                    Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if left.is_zero() {
                    timed_out = true;
                    break threads;
                }
                crate::loom::wait_timeout(&this.exit_signal, &mut exits, left);
            }
        };

        if timed_out {
            this.aborting.store(true, Ordering::SeqCst);
            let drained = this.drain_and_cancel();
            tracing::warn!(
                pool = %this.name,
                drained,
                "shutdown grace period ended; queued tasks cancelled"
            );
        } else if left_running == 0 {
            // No thread is left to run what is still queued (tasks admitted on the strength of
            // a thread that never came): it never runs.
            let drained = this.drain_and_cancel();
            if drained > 0 {
                tracing::warn!(
                    pool = %this.name,
                    drained,
                    "tasks left queued with no thread to run them were cancelled"
                );
            }
        }

        // Every thread but the caller's has exited: join them all. Otherwise join those that have.
        let only_me_left = left_running <= usize::from(me.is_some());
        this.join_exited(me, !timed_out && only_me_left);

        let completed = this.counters.tally.completed.load(Ordering::SeqCst);
        let cancelled = this.counters.tally.cancelled.load(Ordering::SeqCst);
        let panicked = this.counters.tally.panicked.load(Ordering::SeqCst);
        let submitted = this.counters.submitted.load(Ordering::SeqCst);
        ShutdownReport {
            completed,
            cancelled,
            still_running: submitted.saturating_sub(completed + cancelled),
            panicked,
            timed_out,
            elapsed: started.elapsed(),
        }
    }

    /// Cancels every task still in a queue. Returns how many. Each is counted before it is
    /// cancelled (its handle resolves in the cancel), and a panic from user code dropped with
    /// it is contained by the job.
    fn drain_and_cancel(&self) -> u64 {
        let mut drained = 0;
        loop {
            let job = self.injector.pop().or_else(|| self.steal_any(None));
            let Some(job) = job else { break };
            self.state.drop_pending();
            self.counters.tally.count_cancelled();
            job.cancel();
            drained += 1;
        }
        drained
    }
}

/// Marks a pool thread as waiting inside a shutdown, in its own pool's `Exits`, for as long as
/// the mark lives; shutdowns waiting for that pool are woken to notice.
struct WaitingMark<'a> {
    pool: &'a Shared,
}

impl<'a> WaitingMark<'a> {
    fn new(pool: &'a Shared) -> Self {
        let mut exits = pool.exits.lock();
        exits.in_shutdown_wait += 1;
        pool.exit_signal.notify_all();
        WaitingMark { pool }
    }
}

impl Drop for WaitingMark<'_> {
    fn drop(&mut self) {
        // No wake-up needed: one fewer exempt thread only makes waiters wait longer.
        self.pool.exits.lock().in_shutdown_wait -= 1;
    }
}

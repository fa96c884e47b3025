//! Graceful shutdown with a deadline, and the report that accounts for every accepted task.
//!
//! 1. Set `SHUTDOWN` in the admission word: from that read-modify-write on, no task is admitted
//!    (a growth in flight either sees the flag or is waited for, see `Shared::grow`).
//! 2. Wake every sleeper. Idle workers drain the queues; a worker exits once it is idle and
//!    nothing is pending.
//! 3. Wait until every thread has exited, or the deadline.
//! 4. At the deadline, set `aborting`: workers cancel instead of run what they claim next, and the
//!    caller drains the injector and every worker deque, cancelling each task.
//! 5. Report: counters are read `completed`, `cancelled`, then `submitted`, so every task counted
//!    finished was counted submitted first and `still_running` never underflows.

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

        // A pool thread shutting down its own pool cannot wait for itself.
        let me = worker::with_current(|ctx| {
            ctx.filter(|ctx| Arc::ptr_eq(&ctx.shared, this))
                .map(|ctx| ctx.seq)
        });
        let allowed = usize::from(me.is_some());

        let mut timed_out = false;
        {
            let mut exits = this.exits.lock();
            while this.threads.load(Ordering::SeqCst) > allowed {
                let left = match deadline {
                    Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if left.is_zero() {
                    timed_out = true;
                    break;
                }
                // Wake sleepers again: a worker may have parked between the flag and our wake.
                crate::loom::wait_timeout(&this.exit_signal, &mut exits, left);
            }
        }

        if timed_out {
            this.aborting.store(true, Ordering::SeqCst);
            let drained = this.drain_and_cancel();
            tracing::warn!(
                pool = %this.name,
                drained,
                "shutdown grace period ended; queued tasks cancelled"
            );
        }

        this.join_exited(me, !timed_out);

        let completed = this.counters.completed.load(Ordering::SeqCst);
        let cancelled = this.counters.cancelled.load(Ordering::SeqCst);
        let panicked = this.counters.panicked.load(Ordering::SeqCst);
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

    /// Cancels every task still in a queue. Returns how many.
    fn drain_and_cancel(&self) -> u64 {
        let mut drained = 0;
        loop {
            let job = self.injector.pop().or_else(|| self.steal_any(None));
            let Some(job) = job else { break };
            self.state.drop_pending();
            job.cancel();
            self.counters.cancelled.fetch_add(1, Ordering::SeqCst);
            drained += 1;
        }
        drained
    }
}

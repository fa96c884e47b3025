//! How a pool counts the end of each task it runs: before the task's outcome is published.
//!
//! A caller whose `join` returned (or whose handle future was ready) must already find that task
//! in the pool's `completed`, `panicked` or `cancelled` counter. Counting after the run returns
//! is too late: the outcome was published inside the run, and the caller may read the counters
//! in between. So the job counts itself. The worker gives its top-level job a [`Report`] over the
//! pool's [`Tally`]; a job that publishes an outcome to a handle calls [`Report::count`] just
//! before it publishes. A job without a handle (fire and forget) is counted by the worker once it
//! returns. A report counts once — the first count wins — so a run is never counted twice.
//!
//! Why the order makes the count visible: the count is a (relaxed) increment made before the
//! outcome is stored under the task cell's slot lock, and the caller takes that lock (or reads
//! the cell's `COMPLETE` flag, released after the store) before it returns the outcome. The
//! increment therefore happens before the caller's later read of the counter, which sees it.
//!
//! Jobs run inline (on a submitting thread, inside another task) carry no report: the pool did
//! not run them.

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use super::RunOutcome;
use crate::loom::{AtomicU64, Ordering};

/// A pool's counts of how its tasks ended.
///
/// All three only grow, by relaxed increments: they are statistics, made visible to a task's
/// caller by the publication that follows them (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Tasks that ran to their end, panicked or not. On its own cache line: every task adds to
    /// it, and submitters write the pool's other hot counters.
    pub(crate) completed: CachePadded<AtomicU64>,
    /// Tasks that panicked (a subset of `completed`).
    pub(crate) panicked: AtomicU64,
    /// Tasks that never ran: cancelled through their handle, or by the pool at shutdown.
    pub(crate) cancelled: AtomicU64,
}

impl Tally {
    /// Counts one task's end.
    pub(crate) fn count(&self, outcome: &RunOutcome) {
        match outcome {
            RunOutcome::Completed => {
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            RunOutcome::Panicked(_) => {
                self.panicked.fetch_add(1, Ordering::Relaxed);
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            RunOutcome::Skipped => self.count_cancelled(),
        }
    }

    /// Counts one task the pool cancelled. The pool counts before it cancels, so the handle,
    /// resolved by the cancel, sees the count.
    pub(crate) fn count_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }
}

/// The count of one top-level run: given by the worker to the job it runs.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    tally: &'a Tally,
    /// Set by the first count; later counts do nothing. Only the worker's thread touches it.
    counted: Cell<bool>,
}

impl<'a> Report<'a> {
    /// A report of one run into `tally`, not counted yet.
    pub(crate) fn new(tally: &'a Tally) -> Self {
        Self {
            tally,
            counted: Cell::new(false),
        }
    }

    /// Counts the run's outcome unless it was counted already. A job calls this just before it
    /// publishes its outcome; the worker calls it after the run returns.
    pub(crate) fn count(&self, outcome: &RunOutcome) {
        if !self.counted.replace(true) {
            self.tally.count(outcome);
        }
    }
}

/// Counts `outcome` in `report`, if the run has one.
pub(crate) fn count(report: Option<&Report<'_>>, outcome: &RunOutcome) {
    if let Some(report) = report {
        report.count(outcome);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn read(tally: &Tally) -> (u64, u64, u64) {
        (
            tally.completed.load(Ordering::Relaxed),
            tally.panicked.load(Ordering::Relaxed),
            tally.cancelled.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn each_outcome_goes_to_its_counter() {
        let tally = Tally::default();
        tally.count(&RunOutcome::Completed);
        tally.count(&RunOutcome::Panicked("p".into()));
        tally.count(&RunOutcome::Skipped);
        assert_eq!(read(&tally), (2, 1, 1), "a panic also completed");
    }

    #[test]
    fn a_report_counts_once() {
        let tally = Tally::default();
        let report = Report::new(&tally);
        report.count(&RunOutcome::Completed);
        report.count(&RunOutcome::Completed);
        report.count(&RunOutcome::Skipped);
        assert_eq!(read(&tally), (1, 0, 0));
        count(None, &RunOutcome::Completed);
        assert_eq!(read(&tally), (1, 0, 0), "no report, no count");
    }
}

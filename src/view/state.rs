//! The view word: one scheduler view's queued and running tasks and its shutdown flags, in one
//! atomic, with the wait for "every task of the view has left".
//!
//! Layout, low bits first:
//!
//! | bits    | field     | meaning                                                             |
//! |---------|-----------|---------------------------------------------------------------------|
//! | 0..31   | `queued`  | tasks accepted by the view and not started: offered to the pool, held by the gate, waiting for a retry or a delayed task's time |
//! | 31..62  | `running` | tasks of the view running now (on a pool thread or inline)          |
//! | 62      | `SHUT`    | the view accepts no more tasks (set by `shutdown`, never cleared)   |
//! | 63      | `NOW`     | `shutdown_now`: queued tasks are discarded instead of started (implies `SHUT`) |
//!
//! Transitions, each one read-modify-write:
//! - [`ViewWord::try_enter`]: `queued + 1`, refused (nothing counted) once `SHUT` is set;
//! - [`ViewWord::leave_queued`]: `queued - 1` (refused, cancelled, or discarded unrun);
//! - [`ViewWord::start`]: `queued - 1, running + 1`; refused under `NOW`, the word unchanged (the
//!   caller discards the task, gives its slot back, then leaves the queue);
//! - [`ViewWord::finish`]: `running - 1`;
//! - [`ViewWord::shut`]: sets `SHUT` (and `NOW`).
//!
//! Why a task is never counted after shutdown and a shutdown never misses one: `try_enter` and
//! `shut` are RMWs of the same word, so one comes first in its modification order; if `shut`
//! does, the entry sees `SHUT` and counts nothing, otherwise the shutdown's waiter sees the task
//! in `queued` and waits for it. Every RMW is `AcqRel` and every load `Acquire`: the word's own
//! modification order is all the protocol compares, nothing stronger is needed.
//!
//! Waiting for idle: a waiter (`Scheduler::stop`) re-checks the word under `idle_lock` before it
//! sleeps, and every transition that leaves a shut view with at most one task outstanding takes
//! that lock and notifies. At most one, not zero: a task of the view that stops its own view
//! waits for every task but itself (`excluding` = 1), and must be woken when only it is left.

use std::time::Instant;

use crate::loom::{AtomicU64, Condvar, Mutex, Ordering};

const QUEUED_ONE: u64 = 1;
const QUEUED_MASK: u64 = (1 << 31) - 1;
const RUNNING_SHIFT: u32 = 31;
const RUNNING_ONE: u64 = 1 << RUNNING_SHIFT;
const RUNNING_MASK: u64 = ((1 << 31) - 1) << RUNNING_SHIFT;
const SHUT: u64 = 1 << 62;
const NOW: u64 = 1 << 63;

/// A decoded copy of the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    /// Tasks accepted and not started.
    pub(crate) fn queued(self) -> u64 {
        self.0 & QUEUED_MASK
    }

    /// Tasks running now.
    pub(crate) fn running(self) -> u64 {
        (self.0 & RUNNING_MASK) >> RUNNING_SHIFT
    }

    /// The view accepts no more tasks.
    pub(crate) fn is_shut(self) -> bool {
        self.0 & SHUT != 0
    }

    /// The view was shut down with `shutdown_now`: queued tasks are discarded.
    pub(crate) fn is_now(self) -> bool {
        self.0 & NOW != 0
    }

    /// Tasks queued or running.
    pub(crate) fn outstanding(self) -> u64 {
        self.queued() + self.running()
    }
}

/// Which shutdown [`ViewWord::shut`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shut {
    /// `shutdown`: no new tasks; queued ones still start.
    Graceful,
    /// `shutdown_now`: no new tasks; queued ones are discarded when they would start.
    Now,
}

/// The view word and the wait for idle.
#[derive(Debug)]
pub(crate) struct ViewWord {
    word: AtomicU64,
    /// Held by a waiter from its check of the word until it sleeps, and by a notifier.
    idle_lock: Mutex<()>,
    /// Signalled when a shut view has at most one task outstanding.
    idle_signal: Condvar,
}

impl ViewWord {
    pub(crate) fn new() -> Self {
        ViewWord {
            word: AtomicU64::new(0),
            idle_lock: Mutex::new(()),
            idle_signal: Condvar::new(),
        }
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.word.load(Ordering::Acquire))
    }

    /// Applies `f` until it succeeds or declines; returns the state before.
    fn update(&self, mut f: impl FnMut(Snapshot) -> Option<u64>) -> Result<Snapshot, Snapshot> {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let Some(next) = f(Snapshot(current)) else {
                return Err(Snapshot(current));
            };
            match self.word.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Snapshot(current)),
                Err(actual) => current = actual,
            }
        }
    }

    /// A task enters as queued. `false`, with nothing counted, once the view is shut.
    pub(crate) fn try_enter(&self) -> bool {
        self.update(|s| {
            debug_assert!(s.queued() < QUEUED_MASK, "queued count overflow");
            (!s.is_shut()).then_some(s.0 + QUEUED_ONE)
        })
        .is_ok()
    }

    /// A queued task leaves without running (refused, cancelled, or discarded).
    pub(crate) fn leave_queued(&self) {
        let before = Snapshot(self.word.fetch_sub(QUEUED_ONE, Ordering::AcqRel));
        debug_assert!(before.queued() > 0, "a task leaves the queue once");
        self.notify_if_nearly_idle(Snapshot(before.0 - QUEUED_ONE));
    }

    /// A queued task starts: `true`, now counted running; `false` under `NOW`, with the word
    /// unchanged: the caller discards the task, gives back what it holds (its gate slot) and
    /// only then calls [`leave_queued`](Self::leave_queued), so that a view seen idle holds
    /// nothing any more.
    pub(crate) fn start(&self) -> bool {
        self.update(|s| {
            debug_assert!(s.queued() > 0, "only a queued task starts");
            (!s.is_now()).then(|| s.0 - QUEUED_ONE + RUNNING_ONE)
        })
        .is_ok()
    }

    /// A running task ends (returned or panicked).
    pub(crate) fn finish(&self) {
        let before = Snapshot(self.word.fetch_sub(RUNNING_ONE, Ordering::AcqRel));
        debug_assert!(before.running() > 0, "a task finishes once");
        self.notify_if_nearly_idle(Snapshot(before.0 - RUNNING_ONE));
    }

    /// Shuts the view; returns the state before, so the caller knows whether this call was the
    /// first and how many tasks were queued.
    pub(crate) fn shut(&self, how: Shut) -> Snapshot {
        let flags = match how {
            Shut::Graceful => SHUT,
            Shut::Now => SHUT | NOW,
        };
        let before = Snapshot(self.word.fetch_or(flags, Ordering::AcqRel));
        self.notify_if_nearly_idle(Snapshot(before.0 | flags));
        before
    }

    fn notify_if_nearly_idle(&self, after: Snapshot) {
        if after.is_shut() && after.outstanding() <= 1 {
            let _guard = self.idle_lock.lock();
            self.idle_signal.notify_all();
        }
    }

    /// Waits until the view is shut and at most `excluding` of its tasks (the caller's own, when
    /// a task of the view waits) are outstanding, or until `deadline`. `true` if it got there.
    pub(crate) fn wait_idle(&self, excluding: u64, deadline: Option<Instant>) -> bool {
        let mut guard = self.idle_lock.lock();
        loop {
            let state = self.load();
            if state.is_shut() && state.outstanding() <= excluding {
                return true;
            }
            match deadline {
                None => self.idle_signal.wait(&mut guard),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    crate::loom::wait_timeout(&self.idle_signal, &mut guard, left);
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_task_enters_starts_and_finishes() {
        let view = ViewWord::new();
        assert!(view.try_enter());
        assert_eq!((view.load().queued(), view.load().running()), (1, 0));
        assert!(view.start());
        assert_eq!((view.load().queued(), view.load().running()), (0, 1));
        view.finish();
        assert_eq!(view.load().outstanding(), 0);
    }

    #[test]
    fn a_shut_view_refuses_entries_and_counts_nothing() {
        let view = ViewWord::new();
        let before = view.shut(Shut::Graceful);
        assert!(!before.is_shut());
        assert!(!view.try_enter());
        assert_eq!(view.load().outstanding(), 0);
        assert!(
            view.shut(Shut::Graceful).is_shut(),
            "a second shut sees the first"
        );
    }

    #[test]
    fn a_graceful_shutdown_still_starts_queued_tasks() {
        let view = ViewWord::new();
        assert!(view.try_enter());
        view.shut(Shut::Graceful);
        assert!(view.start());
        view.finish();
        assert!(view.wait_idle(0, Some(Instant::now())));
    }

    #[test]
    fn shutdown_now_discards_queued_tasks_when_they_would_start() {
        let view = ViewWord::new();
        assert!(view.try_enter());
        assert!(view.try_enter());
        assert!(view.start());
        let before = view.shut(Shut::Now);
        assert_eq!((before.queued(), before.running()), (1, 1));
        assert!(!view.start(), "the queued task is discarded");
        assert_eq!(
            view.load().queued(),
            1,
            "still queued until the caller leaves"
        );
        view.leave_queued();
        assert_eq!((view.load().queued(), view.load().running()), (0, 1));
        assert!(view.load().is_now() && view.load().is_shut());
        view.finish();
    }

    #[test]
    fn leave_queued_undoes_an_entry() {
        let view = ViewWord::new();
        assert!(view.try_enter());
        view.leave_queued();
        assert_eq!(view.load(), Snapshot(0));
    }

    #[test]
    fn the_fields_do_not_bleed_into_each_other() {
        let view = ViewWord::new();
        let many = 1000;
        for _ in 0..many {
            assert!(view.try_enter());
        }
        for _ in 0..many {
            assert!(view.start());
        }
        let state = view.load();
        assert_eq!((state.queued(), state.running()), (0, many));
        assert!(!state.is_shut() && !state.is_now());
        for _ in 0..many {
            view.finish();
        }
        assert_eq!(view.load(), Snapshot(0));
    }

    #[test]
    fn wait_idle_gives_up_at_its_deadline_and_excludes_the_caller() {
        let view = ViewWord::new();
        assert!(view.try_enter());
        assert!(view.start());
        view.shut(Shut::Graceful);
        assert!(
            !view.wait_idle(0, Some(Instant::now())),
            "one task still runs"
        );
        assert!(view.wait_idle(1, None), "the caller's own task is excluded");
    }

    #[test]
    fn wait_idle_returns_when_the_last_task_finishes() {
        let view = std::sync::Arc::new(ViewWord::new());
        assert!(view.try_enter());
        assert!(view.start());
        view.shut(Shut::Graceful);
        let finisher = {
            let view = view.clone();
            std::thread::spawn(move || view.finish())
        };
        assert!(view.wait_idle(0, None));
        finisher.join().unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{Arc, thread};

    /// A task entering races a shutdown and its wait: either the entry is refused, or the
    /// waiter returns only after the task finished (waits are untimed under loom, so a missed
    /// notification is a deadlock the model reports).
    #[test]
    fn loom_a_shutdown_waits_for_every_task_that_entered() {
        crate::loom::model(3, || {
            let view = Arc::new(ViewWord::new());
            let submitter = {
                let view = view.clone();
                thread::spawn(move || {
                    if view.try_enter() {
                        if view.start() {
                            view.finish();
                        } else {
                            view.leave_queued();
                        }
                        true
                    } else {
                        false
                    }
                })
            };
            view.shut(Shut::Graceful);
            assert!(view.wait_idle(0, None));
            assert_eq!(view.load().outstanding(), 0, "nothing left once idle");
            submitter.join().unwrap();
        });
    }

    /// `shutdown_now` racing a start: the task either runs (counted running, then finished) or
    /// is discarded; the waiter is woken either way.
    #[test]
    fn loom_shutdown_now_racing_a_start_never_strands_the_waiter() {
        crate::loom::model(3, || {
            let view = Arc::new(ViewWord::new());
            assert!(view.try_enter());
            let worker = {
                let view = view.clone();
                thread::spawn(move || {
                    let ran = view.start();
                    if ran {
                        view.finish();
                    } else {
                        view.leave_queued();
                    }
                    ran
                })
            };
            view.shut(Shut::Now);
            assert!(view.wait_idle(0, None));
            let _ = worker.join().unwrap();
            assert_eq!(view.load().outstanding(), 0);
        });
    }
}

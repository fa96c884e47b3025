//! The task cell's state word: who claimed the task (its runner or a canceller), whether its
//! outcome is published, and whether the handle has taken it.
//!
//! One `AtomicUsize` per task cell. A task starts with no flag set (queued). Flags are only ever
//! added, never cleared, so every word a thread reads is a later state than any it read before.
//!
//! | bit | flag        | means                                   | set by                                   | excludes / needs        |
//! |-----|-------------|-----------------------------------------|------------------------------------------|-------------------------|
//! | 0   | `RUNNING`   | claimed to run: the closure runs once   | the runner: [`State::claim_run`] (a pool worker, an inline run, a completer's `start` or first `complete`) | excludes `CANCELLED` |
//! | 1   | `CANCELLED` | claimed never to run                    | a canceller: [`State::claim_cancel`] (the handle's `cancel`, the pool at shutdown, a job dropped or taken back unrun, a completer dropped unstarted) | excludes `RUNNING` |
//! | 2   | `COMPLETE`  | the outcome is in the slot (or was)     | the party that claimed the task, under the slot lock, right after it stored the outcome: [`State::complete`] | needs `RUNNING` or `CANCELLED` |
//! | 3   | `CLOSED`    | the handle took the outcome             | the handle, under the slot lock, as it takes the outcome: [`State::close`] | needs `COMPLETE` |
//!
//! Why four flags and not one "done" value: a claim and its publication are two steps. A
//! canceller wins the claim by compare-and-swap *outside* the slot lock, and stores the outcome
//! under the lock afterwards. A handle polled in between finds no outcome and a claimed task: it
//! must wait for the outcome (register its waker), not conclude that it already took it. Only
//! `CLOSED`, which the handle sets itself, says that; a poll after `CLOSED` is a caller's bug.
//!
//! `COMPLETE` and `CLOSED` change only with the slot lock held, so under that lock the word and
//! the slot agree: `COMPLETE` without `CLOSED` ⇔ an outcome waits in the slot.

use crate::loom::{AtomicUsize, Ordering};

/// Claimed to run (see the module table).
const RUNNING: usize = 1 << 0;
/// Claimed never to run.
const CANCELLED: usize = 1 << 1;
/// The outcome is published in the slot.
const COMPLETE: usize = 1 << 2;
/// The handle took the outcome.
const CLOSED: usize = 1 << 3;

/// A decoded copy of the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    /// Nobody has claimed the task yet: it may still run or be cancelled.
    pub(crate) fn is_queued(self) -> bool {
        self.0 & (RUNNING | CANCELLED) == 0
    }
    /// The runner claimed the task.
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    /// A canceller claimed the task: it never runs.
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    /// The outcome has been published: a join does not block.
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    /// The handle took the outcome.
    pub(crate) fn is_closed(self) -> bool {
        self.0 & CLOSED != 0
    }
    /// A word for [`TaskHandle`](super::TaskHandle)'s `Debug`.
    pub(crate) fn describe(self) -> &'static str {
        if self.is_queued() {
            "queued"
        } else if self.is_cancelled() {
            "cancelled"
        } else if self.is_complete() {
            "done"
        } else {
            "running"
        }
    }
}

/// The state word of one task cell.
#[derive(Debug)]
pub(crate) struct State(AtomicUsize);

impl State {
    /// A queued task: no flag set.
    pub(crate) fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// Reads the word. `Acquire` pairs with [`complete`](Self::complete)'s `Release`: a reader
    /// that sees `COMPLETE` finds the outcome when it takes the slot lock.
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// Queued → running. `true` if this call won the task; `false` if it was claimed before (to
    /// run or to be cancelled). Exactly one of all `claim_run` and `claim_cancel` calls on a
    /// cell succeeds.
    ///
    /// `AcqRel`: the winner's claim is ordered after everything the loser did before it lost,
    /// and nothing is carried through this word alone (outcomes go through the slot lock).
    pub(crate) fn claim_run(&self) -> bool {
        self.claim(RUNNING)
    }

    /// Queued → cancelled. `true` if this call won the task; it must then publish
    /// `Cancelled` ([`complete`](Self::complete)). See [`claim_run`](Self::claim_run).
    pub(crate) fn claim_cancel(&self) -> bool {
        self.claim(CANCELLED)
    }

    fn claim(&self, flag: usize) -> bool {
        self.0
            .compare_exchange(0, flag, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Claimed → complete: the outcome has just been stored in the slot.
    ///
    /// Precondition: the caller claimed the task (or, for a runner that lost to nobody, holds
    /// its claim), holds the slot lock, and no outcome was published before. `Release`, so a
    /// reader of [`load`](Self::load) that sees the flag sees the task finished.
    pub(crate) fn complete(&self) {
        let before = self.0.fetch_or(COMPLETE, Ordering::Release);
        debug_assert!(
            before & (RUNNING | CANCELLED) != 0,
            "an outcome is published only for a claimed task"
        );
        debug_assert!(before & COMPLETE == 0, "an outcome is published once");
    }

    /// Complete → closed: the handle has just taken the outcome out of the slot.
    ///
    /// Precondition: the caller is the handle and holds the slot lock, and the flag is set
    /// after the take. `Relaxed`: the flag is read only by the handle itself (under that lock).
    pub(crate) fn close(&self) {
        let before = self.0.fetch_or(CLOSED, Ordering::Relaxed);
        debug_assert!(
            before & COMPLETE != 0,
            "the handle takes only a published outcome"
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_new_task_is_queued_and_nothing_else() {
        let s = State::new().load();
        assert!(s.is_queued());
        assert!(!s.is_running() && !s.is_cancelled() && !s.is_complete() && !s.is_closed());
        assert_eq!(s.describe(), "queued");
    }

    #[test]
    fn claim_run_wins_once_and_excludes_cancel() {
        let state = State::new();
        assert!(state.claim_run());
        assert!(!state.claim_run(), "a task runs once");
        assert!(!state.claim_cancel(), "a running task cannot be cancelled");
        let s = state.load();
        assert!(s.is_running() && !s.is_cancelled() && !s.is_queued());
        assert_eq!(s.describe(), "running");
    }

    #[test]
    fn claim_cancel_wins_once_and_excludes_run() {
        let state = State::new();
        assert!(state.claim_cancel());
        assert!(!state.claim_cancel(), "one canceller wins");
        assert!(!state.claim_run(), "a cancelled task never runs");
        let s = state.load();
        assert!(s.is_cancelled() && !s.is_running() && !s.is_complete());
        assert_eq!(s.describe(), "cancelled");
    }

    #[test]
    fn complete_keeps_the_claim() {
        let state = State::new();
        state.claim_run();
        state.complete();
        let s = state.load();
        assert!(s.is_running() && s.is_complete() && !s.is_closed());
        assert_eq!(s.describe(), "done");

        let state = State::new();
        state.claim_cancel();
        state.complete();
        let s = state.load();
        assert!(s.is_cancelled() && s.is_complete());
        assert_eq!(s.describe(), "cancelled");
    }

    #[test]
    fn close_follows_complete() {
        let state = State::new();
        state.claim_cancel();
        state.complete();
        state.close();
        let s = state.load();
        assert!(s.is_cancelled() && s.is_complete() && s.is_closed());
    }

    /// The race behind a poll that used to panic: a canceller's claim is visible before its
    /// outcome. The handle must read "claimed, not complete, not closed" as "wait".
    #[test]
    fn a_claimed_task_without_an_outcome_is_not_closed() {
        let state = State::new();
        state.claim_cancel();
        let s = state.load();
        assert!(!s.is_complete() && !s.is_closed());
    }

    #[test]
    fn flags_do_not_bleed_into_each_other() {
        for (flag, name) in [
            (RUNNING, "running"),
            (CANCELLED, "cancelled"),
            (COMPLETE, "complete"),
            (CLOSED, "closed"),
        ] {
            let s = Snapshot(flag);
            let seen = [
                s.is_running(),
                s.is_cancelled(),
                s.is_complete(),
                s.is_closed(),
            ];
            assert_eq!(seen.iter().filter(|b| **b).count(), 1, "{name}");
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "only for a claimed task")]
    fn completing_an_unclaimed_task_is_a_bug() {
        State::new().complete();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "published once")]
    fn completing_twice_is_a_bug() {
        let state = State::new();
        state.claim_run();
        state.complete();
        state.complete();
    }
}

/// loom model of the word alone: a runner and a canceller race for the claim; the winner
/// publishes once. Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::State;
    use crate::loom::{Arc, thread};

    #[test]
    fn loom_task_word_one_claim_one_publication() {
        crate::loom::model(3, || {
            let state = Arc::new(State::new());
            let racer = |run: bool| {
                let state = state.clone();
                thread::spawn(move || {
                    let won = if run {
                        state.claim_run()
                    } else {
                        state.claim_cancel()
                    };
                    if won {
                        state.complete();
                    }
                    won
                })
            };
            let (runner, canceller) = (racer(true), racer(false));
            let ran = runner.join().unwrap();
            let cancelled = canceller.join().unwrap();
            assert!(ran ^ cancelled, "exactly one claim wins");
            let s = state.load();
            assert!(s.is_complete() && !s.is_closed());
            assert_eq!((s.is_running(), s.is_cancelled()), (ran, cancelled));
        });
    }
}

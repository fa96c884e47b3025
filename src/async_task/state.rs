//! The poll/wake word of an async task: who may poll the future, and who must submit the next
//! poll, so that the future is polled by one thread at a time and no wake is lost.
//!
//! States (one value at a time, in an `AtomicUsize`):
//!
//! | state       | meaning                                           | set by                      |
//! |-------------|---------------------------------------------------|-----------------------------|
//! | `IDLE`      | the future waits for a wake; no poll is queued    | a poll that returned `Pending` |
//! | `SCHEDULED` | one poll is queued (or being offered to the pool) | spawn; a wake from `IDLE`; a poll woken while it ran |
//! | `RUNNING`   | a thread is polling the future now                | the queued poll, as it starts |
//! | `NOTIFIED`  | woken while `RUNNING`: poll again when this ends  | a wake during a poll        |
//! | `DONE`      | the future finished, panicked or was cancelled    | completion (final)          |
//!
//! Transitions and who acts on them:
//! - [`PollState::begin_poll`] `SCHEDULED → RUNNING`; refused in `DONE` (the poll is dropped);
//! - [`PollState::end_poll`] `RUNNING → IDLE`, or `NOTIFIED → SCHEDULED` — then the polling
//!   thread submits the next poll itself;
//! - [`PollState::wake`] `IDLE → SCHEDULED` — then the waking thread submits the poll; or
//!   `RUNNING → NOTIFIED`; nothing in `SCHEDULED`, `NOTIFIED` or `DONE` (a poll is coming, or
//!   none is needed);
//! - [`PollState::complete`] anything `→ DONE`.
//!
//! Exactly one thread submits each poll (the one whose transition entered `SCHEDULED`), and a
//! poll runs only after `SCHEDULED → RUNNING`, so polls never overlap. A wake is never lost: it
//! either finds a poll still to come (`SCHEDULED`, `NOTIFIED`), turns the poll in progress into
//! one more (`RUNNING → NOTIFIED`), or schedules one (`IDLE`). The future itself is handed
//! between threads under a mutex, so the word only decides; every transition — a wake's too,
//! even when it leaves the state as it is — is a compare-exchange with `AcqRel`: read-modify-
//! writes read the latest state, which orders a wake before the poll it causes.

use crate::loom::{AtomicUsize, Ordering};

const IDLE: usize = 0;
const SCHEDULED: usize = 1;
const RUNNING: usize = 2;
const NOTIFIED: usize = 3;
const DONE: usize = 4;

/// What a poll that returned `Pending` must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterPoll {
    /// Nothing: the next wake schedules the next poll.
    Idle,
    /// Woken while polling: submit the next poll now.
    PollAgain,
}

/// The word.
#[derive(Debug)]
pub(crate) struct PollState(AtomicUsize);

impl PollState {
    /// A spawned task: its first poll is being submitted.
    pub(crate) fn scheduled() -> Self {
        PollState(AtomicUsize::new(SCHEDULED))
    }

    fn transition(&self, from: usize, to: usize) -> Result<(), usize> {
        self.0
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    /// A queued poll starts: `SCHEDULED → RUNNING`. `false` when the task is done (the poll is
    /// dropped).
    pub(crate) fn begin_poll(&self) -> bool {
        match self.transition(SCHEDULED, RUNNING) {
            Ok(()) => true,
            Err(DONE) => false,
            Err(other) => unreachable!("a poll runs only when scheduled, found state {other}"),
        }
    }

    /// A poll returned `Pending`: `RUNNING → IDLE`, or `NOTIFIED → SCHEDULED` when it was woken
    /// meanwhile (the caller submits the next poll).
    pub(crate) fn end_poll(&self) -> AfterPoll {
        match self.transition(RUNNING, IDLE) {
            Ok(()) => AfterPoll::Idle,
            Err(NOTIFIED) => {
                // Only the polling thread leaves NOTIFIED.
                self.0.store(SCHEDULED, Ordering::Release);
                AfterPoll::PollAgain
            }
            Err(other) => unreachable!("only the polling thread ends a poll, found state {other}"),
        }
    }

    /// A wake: `true` when the caller must submit a poll (`IDLE → SCHEDULED`); `false` when a poll
    /// is coming anyway, or the task is done.
    ///
    /// Always a read-modify-write, even when it changes nothing: a plain load could read a state
    /// older than a poll that has already begun (and already looked for the event this wake
    /// announces), and the wake would be lost. The loom model of a wake racing a poll finds that
    /// interleaving when the no-op states are only loaded.
    pub(crate) fn wake(&self) -> bool {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let next = match current {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                other => other,
            };
            match self.transition(current, next) {
                Ok(()) => return current == IDLE,
                Err(actual) => current = actual,
            }
        }
    }

    /// The task finished, panicked or was cancelled; returns `false` if it was done already.
    pub(crate) fn complete(&self) -> bool {
        self.0.swap(DONE, Ordering::AcqRel) != DONE
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_poll_that_stays_pending_waits_for_a_wake() {
        let state = PollState::scheduled();
        assert!(state.begin_poll());
        assert_eq!(state.end_poll(), AfterPoll::Idle);
        assert!(state.wake(), "a wake from idle schedules a poll");
        assert!(!state.wake(), "a second wake finds it scheduled");
        assert!(state.begin_poll());
    }

    #[test]
    fn a_wake_during_a_poll_makes_one_more_poll() {
        let state = PollState::scheduled();
        assert!(state.begin_poll());
        assert!(!state.wake(), "the polling thread will poll again");
        assert!(!state.wake(), "woken twice, still one more poll");
        assert_eq!(state.end_poll(), AfterPoll::PollAgain);
        assert!(state.begin_poll());
    }

    #[test]
    fn a_done_task_ignores_wakes_and_drops_queued_polls() {
        let state = PollState::scheduled();
        assert!(state.complete());
        assert!(!state.complete(), "completed once");
        assert!(!state.wake());
        assert!(!state.begin_poll());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{Arc, AtomicBool, thread};

    /// Polls while the word lets this thread poll; records what each poll saw.
    fn poll_until_idle(
        state: &PollState,
        in_poll: &AtomicBool,
        event: &AtomicBool,
        last_saw: &AtomicBool,
    ) {
        loop {
            if !state.begin_poll() {
                return;
            }
            assert!(!in_poll.swap(true, Ordering::SeqCst), "polls never overlap");
            let saw = event.load(Ordering::SeqCst);
            in_poll.store(false, Ordering::SeqCst);
            last_saw.store(saw, Ordering::SeqCst);
            if state.end_poll() == AfterPoll::Idle {
                return;
            }
        }
    }

    /// A wake racing a poll: polls never overlap, and the last poll comes after the event the
    /// wake announced (no lost wake).
    #[test]
    fn loom_a_wake_racing_a_poll_is_never_lost() {
        crate::loom::model(3, || {
            let state = Arc::new(PollState::scheduled());
            let in_poll = Arc::new(AtomicBool::new(false));
            let event = Arc::new(AtomicBool::new(false));
            let last_saw = Arc::new(AtomicBool::new(false));
            let waker = {
                let (state, in_poll, event, last_saw) = (
                    state.clone(),
                    in_poll.clone(),
                    event.clone(),
                    last_saw.clone(),
                );
                thread::spawn(move || {
                    event.store(true, Ordering::SeqCst);
                    if state.wake() {
                        poll_until_idle(&state, &in_poll, &event, &last_saw);
                    }
                })
            };
            poll_until_idle(&state, &in_poll, &event, &last_saw);
            waker.join().unwrap();
            assert!(
                last_saw.load(Ordering::SeqCst),
                "a poll saw the wake's event"
            );
        });
    }

    /// A completion racing a wake: after `DONE` nobody is told to poll.
    #[test]
    fn loom_a_wake_racing_completion_schedules_nothing_after_done() {
        crate::loom::model(3, || {
            let state = Arc::new(PollState::scheduled());
            assert!(state.begin_poll());
            let waker = {
                let state = state.clone();
                thread::spawn(move || state.wake())
            };
            assert!(state.complete());
            let scheduled = waker.join().unwrap();
            assert!(
                !scheduled,
                "a wake during the final poll never schedules one"
            );
            assert!(!state.begin_poll());
        });
    }
}

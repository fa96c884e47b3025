//! The pool's admission word: one `AtomicU64` holding every count the admission and wake
//! protocol compares (see `README.md` beside this file).
//!
//! Layout, low bits first:
//!
//! | bits    | field      | meaning                                                        |
//! |---------|------------|----------------------------------------------------------------|
//! | 0..32   | `pending`  | tasks admitted to a queue and not yet claimed by a worker      |
//! | 32..47  | `idle`     | workers not running a task (searching or asleep)               |
//! | 47..62  | `sleeping` | idle workers parked on the sleep list (a subset of `idle`)     |
//! | 62      | `SHUTDOWN` | no more admissions; workers drain the queues and exit          |
//!
//! (The end of the shutdown grace period is a separate flag, `Shared::aborting`, because workers
//! read it before every task and this word is the busiest cache line of the pool.)
//!
//! Every transition is a single read-modify-write on this word, so all of them are totally
//! ordered; the protocol's proofs rely only on that order.

use crate::loom::{AtomicU64, Ordering};

/// The most threads one pool may have: 32,767 (the width of the admission word's `idle` and
/// `sleeping` counts). A larger `core_size` is refused, a larger `max_size` lowered to it.
pub const MAX_THREADS: usize = (1 << 15) - 1;
/// Largest queue size (keeps `pending` within its 32 bits whatever `idle` is).
pub(crate) const MAX_QUEUE: usize = (1 << 31) - 1;

const PENDING_ONE: u64 = 1;
const PENDING_MASK: u64 = (1 << 32) - 1;
const IDLE_SHIFT: u32 = 32;
const IDLE_ONE: u64 = 1 << IDLE_SHIFT;
const IDLE_MASK: u64 = ((1 << 15) - 1) << IDLE_SHIFT;
const SLEEPING_SHIFT: u32 = 47;
const SLEEPING_ONE: u64 = 1 << SLEEPING_SHIFT;
const SLEEPING_MASK: u64 = ((1 << 15) - 1) << SLEEPING_SHIFT;
const SHUTDOWN: u64 = 1 << 62;

/// A decoded copy of the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    pub(crate) fn pending(self) -> usize {
        (self.0 & PENDING_MASK) as usize
    }
    pub(crate) fn idle(self) -> usize {
        ((self.0 & IDLE_MASK) >> IDLE_SHIFT) as usize
    }
    pub(crate) fn sleeping(self) -> usize {
        ((self.0 & SLEEPING_MASK) >> SLEEPING_SHIFT) as usize
    }
    pub(crate) fn is_shutdown(self) -> bool {
        self.0 & SHUTDOWN != 0
    }
    /// Idle workers that are searching rather than asleep.
    pub(crate) fn awake_idle(self) -> usize {
        self.idle() - self.sleeping()
    }
    /// Whether an enqueue that produced this state must wake a sleeper: more unclaimed tasks
    /// than awake idle workers to claim them, and someone asleep.
    pub(crate) fn needs_wake(self) -> bool {
        self.sleeping() > 0 && self.pending() > self.awake_idle()
    }
}

/// Why an enqueue failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EnqueueError {
    /// No idle worker is free for the task and the queue is full.
    Full,
    /// The pool is shutting down.
    Shutdown,
}

/// The admission word.
#[derive(Debug)]
pub(crate) struct State(AtomicU64);

impl State {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::SeqCst))
    }

    fn update(&self, mut f: impl FnMut(Snapshot) -> Option<u64>) -> Result<Snapshot, Snapshot> {
        let mut current = self.0.load(Ordering::SeqCst);
        loop {
            let Some(next) = f(Snapshot(current)) else {
                return Err(Snapshot(current));
            };
            match self
                .0
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(Snapshot(next)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Admits one task to the queues if an idle worker is free for it or the queue has room:
    /// `pending < idle + queue_size`. Returns the new state.
    ///
    /// One `fetch_add` decides: the condition is checked on the value it returns (the state just
    /// before this admission in the word's order) and a refused admission is undone at once. The
    /// undo leaves a window in which others see one task too many: a concurrent admission may
    /// then be refused or grow the pool when it need not have, the same benign race a
    /// `ThreadPoolExecutor` hand-off has; no task is lost and no worker sleeps on a real task.
    pub(crate) fn try_enqueue(&self, queue_size: usize) -> Result<Snapshot, EnqueueError> {
        let before = Snapshot(self.0.fetch_add(PENDING_ONE, Ordering::SeqCst));
        if !before.is_shutdown() && before.pending() < before.idle() + queue_size {
            return Ok(Snapshot(before.0 + PENDING_ONE));
        }
        self.0.fetch_sub(PENDING_ONE, Ordering::SeqCst);
        if before.is_shutdown() {
            Err(EnqueueError::Shutdown)
        } else {
            Err(EnqueueError::Full)
        }
    }

    /// A busy worker admits one task as the last act of the task it runs and turns idle for it:
    /// `pending` and `idle` grow together in one read-modify-write, so the task is admitted on
    /// the strength of the caller's own idleness (it claims the task once its own returns,
    /// unless another idle worker steals it first). Refused only at shutdown, and undone then
    /// like [`try_enqueue`](Self::try_enqueue).
    pub(crate) fn try_enqueue_as_idle(&self) -> Result<Snapshot, EnqueueError> {
        let delta = PENDING_ONE + IDLE_ONE;
        let before = Snapshot(self.0.fetch_add(delta, Ordering::SeqCst));
        if !before.is_shutdown() {
            return Ok(Snapshot(before.0 + delta));
        }
        self.0.fetch_sub(delta, Ordering::SeqCst);
        Err(EnqueueError::Shutdown)
    }

    /// A worker that was running a task claimed a queued one.
    pub(crate) fn claim_busy(&self) -> Snapshot {
        Snapshot(self.0.fetch_sub(PENDING_ONE, Ordering::SeqCst) - PENDING_ONE)
    }

    /// An idle worker claimed a queued task and is busy again.
    pub(crate) fn claim_idle(&self) -> Snapshot {
        let delta = PENDING_ONE + IDLE_ONE;
        Snapshot(self.0.fetch_sub(delta, Ordering::SeqCst) - delta)
    }

    /// A queued task left the queues without being claimed by a worker (cancelled when the grace period ended).
    pub(crate) fn drop_pending(&self) {
        self.0.fetch_sub(PENDING_ONE, Ordering::SeqCst);
    }

    /// A worker finished its task and found nothing: it is idle now.
    pub(crate) fn become_idle(&self) -> Snapshot {
        Snapshot(self.0.fetch_add(IDLE_ONE, Ordering::SeqCst) + IDLE_ONE)
    }

    /// Counts `n` idle workers before their threads exist (prestart).
    pub(crate) fn add_idle(&self, n: usize) {
        self.0.fetch_add(IDLE_ONE * n as u64, Ordering::SeqCst);
    }

    /// An idle worker goes to sleep, unless a task is pending or the pool shuts down.
    /// Must be called with the sleep lock held.
    pub(crate) fn try_sleep(&self) -> bool {
        self.update(|s| {
            if s.pending() > 0 || s.is_shutdown() {
                None
            } else {
                Some(s.0 + SLEEPING_ONE)
            }
        })
        .is_ok()
    }

    /// A sleeper left the sleep list (woken, or timed out). Must be called with the sleep lock
    /// held.
    pub(crate) fn leave_sleep(&self) {
        self.0.fetch_sub(SLEEPING_ONE, Ordering::SeqCst);
    }

    /// An idle worker stops being a worker (keep-alive retirement, or exit at shutdown): allowed
    /// only while no task is pending, so no admitted task loses the worker it was counted on.
    pub(crate) fn try_leave_idle(&self) -> Result<Snapshot, Snapshot> {
        self.update(|s| {
            if s.pending() == 0 {
                Some(s.0 - IDLE_ONE)
            } else {
                None
            }
        })
    }

    /// A core thread counted idle before it existed ([`add_idle`](Self::add_idle)) will never
    /// exist: a spawn handler accepted it, then dropped it unrun. Its idle count goes even while
    /// tasks are pending: they were admitted on the strength of a worker that never came, and
    /// the pool's other workers take them (with none left, shutdown cancels them).
    pub(crate) fn forget_idle(&self) {
        let before = Snapshot(self.0.fetch_sub(IDLE_ONE, Ordering::SeqCst));
        debug_assert!(before.idle() > 0, "only a counted idle worker is forgotten");
    }

    /// Undoes a [`try_leave_idle`](Self::try_leave_idle) (the thread turned out to be needed).
    pub(crate) fn rejoin_idle(&self) {
        self.0.fetch_add(IDLE_ONE, Ordering::SeqCst);
    }

    /// Stops admissions. Returns `true` if this call set the flag.
    pub(crate) fn set_shutdown(&self) -> bool {
        self.0.fetch_or(SHUTDOWN, Ordering::SeqCst) & SHUTDOWN == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn hand_off_admits_only_as_many_tasks_as_idle_workers() {
        let state = State::new();
        state.add_idle(2);
        assert!(state.try_enqueue(0).is_ok());
        assert!(state.try_enqueue(0).is_ok());
        assert_eq!(state.try_enqueue(0), Err(EnqueueError::Full));
        assert_eq!(state.load().pending(), 2);
    }

    #[test]
    fn bounded_queue_admits_idle_plus_queue_size() {
        let state = State::new();
        state.add_idle(1);
        for _ in 0..4 {
            state.try_enqueue(3).unwrap();
        }
        assert_eq!(state.try_enqueue(3), Err(EnqueueError::Full));
    }

    #[test]
    fn shutdown_refuses_admission() {
        let state = State::new();
        state.add_idle(1);
        assert!(state.set_shutdown());
        assert!(!state.set_shutdown());
        assert_eq!(state.try_enqueue(10), Err(EnqueueError::Shutdown));
    }

    #[test]
    fn wake_needed_only_when_awake_idle_workers_are_too_few() {
        let state = State::new();
        state.add_idle(2);
        assert!(state.try_sleep());
        // one asleep, one awake: the first task is covered by the awake worker
        assert!(!state.try_enqueue(0).unwrap().needs_wake());
        // the second is not
        assert!(state.try_enqueue(0).unwrap().needs_wake());
    }

    #[test]
    fn sleep_and_leave_are_refused_while_tasks_are_pending() {
        let state = State::new();
        state.add_idle(1);
        state.try_enqueue(0).unwrap();
        assert!(!state.try_sleep());
        assert!(state.try_leave_idle().is_err());
        let s = state.claim_idle();
        assert_eq!((s.pending(), s.idle()), (0, 0));
    }

    #[test]
    fn a_forgotten_idle_worker_leaves_even_with_tasks_pending() {
        let state = State::new();
        state.add_idle(2);
        state.try_enqueue(0).unwrap();
        assert!(state.try_leave_idle().is_err(), "a worker may not leave");
        state.forget_idle();
        let s = state.load();
        assert_eq!((s.idle(), s.pending()), (1, 1), "a worker that never came");
    }

    #[test]
    fn fields_do_not_bleed_into_each_other() {
        let state = State::new();
        state.add_idle(MAX_THREADS);
        for _ in 0..MAX_THREADS {
            assert!(state.try_sleep());
        }
        let s = state.load();
        assert_eq!(
            (s.idle(), s.sleeping(), s.pending()),
            (MAX_THREADS, MAX_THREADS, 0)
        );
        assert!(!s.is_shutdown());
        state.set_shutdown();
        let s = state.load();
        assert!(s.is_shutdown());
        assert_eq!(
            (s.idle(), s.sleeping(), s.pending()),
            (MAX_THREADS, MAX_THREADS, 0)
        );
    }
}

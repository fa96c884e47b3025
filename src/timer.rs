//! The service's timer: one thread, `{service}.timer`, that runs short crate-internal actions
//! when they fall due.
//!
//! The timer never runs user code. Its actions only *dispatch*: they offer a task to a pool
//! (which never blocks the timer: the timer thread's role is [`ThreadRole::Timer`], which full
//! pools refuse rather than make wait), re-arm themselves, or release a rate-limited view's held
//! tasks. Delayed, periodic and cron tasks (`schedule/`), rate limits (`view/gated.rs`) and the
//! retries of work a full pool refused (`dispatch::offer_or_retry`) are all built on
//! [`Timer::defer_until`].
//!
//! Entries live in a `BTreeMap` ordered by (due instant, sequence number): the earliest is first,
//! ties run in the order they were deferred, and an entry can be removed by its key in
//! `O(log n)` (a cancelled schedule is not retained until it would have fired).
//!
//! The thread is started on the first `defer`, so a service that never schedules anything has no
//! timer thread. [`Timer::shutdown`] stops it and hands every pending action
//! [`Fire::Cancelled`] on the calling thread.
//!
//! Invariants (all under `TimerShared::state`):
//! - once `shut` is set, no entry is added and the map is empty;
//! - every action is called exactly once: with [`Fire::Due`] by the thread after removing it
//!   from the map, or with [`Fire::Cancelled`] by the thread that took it out at shutdown or by
//!   a refused `defer`'s caller — whoever removes an entry calls it, and calls happen with the
//!   lock released (an action may defer another);
//! - the thread waits on `wake` only while the map is empty or its first entry is not due; every
//!   insertion that becomes the new first entry, and shutdown, notify it.
//!
//! Locks, waits and the thread go through the loom shim; the loom model at the end of this file
//! races deferrals against the thread and a shutdown.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use crate::loom::thread::JoinHandle;
use crate::loom::{Arc, Condvar, Mutex};
use crate::role::{self, ThreadRole};
use crate::task::panic_message;

/// Why an action is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fire {
    /// Its time has come; it runs on the timer thread.
    Due,
    /// The timer shut down before it fell due; it runs on the thread that shut the timer down.
    /// The action must release whatever it holds (report its task cancelled, undo counts).
    Cancelled,
}

/// A deferred action. It must not block and must not run user code (see [`Timer::defer`]).
pub(crate) type TimerAction = Box<dyn FnOnce(Fire) + Send + 'static>;

/// Identifies a pending entry, for [`Timer::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TimerKey {
    due: Instant,
    seq: u64,
}

/// Why [`Timer::defer`] refused an action (the action comes back with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerRefusal {
    /// The timer (its service) is shut down.
    Shutdown,
    /// The operating system refused to start the timer thread.
    NoThread,
}

/// An action [`Timer::defer`] did not take, and why.
pub(crate) struct Refused {
    /// The action, not called.
    pub(crate) action: TimerAction,
    /// Why it was refused.
    pub(crate) why: TimerRefusal,
}

impl Refused {
    fn new(action: TimerAction, why: TimerRefusal) -> Self {
        Refused { action, why }
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("why", &self.why)
            .finish_non_exhaustive()
    }
}

struct Entry {
    action: TimerAction,
    /// The entry stands for an accepted task (a delayed task, a flow step waiting for a retry):
    /// counted by [`Timer::shutdown`] when it is cancelled.
    is_task: bool,
}

struct TimerState {
    entries: BTreeMap<TimerKey, Entry>,
    next_seq: u64,
    shut: bool,
    thread: Option<JoinHandle<()>>,
}

struct TimerShared {
    /// The thread's name: `{service}.timer`.
    name: String,
    state: Mutex<TimerState>,
    /// Signalled when a new first entry arrives or the timer shuts down.
    wake: Condvar,
}

/// The service's timer. Cheap to clone; clones share the thread and its entries.
#[derive(Clone)]
pub(crate) struct Timer {
    shared: Arc<TimerShared>,
}

impl Timer {
    /// A timer whose thread (started on first use) is named `thread_name`.
    pub(crate) fn new(thread_name: String) -> Self {
        Timer {
            shared: Arc::new(TimerShared {
                name: thread_name,
                state: Mutex::new(TimerState {
                    entries: BTreeMap::new(),
                    next_seq: 0,
                    shut: false,
                    thread: None,
                }),
                wake: Condvar::new(),
            }),
        }
    }

    /// Runs `action` with [`Fire::Due`] on the timer thread at `due` (an instant in the past
    /// is due at once). With `is_task`, the action stands for an accepted task (a delayed task, a
    /// retry of one): if the timer shuts down first, [`shutdown`](Self::shutdown) counts it among
    /// the cancelled tasks.
    ///
    /// Contract for `action`:
    /// - it runs **on the timer thread** and must only dispatch: offer work to a pool or view
    ///   without waiting (the thread's role is [`ThreadRole::Timer`], so the ordinary
    ///   `Scheduler` entry points refuse rather than wait or run inline there), re-arm itself with
    ///   `defer_until`, count, log. It must never block, sleep or run user code: every other timed
    ///   task waits while it runs;
    /// - if the timer shuts down first, it is called once with [`Fire::Cancelled`] on the thread
    ///   that shut the timer down, and must then give up what it holds (fail or cancel its task);
    /// - a panic inside it is caught and logged; the timer carries on.
    ///
    /// Entries due at the same instant run in the order they were deferred; an instant already
    /// past means "as soon as the timer thread gets to it".
    ///
    /// Refused (the action comes back, not called) when the timer is shut down, or when the
    /// timer thread cannot be started.
    pub(crate) fn defer_until(
        &self,
        due: Instant,
        is_task: bool,
        action: TimerAction,
    ) -> Result<TimerKey, Refused> {
        self.insert(due, action, is_task)
    }

    fn insert(
        &self,
        due: Instant,
        action: TimerAction,
        is_task: bool,
    ) -> Result<TimerKey, Refused> {
        let mut state = self.shared.state.lock();
        if state.shut {
            return Err(Refused::new(action, TimerRefusal::Shutdown));
        }
        if state.thread.is_none() {
            match self.start_thread() {
                Ok(handle) => state.thread = Some(handle),
                Err(error) => {
                    tracing::warn!(timer = %self.shared.name, %error, "could not start the timer thread");
                    return Err(Refused::new(action, TimerRefusal::NoThread));
                }
            }
        }
        let key = TimerKey {
            due,
            seq: state.next_seq,
        };
        state.next_seq += 1;
        let first = state
            .entries
            .first_key_value()
            .is_none_or(|(k, _)| key < *k);
        state.entries.insert(key, Entry { action, is_task });
        if first {
            self.shared.wake.notify_one();
        }
        Ok(key)
    }

    /// Removes a pending entry and gives its action back unrun (`None` if it already ran, is
    /// running, or the timer shut down).
    pub(crate) fn cancel(&self, key: TimerKey) -> Option<TimerAction> {
        self.shared
            .state
            .lock()
            .entries
            .remove(&key)
            .map(|entry| entry.action)
    }

    /// `defer_until(now + delay)`, for tests.
    #[cfg(test)]
    pub(crate) fn defer(&self, delay: Duration, action: TimerAction) -> Result<TimerKey, Refused> {
        self.defer_until(Instant::now() + delay, false, action)
    }

    /// Entries waiting for their time.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn pending(&self) -> usize {
        self.shared.state.lock().entries.len()
    }

    /// Stops the timer: later `defer`s are refused, every pending action is called with
    /// [`Fire::Cancelled`] on this thread, and the timer thread is joined (unless this is the
    /// timer thread). Returns how many pending entries stood for tasks (see
    /// [`defer_until`](Self::defer_until)). A second call returns 0.
    pub(crate) fn shutdown(&self) -> u64 {
        let (entries, thread) = {
            let mut state = self.shared.state.lock();
            state.shut = true;
            self.shared.wake.notify_all();
            (std::mem::take(&mut state.entries), state.thread.take())
        };
        let mut tasks = 0;
        for (_, entry) in entries {
            tasks += u64::from(entry.is_task);
            run_action(&self.shared.name, entry.action, Fire::Cancelled);
        }
        if let Some(thread) = thread
            && thread.thread().id() != crate::loom::thread::current().id()
        {
            let _ = thread.join();
        }
        tasks
    }

    fn start_thread(&self) -> std::io::Result<JoinHandle<()>> {
        #[cfg(all(test, not(loom)))]
        if REFUSE_START.with(std::cell::Cell::get) {
            return Err(std::io::Error::other("thread start refused by the test"));
        }
        let shared = self.shared.clone();
        crate::loom::thread::Builder::new()
            .name(self.shared.name.clone())
            .spawn(move || run(&shared))
    }
}

#[cfg(all(test, not(loom)))]
thread_local! {
    /// Tests only: makes this thread's attempts to start a timer thread fail, as when the OS
    /// refuses a thread.
    pub(crate) static REFUSE_START: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn run_action(timer: &str, action: TimerAction, fire: Fire) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| action(fire))) {
        tracing::error!(timer, panic = %panic_message(&*payload), "a timer action panicked; the timer carries on");
    }
}

/// The timer thread's loop.
fn run(shared: &TimerShared) {
    role::set_thread_role(ThreadRole::Timer);
    loop {
        let entry = {
            let mut state = shared.state.lock();
            loop {
                if state.shut {
                    return;
                }
                let Some((&key, _)) = state.entries.first_key_value() else {
                    shared.wake.wait(&mut state);
                    continue;
                };
                let now = Instant::now();
                if key.due > now {
                    crate::loom::wait_timeout(&shared.wake, &mut state, key.due - now);
                    continue;
                }
                break state
                    .entries
                    .remove(&key)
                    .expect("the first entry is present under the lock");
            }
        };
        run_action(&shared.name, entry.action, Fire::Due);
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("Timer")
            .field("thread", &self.shared.name)
            .field("pending", &state.entries.len())
            .field("shutdown", &state.shut)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn timer() -> Timer {
        Timer::new("test.timer".to_owned())
    }

    #[test]
    fn a_timer_thread_that_cannot_start_refuses_with_no_thread_and_a_later_defer_starts_it() {
        let timer = timer();
        REFUSE_START.with(|r| r.set(true));
        let refused = timer.defer(Duration::ZERO, Box::new(|_| {}));
        REFUSE_START.with(|r| r.set(false));
        assert!(matches!(refused, Err(ref r) if r.why == TimerRefusal::NoThread));
        let (tx, rx) = mpsc::channel();
        timer
            .defer(Duration::ZERO, Box::new(move |fire| tx.send(fire).unwrap()))
            .expect("the thread starts on the next defer");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), Fire::Due);
        timer.shutdown();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "due order within 30 ms: Miri runs the deferring thread so slowly that the first entry can fall due before the others are deferred"
    )]
    fn actions_run_on_the_timer_thread_in_due_order() {
        let timer = timer();
        let (tx, rx) = mpsc::channel();
        for (delay, label) in [(30, "late"), (0, "now"), (10, "soon")] {
            let tx = tx.clone();
            timer
                .defer(
                    Duration::from_millis(delay),
                    Box::new(move |fire| {
                        let thread = std::thread::current().name().map(str::to_owned);
                        tx.send((label, fire, thread, role::current_role()))
                            .unwrap();
                    }),
                )
                .unwrap();
        }
        let got: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        let labels: Vec<_> = got.iter().map(|g| g.0).collect();
        assert_eq!(labels, ["now", "soon", "late"]);
        for (_, fire, thread, role) in got {
            assert_eq!(fire, Fire::Due);
            assert_eq!(thread.as_deref(), Some("test.timer"));
            assert_eq!(role, ThreadRole::Timer);
        }
        timer.shutdown();
    }

    #[test]
    fn a_delay_is_a_lower_bound() {
        let timer = timer();
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        timer
            .defer(
                Duration::from_millis(50),
                Box::new(move |_| tx.send(Instant::now()).unwrap()),
            )
            .unwrap();
        let ran = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(ran - start >= Duration::from_millis(50));
        timer.shutdown();
    }

    #[test]
    fn cancel_removes_an_entry_unrun() {
        let timer = timer();
        let key = timer
            .defer(
                Duration::from_secs(3600),
                Box::new(|_| panic!("must not run")),
            )
            .unwrap();
        assert_eq!(timer.pending(), 1);
        assert!(timer.cancel(key).is_some());
        assert!(timer.cancel(key).is_none());
        assert_eq!(timer.pending(), 0);
        timer.shutdown();
    }

    #[test]
    fn shutdown_cancels_pending_actions_and_counts_tasks() {
        let timer = timer();
        let (tx, rx) = mpsc::channel();
        for is_task in [true, true, false] {
            let tx = tx.clone();
            let action: TimerAction = Box::new(move |fire| tx.send(fire).unwrap());
            let result = if is_task {
                timer.defer_until(Instant::now() + Duration::from_secs(3600), true, action)
            } else {
                timer.defer(Duration::from_secs(3600), action)
            };
            result.unwrap();
        }
        assert_eq!(timer.shutdown(), 2);
        let fires: Vec<_> = rx.try_iter().collect();
        assert_eq!(fires, [Fire::Cancelled; 3]);
        let refused = timer.defer(Duration::ZERO, Box::new(|_| {})).unwrap_err();
        assert_eq!(refused.why, TimerRefusal::Shutdown);
        assert_eq!(timer.shutdown(), 0);
    }

    #[test]
    fn a_panicking_action_does_not_stop_the_timer() {
        let timer = timer();
        let (tx, rx) = mpsc::channel();
        timer
            .defer(Duration::ZERO, Box::new(|_| panic!("timer action bug")))
            .unwrap();
        timer
            .defer(
                Duration::from_millis(1),
                Box::new(move |_| tx.send(()).unwrap()),
            )
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        timer.shutdown();
    }

    #[test]
    fn an_action_may_defer_another() {
        let timer = timer();
        let (tx, rx) = mpsc::channel();
        let again = timer.clone();
        timer
            .defer(
                Duration::ZERO,
                Box::new(move |_| {
                    again
                        .defer(Duration::ZERO, Box::new(move |_| tx.send(()).unwrap()))
                        .expect("an action may defer another");
                }),
            )
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        timer.shutdown();
    }

    #[test]
    fn no_thread_until_first_use() {
        let timer = Timer::new("lazy-test.timer".to_owned());
        assert!(timer.shared.state.lock().thread.is_none());
        timer.defer(Duration::ZERO, Box::new(|_| {})).unwrap();
        assert!(timer.shared.state.lock().thread.is_some());
        timer.shutdown();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{AtomicUsize, Ordering, thread};

    /// A deferral racing a shutdown: its action is called exactly once — `Due` on the timer
    /// thread, or `Cancelled` by the shutdown or, when the deferral is refused, by its caller.
    #[test]
    fn loom_every_action_is_called_exactly_once_across_a_shutdown() {
        crate::loom::model(2, || {
            let timer = Timer::new("loom.timer".to_owned());
            let calls = Arc::new(AtomicUsize::new(0));
            let deferrer = {
                let timer = timer.clone();
                let calls = calls.clone();
                thread::spawn(move || {
                    let action: TimerAction = Box::new(move |_| {
                        calls.fetch_add(1, Ordering::SeqCst);
                    });
                    if let Err(refused) = timer.defer(Duration::ZERO, action) {
                        (refused.action)(Fire::Cancelled);
                    }
                })
            };
            timer.shutdown();
            deferrer.join().unwrap();
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        });
    }

    /// An action deferred while another runs on the timer thread is not lost: the thread picks
    /// it up, or the shutdown cancels it.
    #[test]
    fn loom_an_action_deferred_from_an_action_is_called_once() {
        crate::loom::model(2, || {
            let timer = Timer::new("loom.timer".to_owned());
            let calls = Arc::new(AtomicUsize::new(0));
            let again = timer.clone();
            let inner_calls = calls.clone();
            let outer: TimerAction = Box::new(move |_| {
                let inner: TimerAction = Box::new(move |_| {
                    inner_calls.fetch_add(1, Ordering::SeqCst);
                });
                if let Err(refused) = again.defer(Duration::ZERO, inner) {
                    (refused.action)(Fire::Cancelled);
                }
            });
            if let Err(refused) = timer.defer(Duration::ZERO, outer) {
                (refused.action)(Fire::Cancelled);
            }
            timer.shutdown();
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        });
    }
}

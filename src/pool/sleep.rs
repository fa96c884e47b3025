//! The sleep list: idle workers that parked, and the targeted wake of exactly one of them.
//!
//! One mutex guards the list; every sleeper waits on its own condition variable paired with that
//! mutex, so a wake is a pop plus one `notify_one` aimed at one thread (no herd). The `sleeping`
//! count in the admission word changes only while this mutex is held, so it always equals the
//! list's length. The protocol and its proof are in `README.md` beside this file.

use std::time::Duration;

use super::state::State;
use crate::loom::{Arc, AtomicBool, Condvar, Mutex, Ordering};

/// One parked worker.
#[derive(Debug, Default)]
pub(crate) struct Sleeper {
    condvar: Condvar,
    /// Set by a waker when it takes this sleeper off the list; read and written only with the
    /// list's mutex held (the mutex orders it, so `Relaxed` suffices).
    notified: AtomicBool,
}

/// How a sleep ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Another thread woke this one (a task was admitted, or shutdown began).
    Notified,
    /// The keep-alive elapsed with nobody waking this worker.
    TimedOut,
    /// The state changed before the worker could sleep (a task is pending, or shutdown).
    Refused,
}

#[derive(Debug, Default)]
struct List {
    /// Parked workers, most recent last: waking the most recent keeps hot threads hot and lets
    /// the others reach their keep-alive.
    parked: Vec<Arc<Sleeper>>,
}

/// The sleep list of one pool.
#[derive(Debug, Default)]
pub(crate) struct Sleep {
    list: Mutex<List>,
}

impl Sleep {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Parks the calling idle worker until woken or until `keep_alive` passes.
    ///
    /// The worker is parked only if `state.try_sleep()` agrees under the lock (no pending task,
    /// no shutdown); otherwise it returns [`Wake::Refused`] at once.
    pub(crate) fn sleep(&self, state: &State, me: &Arc<Sleeper>, keep_alive: Duration) -> Wake {
        let mut list = self.list.lock();
        if !state.try_sleep() {
            return Wake::Refused;
        }
        me.notified.store(false, Ordering::Relaxed);
        list.parked.push(me.clone());
        loop {
            let timed_out = crate::loom::wait_timeout(&me.condvar, &mut list, keep_alive);
            if me.notified.load(Ordering::Relaxed) {
                // a waker took us off the list and already counted us awake
                return Wake::Notified;
            }
            if timed_out {
                if let Some(index) = list.parked.iter().position(|s| Arc::ptr_eq(s, me)) {
                    list.parked.remove(index);
                }
                state.leave_sleep();
                return Wake::TimedOut;
            }
            // spurious wake-up: still listed, keep waiting
        }
    }

    /// Wakes one sleeper if the state (re-read under the lock) still needs it. Returns `true`
    /// if a thread was woken.
    pub(crate) fn wake_one(&self, state: &State) -> bool {
        let mut list = self.list.lock();
        state.load().needs_wake() && Self::pop_and_notify(&mut list, state)
    }

    /// Wakes one sleeper whatever the word says, if there is one (the stall watch, `cpu.rs`:
    /// tasks are pending while the threads counted as computing make no progress). Returns
    /// `true` if a thread was woken.
    #[cfg_attr(loom, allow(dead_code))] // the stall watch is left out under loom
    pub(crate) fn wake_any(&self, state: &State) -> bool {
        Self::pop_and_notify(&mut self.list.lock(), state)
    }

    /// Takes the most recently parked sleeper off the list (held locked by the caller), counts
    /// it awake and notifies it.
    fn pop_and_notify(list: &mut List, state: &State) -> bool {
        match list.parked.pop() {
            Some(sleeper) => {
                state.leave_sleep();
                sleeper.notified.store(true, Ordering::Relaxed);
                sleeper.condvar.notify_one();
                true
            }
            None => false,
        }
    }

    /// Wakes every sleeper (shutdown). Returns how many were woken.
    pub(crate) fn wake_all(&self, state: &State) -> usize {
        let mut list = self.list.lock();
        let woken = list.parked.len();
        for sleeper in list.parked.drain(..) {
            state.leave_sleep();
            sleeper.notified.store(true, Ordering::Relaxed);
            sleeper.condvar.notify_one();
        }
        woken
    }
}

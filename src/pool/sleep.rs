//! The sleep list: idle workers that parked, and the targeted wake of exactly one of them.
//!
//! One mutex guards the list; it is held only to decide (`try_sleep`, `needs_wake`) and to push,
//! pop or remove a sleeper, never across a wait. Every sleeper waits on its own small lock and
//! condition variable, so a wake is a pop under the list's mutex and then, with that mutex
//! released, one `notify_one` aimed at one thread (no herd); a woken thread never goes back
//! through the list's mutex. The `sleeping` count in the admission word changes only while the
//! list's mutex is held, so it always equals the list's length. A sleeper whose keep-alive
//! elapsed re-takes the list's mutex and removes itself — unless a waker already popped it, in
//! which case it waits for that waker's imminent notification. The protocol and its proof are in
//! `README.md` beside this file.

use std::collections::VecDeque;
use std::time::Duration;

use super::state::State;
use crate::loom::{Arc, Condvar, Mutex};

/// One parked worker. It waits on its own lock and condition variable, not on the list's mutex.
#[derive(Debug, Default)]
pub(crate) struct Sleeper {
    /// Set by the waker that took this sleeper off the list (after it released the list's
    /// mutex); reset by the sleeper, under the list's mutex, before it lists itself.
    notified: Mutex<bool>,
    condvar: Condvar,
}

impl Sleeper {
    /// Tells this sleeper that a waker took it off the list and counted it awake.
    fn notify(&self) {
        *self.notified.lock() = true;
        // After the lock is released, so the woken thread does not block on it again. The
        // waker's `Arc` keeps the sleeper alive even if it already returned.
        self.condvar.notify_one();
    }
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
    /// Parked workers, oldest first: a wake pops the most recent (at the back), which keeps hot
    /// threads hot and lets the others reach their keep-alive; those that do are the oldest, at
    /// the front, where finding and removing them is cheap.
    parked: VecDeque<Arc<Sleeper>>,
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
    /// The worker is parked only if `state.try_sleep()` agrees under the list's mutex (no
    /// pending task, no shutdown); otherwise it returns [`Wake::Refused`] at once. It then waits
    /// on its own [`Sleeper`] with the list's mutex released.
    pub(crate) fn sleep(&self, state: &State, me: &Arc<Sleeper>, keep_alive: Duration) -> Wake {
        {
            let mut list = self.list.lock();
            if !state.try_sleep() {
                return Wake::Refused;
            }
            // No waker can reach `me` before it is listed, so nobody else touches the flag now.
            *me.notified.lock() = false;
            list.parked.push_back(me.clone());
        }
        let mut notified = me.notified.lock();
        while !*notified {
            if crate::loom::wait_timeout(&me.condvar, &mut notified, keep_alive) && !*notified {
                drop(notified);
                return self.time_out(state, me);
            }
            // notified, or a spurious wake-up while still listed: check again
        }
        // a waker took us off the list and already counted us awake
        Wake::Notified
    }

    /// The keep-alive of a listed sleeper elapsed: leave the list, or, if a waker already
    /// popped this sleeper (and counted it awake), wait for its notification, which follows the
    /// pop at once.
    #[cold]
    fn time_out(&self, state: &State, me: &Arc<Sleeper>) -> Wake {
        {
            let mut list = self.list.lock();
            if let Some(index) = list.parked.iter().position(|s| Arc::ptr_eq(s, me)) {
                list.parked.remove(index);
                state.leave_sleep();
                return Wake::TimedOut;
            }
        }
        let mut notified = me.notified.lock();
        while !*notified {
            me.condvar.wait(&mut notified);
        }
        Wake::Notified
    }

    /// Wakes one sleeper if the state (re-read under the list's mutex) still needs it. Returns
    /// `true` if a thread was woken. The list's mutex is held only for the check and the pop.
    pub(crate) fn wake_one(&self, state: &State) -> bool {
        let sleeper = {
            let mut list = self.list.lock();
            if !state.load().needs_wake() {
                return false;
            }
            let Some(sleeper) = list.parked.pop_back() else {
                return false;
            };
            state.leave_sleep();
            sleeper
        };
        sleeper.notify();
        true
    }

    /// Wakes every sleeper (shutdown). Returns how many were woken.
    pub(crate) fn wake_all(&self, state: &State) -> usize {
        let sleepers: Vec<Arc<Sleeper>> = {
            let mut list = self.list.lock();
            for _ in 0..list.parked.len() {
                state.leave_sleep();
            }
            list.parked.drain(..).collect()
        };
        for sleeper in &sleepers {
            sleeper.notify();
        }
        sleepers.len()
    }
}

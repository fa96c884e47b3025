//! The synchronization shim: `std`/`parking_lot` normally, `loom` under `cfg(loom)`.
//!
//! Every lock, condition variable, atomic and thread operation of the pool protocols is imported
//! from here, never from `std` directly, so that the loom models in `pool::loom_tests` explore
//! the real code. Locks follow the `parking_lot` API (no poisoning): under loom they wrap loom's
//! `std`-style locks and unwrap the (never poisoned) results.

#[cfg(not(loom))]
mod imp {
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::thread;

    /// Waits on `condvar` for at most `timeout`; returns `true` if it timed out.
    pub(crate) fn wait_timeout<T>(
        condvar: &Condvar,
        guard: &mut MutexGuard<'_, T>,
        timeout: std::time::Duration,
    ) -> bool {
        condvar.wait_for(guard, timeout).timed_out()
    }

    /// A spin hint for busy-wait loops; a real yield under loom.
    #[inline]
    pub(crate) fn spin_hint() {
        std::hint::spin_loop();
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::thread;

    /// `parking_lot`-style mutex over loom's mutex.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// Guard of [`Mutex`]; the `Option` lets a condvar wait take the inner guard and put it back.
    pub(crate) struct MutexGuard<'a, T>(
        Option<loom::sync::MutexGuard<'a, T>>,
        &'a loom::sync::Mutex<T>,
    );

    impl<T> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present outside a wait")
        }
    }

    impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present outside a wait")
        }
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(
                Some(self.0.lock().expect("loom mutex is never poisoned")),
                &self.0,
            )
        }
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().expect("loom mutex is never poisoned")
        }
    }

    /// `parking_lot`-style condition variable over loom's condvar.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.0.take().expect("guard present outside a wait");
            guard.0 = Some(self.0.wait(inner).expect("loom mutex is never poisoned"));
        }
        pub(crate) fn notify_one(&self) -> bool {
            self.0.notify_one();
            true
        }
        pub(crate) fn notify_all(&self) -> usize {
            self.0.notify_all();
            0
        }
    }

    /// `parking_lot`-style reader-writer lock over loom's.
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }
        pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
            self.0.read().expect("loom lock is never poisoned")
        }
        pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
            self.0.write().expect("loom lock is never poisoned")
        }
    }

    /// Loom has no timed waits. A zero timeout is modelled as one that has elapsed at once (the
    /// wait releases the lock, re-takes it and returns "timed out"), so a model can race a keep-alive with a wake;
    /// any other timeout as an untimed wait, which is the stricter case for lost wake-ups.
    pub(crate) fn wait_timeout<T>(
        condvar: &Condvar,
        guard: &mut MutexGuard<'_, T>,
        timeout: std::time::Duration,
    ) -> bool {
        if timeout.is_zero() {
            // A zero timeout elapses at once: the lock is released and re-taken, as a timed-out
            // wait does, so a model can race a keep-alive with a wake.
            drop(guard.0.take());
            loom::thread::yield_now();
            guard.0 = Some(guard.1.lock().expect("loom mutex is never poisoned"));
            return true;
        }
        condvar.wait(guard);
        false
    }

    /// Under loom a spin is a yield, so the model scheduler can run the thread being waited on.
    #[inline]
    pub(crate) fn spin_hint() {
        loom::thread::yield_now();
    }
}

pub(crate) use imp::*;

/// Runs a loom model of `f`, exploring up to `preemption_bound` preemptions per execution
/// (unless `LOOM_MAX_PREEMPTIONS` sets another bound).
#[cfg(all(test, loom))]
pub(crate) fn model(preemption_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemption_bound);
    }
    builder.check(f);
}

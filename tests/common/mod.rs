//! Helpers shared by the integration tests: a failure guard, a polling wait bounded by it, a
//! gate that blocked tasks wait on, and a high-water mark of tasks running at once.
//!
//! Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Prefix of every Mule scheduler key.
pub const PREFIX: &str = "org.mule.runtime.scheduler.";

/// The generous failure guard of every wait in the tests: never a sequencing device.
pub const GUARD: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or [`GUARD`] passes; `true` if it held.
pub fn poll_until(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() >= GUARD {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Polls `cond` until it holds; panics after [`GUARD`].
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    assert!(poll_until(cond), "timed out waiting for {what}");
}

/// A service with the default configuration, named `name`.
pub fn service(name: &str) -> uberpool::SchedulerService {
    uberpool::SchedulerService::builder()
        .name(name)
        .build()
        .expect("service starts")
}

/// Counts tasks running at once and keeps the highest count seen.
#[derive(Clone, Default)]
pub struct HighWater(Arc<(AtomicUsize, AtomicUsize)>);

impl HighWater {
    /// A task starts.
    pub fn enter(&self) {
        let now = self.0.0.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.1.fetch_max(now, Ordering::SeqCst);
    }

    /// A task ends.
    pub fn leave(&self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }

    /// The most tasks that ran at once.
    pub fn peak(&self) -> usize {
        self.0.1.load(Ordering::SeqCst)
    }
}

/// A gate that blocked tasks wait on; opening it releases all of them.
#[derive(Clone)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Self {
        Gate(Arc::new((Mutex::new(false), Condvar::new())))
    }

    /// Blocks until the gate is open; panics after [`GUARD`].
    pub fn wait(&self) {
        let (lock, cv) = &*self.0;
        let mut open = lock.lock().unwrap();
        while !*open {
            let (guard, timeout) = cv.wait_timeout(open, GUARD).unwrap();
            open = guard;
            assert!(!timeout.timed_out() || *open, "gate never opened");
        }
    }

    pub fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// Waits for a task's value; panics if it failed or took longer than the guard.
pub fn join<T>(handle: uberpool::TaskHandle<T>) -> T {
    match handle.join_timeout(GUARD) {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => panic!("task failed: {error}"),
        Err(_) => panic!("task did not finish within the guard"),
    }
}

/// Waits for a task's outcome (value or error) within the guard.
pub fn outcome<T>(handle: uberpool::TaskHandle<T>) -> Result<T, uberpool::TaskError> {
    handle
        .join_timeout(GUARD)
        .unwrap_or_else(|_| panic!("task did not finish within the guard"))
}

/// Submits a task that blocks on `gate` (holding its thread, or its slot of a throttled
/// scheduler), and returns once it is running.
pub fn block(scheduler: &uberpool::Scheduler, gate: &Gate) -> uberpool::TaskHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let gate = gate.clone();
    let handle = scheduler
        .submit(move || {
            tx.send(()).unwrap();
            gate.wait();
        })
        .expect("blocker accepted");
    rx.recv_timeout(GUARD).expect("blocker did not start");
    handle
}
pub mod services;

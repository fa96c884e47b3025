//! Helpers shared by the integration tests: a failure guard, a polling wait bounded by it, and a
//! gate that blocked tasks wait on.
//!
//! Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The generous failure guard of every wait in the tests: never a sequencing device.
pub const GUARD: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds; panics after [`GUARD`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
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

//! Panic safety of the bare pool: whatever user code does — a panic payload, a captured value, a
//! result or a waker that panics, a thread hook or a spawn handler that panics — the worker
//! survives, its thread slot is released, the task's handle resolves and the shutdown report
//! adds up (`completed + cancelled + still_running = accepted`).
//!
//! Each test builds a small pool (usually one thread, so a dead worker would stop everything),
//! provokes one kind of panic, then checks that the same pool keeps running later tasks and that
//! its shutdown accounts for every task. Sequencing uses gates and channels; the only time limit
//! is the failure guard.

mod common;

use common::{GUARD, Gate, wait_until};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use uberpool::pool::{ShutdownReport, ThreadPool};
use uberpool::{RejectKind, TaskError, TaskHandle};

/// Keeps this suite's planned panics (their messages start with `planned:`, or their payload is a
/// [`Bomb`]) out of the output; any other panic is reported as usual. A planned panic printing a
/// backtrace (with `RUST_BACKTRACE` set) is slow under a sanitizer, and says nothing.
fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let planned = payload
                .downcast_ref::<&str>()
                .map(|s| s.starts_with("planned:"))
                .or_else(|| {
                    payload
                        .downcast_ref::<String>()
                        .map(|s| s.starts_with("planned:"))
                })
                .unwrap_or(false)
                || payload.is::<Bomb>();
            if !planned {
                report(info);
            }
        }));
    });
}

/// A value whose `Drop` panics.
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("planned: {} exploded in Drop", self.0);
    }
}

/// A one-thread pool with room for a few queued tasks.
fn one_thread(name: &str) -> ThreadPool {
    ThreadPool::builder()
        .name(name)
        .core_size(1)
        .queue_size(8)
        .build()
        .expect("pool starts")
}

/// Occupies the pool's only thread until `gate` opens; returns once the task runs.
fn occupy(pool: &ThreadPool, gate: &Gate) -> TaskHandle<()> {
    let (tx, rx) = channel();
    let gate = gate.clone();
    let handle = pool
        .submit(move || {
            tx.send(()).unwrap();
            gate.wait();
        })
        .expect("blocker accepted");
    rx.recv_timeout(GUARD).expect("blocker did not start");
    handle
}

/// Waits for a handle within the guard.
fn outcome<T>(handle: TaskHandle<T>) -> Result<T, TaskError> {
    handle
        .join_timeout(GUARD)
        .unwrap_or_else(|_| panic!("the handle never resolved"))
}

/// The pool still runs work, on the thread it had.
fn still_works(pool: &ThreadPool, thread: &str) {
    let name = pool
        .submit(|| std::thread::current().name().unwrap().to_owned())
        .expect("the pool accepts work");
    assert_eq!(outcome(name).as_deref(), Ok(thread), "the worker survived");
}

/// Shuts the pool down within the guard and checks the report partitions every accepted task.
fn shut_down_clean(pool: &ThreadPool) -> ShutdownReport {
    let report = pool.shutdown_timeout(GUARD);
    assert!(!report.timed_out, "shutdown timed out: {report:?}");
    assert_eq!(report.still_running, 0, "{report:?}");
    assert_eq!(
        report.accepted(),
        pool.metrics().submitted,
        "the report adds up: {report:?}"
    );
    assert_eq!(pool.metrics().threads, 0, "every slot released");
    report
}

#[test]
fn a_panic_payload_whose_drop_panics_does_not_kill_the_worker() {
    quiet_planned_panics();
    let pool = one_thread("payload");
    let handle = pool
        .submit(|| -> u8 { std::panic::panic_any(Bomb("the payload")) })
        .unwrap();
    assert_eq!(
        outcome(handle),
        Err(TaskError::Panicked("non-string panic payload".into()))
    );
    pool.execute(|| std::panic::panic_any(Bomb("a fire-and-forget payload")))
        .unwrap();
    still_works(&pool, "payload.01");
    let m = pool.metrics();
    assert_eq!((m.panicked, m.threads, m.threads_started), (2, 1, 1));
    let report = shut_down_clean(&pool);
    assert_eq!((report.completed, report.panicked), (3, 2));
}

#[test]
fn a_cancelled_closure_whose_capture_panics_in_drop_does_not_kill_the_worker() {
    quiet_planned_panics();
    let pool = one_thread("unrun");
    let gate = Gate::new();
    let blocker = occupy(&pool, &gate);
    let bomb = Bomb("a cancelled closure's capture");
    let handle = pool
        .submit(move || {
            let _keep = &bomb;
            1
        })
        .unwrap();
    assert!(handle.cancel());
    gate.open();
    assert_eq!(outcome(blocker), Ok(()));
    assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    still_works(&pool, "unrun.01");
    let report = shut_down_clean(&pool);
    assert_eq!((report.completed, report.cancelled), (2, 1));
}

#[test]
fn a_result_whose_drop_panics_after_its_handle_was_dropped_does_not_kill_the_worker() {
    quiet_planned_panics();
    let pool = one_thread("result");
    let gate = Gate::new();
    let blocker = occupy(&pool, &gate);
    // Dropped before the task runs: the worker holds the last reference and drops the result.
    drop(pool.submit(|| Bomb("a result nobody took")).unwrap());
    gate.open();
    assert_eq!(outcome(blocker), Ok(()));
    still_works(&pool, "result.01");
    let report = shut_down_clean(&pool);
    assert_eq!(report.completed, 3);
}

/// A waker whose `wake` panics.
struct PanickingWaker(AtomicUsize);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("planned: the waker panics");
    }
}

#[test]
fn a_waker_whose_wake_panics_does_not_kill_the_worker() {
    quiet_planned_panics();
    let pool = one_thread("waker");
    let gate = Gate::new();
    let g = gate.clone();
    let (tx, rx) = channel();
    let handle = pool
        .submit(move || {
            tx.send(()).unwrap();
            g.wait();
            7
        })
        .unwrap();
    rx.recv_timeout(GUARD).unwrap();
    let wakes = Arc::new(PanickingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(wakes.clone());
    let mut handle = std::pin::pin!(handle);
    let mut cx = Context::from_waker(&waker);
    assert!(std::future::Future::poll(handle.as_mut(), &mut cx).is_pending());
    // The pool thread that finishes the task wakes the future, and the wake panics there.
    gate.open();
    wait_until("the pool thread to wake the future", || {
        wakes.0.load(Ordering::SeqCst) == 1
    });
    assert_eq!(
        std::future::Future::poll(handle.as_mut(), &mut cx),
        Poll::Ready(Ok(7))
    );
    still_works(&pool, "waker.01");
    let report = shut_down_clean(&pool);
    assert_eq!(report.completed, 2);
}

#[test]
fn a_queued_closure_whose_capture_panics_in_drop_at_the_shutdown_drain_is_cancelled() {
    quiet_planned_panics();
    let pool = one_thread("drain");
    let gate = Gate::new();
    let blocker = occupy(&pool, &gate);
    let bomb = Bomb("a drained closure's capture");
    let handle = pool
        .submit(move || {
            let _keep = &bomb;
        })
        .unwrap();
    let bomb = Bomb("a drained fire-and-forget capture");
    pool.execute(move || {
        let _keep = &bomb;
    })
    .unwrap();
    // The grace period ends at once: the queued tasks are drained and their closures dropped.
    let report = pool.shutdown_timeout(std::time::Duration::ZERO);
    assert!(report.timed_out);
    assert_eq!(
        (report.completed, report.cancelled, report.still_running),
        (0, 2, 1),
        "{report:?}"
    );
    assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    assert_eq!(pool.metrics().cancelled, 2);
    gate.open();
    assert_eq!(outcome(blocker), Ok(()));
    wait_until("the blocker's thread to exit", || pool.is_terminated());
    let report = pool.shutdown_timeout(GUARD);
    assert_eq!(
        (report.completed, report.cancelled, report.still_running),
        (1, 2, 0)
    );
}

#[test]
fn a_thread_start_hook_that_panics_leaves_a_working_thread() {
    quiet_planned_panics();
    let pool = ThreadPool::builder()
        .name("start-hook")
        .core_size(1)
        .max_size(2)
        .on_thread_start(|| panic!("planned: the start hook panics"))
        .build()
        .expect("a panicking start hook does not fail the build");
    still_works(&pool, "start-hook.01");
    // a hand-off pool: the blocker must find the core thread idle, so the next task grows
    wait_until("the core thread to be idle", || pool.metrics().idle == 1);
    let gate = Gate::new();
    let blocker = occupy(&pool, &gate);
    // a second thread, started for this task, survives its hook too
    assert_eq!(outcome(pool.submit(|| 2).unwrap()), Ok(2));
    gate.open();
    assert_eq!(outcome(blocker), Ok(()));
    assert_eq!(pool.metrics().threads_started, 2);
    shut_down_clean(&pool);
}

#[test]
fn a_thread_stop_hook_that_panics_still_releases_the_slot() {
    quiet_planned_panics();
    let stops = Arc::new(AtomicUsize::new(0));
    let s = stops.clone();
    let pool = ThreadPool::builder()
        .name("stop-hook")
        .core_size(2)
        .on_thread_stop(move || {
            s.fetch_add(1, Ordering::SeqCst);
            panic!("planned: the stop hook panics");
        })
        .build()
        .unwrap();
    assert_eq!(outcome(pool.submit(|| 1).unwrap()), Ok(1));
    shut_down_clean(&pool);
    assert_eq!(stops.load(Ordering::SeqCst), 2);
}

#[test]
fn a_spawn_handler_that_panics_is_a_refusal() {
    quiet_planned_panics();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let pool = ThreadPool::builder()
        .name("handler")
        .core_size(1)
        .max_size(2)
        .spawn_handler(move |spawn| {
            if c.fetch_add(1, Ordering::SeqCst) >= 1 {
                panic!("planned: the spawn handler panics");
            }
            std::thread::Builder::new()
                .name(spawn.name().to_owned())
                .spawn(move || spawn.run())
                .map(|_| ())
        })
        .build()
        .unwrap();
    let gate = Gate::new();
    let blocker = occupy(&pool, &gate);
    let refused = pool.submit(|| 5).expect_err("no thread could be started");
    assert_eq!(refused.kind(), RejectKind::Busy);
    assert_eq!(refused.into_inner()(), 5, "the closure came back");
    let m = pool.metrics();
    assert_eq!((m.spawn_failures, m.threads, m.rejected), (1, 1, 1));
    gate.open();
    assert_eq!(outcome(blocker), Ok(()));
    // a hand-off pool: wait for the core thread, or the next task would need a new thread
    wait_until("the core thread to be idle", || pool.metrics().idle == 1);
    still_works(&pool, "handler.01");
    shut_down_clean(&pool);
}

#[test]
fn a_spawn_handler_that_panics_on_a_core_thread_fails_the_build() {
    quiet_planned_panics();
    let err = ThreadPool::builder()
        .name("core-handler")
        .core_size(2)
        .spawn_handler(|_| panic!("planned: the spawn handler panics"))
        .build()
        .expect_err("no core thread could be started");
    assert!(err.to_string().contains("core-handler"), "{err}");
}

/// A spawn handler that keeps every `ThreadSpawn` after the first and reports success.
fn keeping_handler(kept: Arc<Mutex<Vec<uberpool::pool::ThreadSpawn>>>) -> ThreadPool {
    let calls = AtomicUsize::new(0);
    ThreadPool::builder()
        .name("keeper")
        .core_size(1)
        .max_size(2)
        .spawn_handler(move |spawn| {
            if calls.fetch_add(1, Ordering::SeqCst) >= 1 {
                kept.lock().unwrap().push(spawn);
                return Ok(());
            }
            std::thread::Builder::new()
                .name(spawn.name().to_owned())
                .spawn(move || spawn.run())
                .map(|_| ())
        })
        .build()
        .unwrap()
}

#[test]
fn a_thread_spawn_dropped_after_the_handler_returned_releases_its_slot() {
    quiet_planned_panics();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let pool = keeping_handler(kept.clone());
    let gate = Gate::new();
    let blocker = occupy(&pool, &gate);
    // The pool grows for this task; the handler keeps the thread and says it started.
    let stranded = pool.submit(|| 9).expect("the handler reported success");
    assert_eq!(pool.metrics().threads, 2);
    // Dropped later, unrun: a refusal after the fact. Its task is cancelled, its slot freed.
    let spawn = kept.lock().unwrap().pop().expect("the handler kept it");
    std::thread::spawn(move || drop(spawn)).join().unwrap();
    assert_eq!(outcome(stranded), Err(TaskError::Cancelled));
    assert_eq!(pool.metrics().threads, 1);
    gate.open();
    assert_eq!(outcome(blocker), Ok(()));
    let report = shut_down_clean(&pool);
    assert_eq!((report.completed, report.cancelled), (1, 1));
}

#[test]
fn two_threads_shutting_down_their_own_pool_do_not_wait_for_each_other() {
    quiet_planned_panics();
    let pool = Arc::new(
        ThreadPool::builder()
            .name("twin")
            .core_size(2)
            .build()
            .unwrap(),
    );
    let both = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (p, both) = (pool.clone(), both.clone());
            pool.submit(move || {
                both.wait();
                p.shutdown_timeout(GUARD)
            })
            .unwrap()
        })
        .collect();
    for handle in handles {
        let report = outcome(handle).unwrap();
        assert!(!report.timed_out, "they waited for each other: {report:?}");
        // The caller is still running; the other caller too, unless its shutdown returned and
        // its task ended first.
        assert!(report.still_running >= 1, "{report:?}");
        assert_eq!(report.completed + report.still_running, 2, "{report:?}");
    }
    wait_until("both threads to exit", || pool.is_terminated());
    let report = pool.shutdown_timeout(GUARD);
    assert_eq!((report.completed, report.still_running), (2, 0));
}

#[test]
fn threads_of_two_pools_shutting_down_each_other_do_not_wait_for_each_other() {
    quiet_planned_panics();
    let a = Arc::new(ThreadPool::builder().name("pool-a").build().unwrap());
    let b = Arc::new(ThreadPool::builder().name("pool-b").build().unwrap());
    let both = Arc::new(std::sync::Barrier::new(2));
    let on_a = {
        let (b, both) = (b.clone(), both.clone());
        a.submit(move || {
            both.wait();
            b.shutdown_timeout(GUARD)
        })
        .unwrap()
    };
    let on_b = {
        let (a, both) = (a.clone(), both.clone());
        b.submit(move || {
            both.wait();
            a.shutdown_timeout(GUARD)
        })
        .unwrap()
    };
    for handle in [on_a, on_b] {
        let report = outcome(handle).unwrap();
        assert!(!report.timed_out, "the shutdowns waited for each other");
        // the other pool's caller: still running, or ended since its own shutdown returned
        assert_eq!(report.completed + report.still_running, 1, "{report:?}");
    }
    wait_until("both pools to end", || {
        a.is_terminated() && b.is_terminated()
    });
}

//! Behaviour of the elastic pool, one behaviour per test.
//!
//! Sequencing uses channels and barriers; the only time limits are generous failure guards.

mod common;

use common::{GUARD, Gate, wait_until};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use uberpool::pool::{BuildError, ThreadPool, current_pool_name};
use uberpool::{RejectKind, TaskError, shutdown_requested};

/// Submits a task that reports it is running, then blocks on `gate`.
fn blocker(pool: &ThreadPool, gate: &Gate, running: &Sender<()>) {
    let gate = gate.clone();
    let running = running.clone();
    pool.execute(move || {
        running.send(()).unwrap();
        gate.wait();
    })
    .expect("blocker accepted");
}

fn recv(rx: &Receiver<()>) {
    rx.recv_timeout(GUARD).expect("task did not start");
}

#[test]
fn core_threads_are_prestarted() {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let pool = ThreadPool::builder()
        .name("pre")
        .core_size(3)
        .on_thread_start(move || tx.lock().unwrap().send(()).unwrap())
        .build()
        .unwrap();
    for _ in 0..3 {
        recv(&rx);
    }
    let m = pool.metrics();
    assert_eq!((m.threads, m.threads_started, m.idle), (3, 3, 3));
}

#[test]
fn hand_off_grows_to_max_then_rejects_with_the_closure_returned() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .max_size(3)
        .queue_size(0)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    for _ in 0..3 {
        blocker(&pool, &gate, &tx);
    }
    for _ in 0..3 {
        recv(&rx);
    }
    assert_eq!(pool.metrics().threads, 3);

    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let refused = pool
        .execute(move || flag.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Busy);
    refused.into_inner()();
    assert!(
        ran.load(Ordering::SeqCst),
        "the refused closure came back intact"
    );
    assert_eq!(pool.metrics().rejected, 1);
    gate.open();
    let report = pool.shutdown();
    assert_eq!((report.completed, report.cancelled), (3, 0));
}

#[test]
fn submit_rejection_returns_the_closure_too() {
    let pool = ThreadPool::builder().core_size(1).build().unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    let refused = pool.submit(|| 41 + 1).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Busy);
    assert_eq!(refused.into_inner()(), 42);
    gate.open();
}

#[test]
fn bounded_queue_fills_before_the_pool_grows() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .max_size(2)
        .queue_size(2)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    let queued: Vec<_> = (0..2).map(|i| pool.submit(move || i).unwrap()).collect();
    let m = pool.metrics();
    assert_eq!((m.threads, m.queued), (1, 2), "queue fills first");

    blocker(&pool, &gate, &tx);
    recv(&rx);
    assert_eq!(pool.metrics().threads, 2, "then the pool grows");

    let refused = pool.execute(|| {}).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Busy, "then it refuses");

    gate.open();
    let values: Vec<_> = queued.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(values, vec![0, 1]);
}

#[test]
fn keep_alive_retires_extra_threads_back_to_core() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .max_size(4)
        .keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(5));
    for _ in 0..4 {
        let barrier = barrier.clone();
        pool.execute(move || {
            barrier.wait();
        })
        .unwrap();
    }
    barrier.wait();
    assert_eq!(pool.metrics().peak_threads, 4);
    wait_until("extra threads to retire", || {
        let m = pool.metrics();
        (m.threads, m.threads_retired, m.idle) == (1, 3, 1)
    });
    // the remaining core thread still works
    assert_eq!(pool.submit(|| 7).unwrap().join(), Ok(7));
}

#[test]
fn panics_are_isolated_and_counted() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .queue_size(4)
        .build()
        .unwrap();
    let name = |_: ()| std::thread::current().name().unwrap().to_owned();
    let before = pool.submit(move || name(())).unwrap().join().unwrap();
    let err = pool.submit(|| -> () { panic!("boom") }).unwrap().join();
    assert_eq!(err, Err(TaskError::Panicked("boom".into())));
    pool.execute(|| panic!("fire and forget")).unwrap();
    let after = pool.submit(move || name(())).unwrap().join().unwrap();
    assert_eq!(before, after, "the same worker thread survived both panics");
    wait_until("panics counted", || pool.metrics().panicked == 2);
    assert_eq!(pool.metrics().threads_started, 1);
}

#[test]
fn cancel_before_start_prevents_the_run() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .queue_size(4)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let handle = pool
        .submit(move || flag.store(true, Ordering::SeqCst))
        .unwrap();
    assert!(!handle.is_finished());
    assert!(handle.cancel());
    assert!(handle.is_finished());
    gate.open();
    assert_eq!(pool.submit(|| ()).unwrap().join(), Ok(()), "queue drained");
    assert_eq!(handle.join(), Err(TaskError::Cancelled));
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(pool.metrics().cancelled, 1);
}

#[test]
fn join_timeout_gives_the_handle_back_until_the_task_ends() {
    let pool = ThreadPool::builder().core_size(1).build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let handle = pool
        .submit(move || {
            g.wait();
            "done"
        })
        .unwrap();
    let handle = handle
        .join_timeout(Duration::from_millis(5))
        .expect_err("still blocked");
    gate.open();
    assert_eq!(handle.join_timeout(GUARD).ok(), Some(Ok("done")));
}

#[test]
fn threads_are_named_after_the_pool() {
    let pool = ThreadPool::builder()
        .name("mail.io")
        .core_size(1)
        .max_size(2)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    let second = pool
        .submit(|| std::thread::current().name().unwrap().to_owned())
        .unwrap();
    assert_eq!(second.join().unwrap(), "mail.io.02");
    gate.open();
    // a hand-off pool accepts only when a thread is idle: wait for both to be
    wait_until("both threads idle", || pool.metrics().idle == 2);
    let first = pool
        .submit(|| std::thread::current().name().unwrap().to_owned())
        .unwrap()
        .join()
        .unwrap();
    assert!(first == "mail.io.01" || first == "mail.io.02", "{first}");
}

#[test]
fn pool_identity_is_visible_inside_a_task() {
    let pool = Arc::new(
        ThreadPool::builder()
            .name("who")
            .core_size(1)
            .build()
            .unwrap(),
    );
    assert_eq!(current_pool_name(), None);
    assert!(!pool.is_current());
    let p = pool.clone();
    let inside = pool
        .submit(move || (current_pool_name(), p.is_current(), shutdown_requested()))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(inside, (Some("who".to_owned()), true, false));
}

#[test]
fn tasks_spawned_from_a_pool_thread_run_on_the_pool() {
    let pool = Arc::new(
        ThreadPool::builder()
            .core_size(2)
            .queue_size(1024)
            .build()
            .unwrap(),
    );
    let (tx, rx) = channel();
    fn chain(pool: Arc<ThreadPool>, left: usize, done: Sender<usize>) {
        if left == 0 {
            done.send(0).unwrap();
            return;
        }
        let next = pool.clone();
        pool.execute(move || {
            assert!(next.is_current());
            chain(next, left - 1, done)
        })
        .expect("chained task accepted");
    }
    chain(pool.clone(), 10_000, tx);
    assert_eq!(rx.recv_timeout(GUARD), Ok(0));
    wait_until("chain counted", || pool.metrics().completed == 10_000);
}

#[test]
fn spawn_handler_failure_degrades_to_rejection() {
    let spawned = Arc::new(AtomicUsize::new(0));
    let count = spawned.clone();
    let pool = ThreadPool::builder()
        .core_size(1)
        .max_size(4)
        .spawn_handler(move |spawn| {
            if count.fetch_add(1, Ordering::SeqCst) >= 1 {
                return Err(std::io::Error::other("no more threads"));
            }
            std::thread::Builder::new()
                .name(spawn.name().to_owned())
                .spawn(move || spawn.run())
                .map(|_| ())
        })
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    let refused = pool.submit(|| 5).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Busy);
    assert_eq!(refused.into_inner()(), 5);
    let m = pool.metrics();
    assert_eq!((m.spawn_failures, m.threads, m.submitted), (1, 1, 1));
    gate.open();
    let report = pool.shutdown();
    assert_eq!(report.completed, 1);
    assert!(!report.timed_out);
}

#[test]
fn a_spawn_handler_that_drops_the_thread_counts_as_a_refusal() {
    let err = ThreadPool::builder()
        .name("dropper")
        .spawn_handler(|spawn| {
            drop(spawn);
            Ok(())
        })
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("dropper"));
}

#[test]
fn zero_core_size_is_an_error() {
    let err = ThreadPool::builder().core_size(0).build().unwrap_err();
    assert!(matches!(err, BuildError::ZeroCoreSize { .. }));
}

#[test]
fn max_below_core_is_raised_to_core() {
    let pool = ThreadPool::builder()
        .core_size(3)
        .max_size(1)
        .build()
        .unwrap();
    assert_eq!(pool.metrics().max_size, 3);
}

#[test]
fn submit_after_shutdown_is_refused_with_the_closure() {
    let pool = ThreadPool::builder().core_size(1).build().unwrap();
    let report = pool.shutdown();
    assert!(pool.is_shutdown() && pool.is_terminated());
    assert_eq!(report.accepted(), 0);
    let refused = pool.submit(|| 3).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Shutdown);
    assert_eq!(refused.into_inner()(), 3);
}

#[test]
fn shutdown_waits_for_queued_tasks_within_the_grace_period() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .queue_size(8)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    let handles: Vec<_> = (0..5)
        .map(|i| pool.submit(move || i * 2).unwrap())
        .collect();
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || gate.open())
    };
    let report = pool.shutdown_timeout(GUARD);
    opener.join().unwrap();
    assert!(!report.timed_out);
    assert_eq!(
        (report.completed, report.cancelled, report.still_running),
        (6, 0, 0)
    );
    let values: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(values, vec![0, 2, 4, 6, 8]);
    assert!(pool.is_terminated());
}

#[test]
fn shutdown_deadline_cancels_what_never_started() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .queue_size(8)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    let handles: Vec<_> = (0..5).map(|i| pool.submit(move || i).unwrap()).collect();
    let report = pool.shutdown_timeout(Duration::from_millis(10));
    assert!(report.timed_out);
    assert_eq!(
        (report.completed, report.cancelled, report.still_running),
        (0, 5, 1)
    );
    for handle in handles {
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
    }
    gate.open();
    wait_until("the blocked task to finish", || pool.is_terminated());
}

#[test]
fn a_task_can_shut_down_its_own_pool_without_deadlock() {
    let pool = Arc::new(ThreadPool::builder().core_size(2).build().unwrap());
    let p = pool.clone();
    let report = pool
        .submit(move || {
            let report = p.shutdown_timeout(GUARD);
            (report, shutdown_requested())
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(report.0.still_running, 1, "the calling task itself");
    assert!(report.1, "the task sees the shutdown request");
    wait_until("termination", || pool.is_terminated());
}

#[test]
fn dropping_the_pool_stops_and_joins_every_thread() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    let pool = ThreadPool::builder()
        .core_size(3)
        .on_thread_stop(move || {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    assert_eq!(pool.submit(|| 1).unwrap().join(), Ok(1));
    drop(pool);
    assert_eq!(stopped.load(Ordering::SeqCst), 3);
}

#[test]
fn handle_is_a_future() {
    let pool = ThreadPool::builder().core_size(1).build().unwrap();
    let handle = pool.submit(|| 21 * 2).unwrap();
    // a minimal executor: park the thread until the waker fires
    let thread = std::thread::current();
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(thread)));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut handle = std::pin::pin!(handle);
    let start = Instant::now();
    loop {
        match std::future::Future::poll(handle.as_mut(), &mut cx) {
            std::task::Poll::Ready(v) => {
                assert_eq!(v, Ok(42));
                break;
            }
            std::task::Poll::Pending => {
                assert!(start.elapsed() < GUARD);
                std::thread::park_timeout(Duration::from_millis(50));
            }
        }
    }
}

struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn counters_include_a_task_once_its_join_returns() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .queue_size(4)
        .build()
        .unwrap();
    for i in 1..=2_000u64 {
        assert_eq!(pool.submit(|| ()).unwrap().join(), Ok(()));
        let completed = pool.metrics().completed;
        assert!(
            completed >= i,
            "join returned before task {i} was counted ({completed})"
        );
    }
    for i in 1..=200u64 {
        let handle = pool.submit(|| -> () { panic!("counted first") }).unwrap();
        assert!(handle.join().is_err());
        let m = pool.metrics();
        assert!(
            m.panicked >= i,
            "join returned before panic {i} was counted"
        );
        assert!(m.completed >= 2_000 + i);
    }
}

#[test]
fn counters_include_a_task_once_its_future_is_ready() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .queue_size(4)
        .build()
        .unwrap();
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    for i in 1..=500u64 {
        let mut handle = std::pin::pin!(pool.submit(move || i).unwrap());
        let start = Instant::now();
        loop {
            match std::future::Future::poll(handle.as_mut(), &mut cx) {
                std::task::Poll::Ready(v) => {
                    assert_eq!(v, Ok(i));
                    break;
                }
                std::task::Poll::Pending => {
                    assert!(start.elapsed() < GUARD);
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            }
        }
        assert!(
            pool.metrics().completed >= i,
            "ready before task {i} was counted"
        );
    }
}

/// The poll races the pool's cancel at shutdown (the cancel claims the task outside the slot
/// lock and publishes after). A regression guard on real threads: with the old poll it failed
/// in most runs; the loom model `loom_handle_polled_while_cancelled` checks every interleaving.
#[test]
fn a_handle_polled_while_shutdown_cancels_it_never_panics() {
    for _ in 0..500 {
        let pool = ThreadPool::builder()
            .core_size(1)
            .queue_size(1)
            .build()
            .unwrap();
        let gate = Gate::new();
        let (tx, rx) = channel();
        blocker(&pool, &gate, &tx);
        recv(&rx);
        let handle = pool.submit(|| 1).unwrap();
        let poller = std::thread::spawn(move || {
            let mut handle = std::pin::pin!(handle);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let start = Instant::now();
            for polls in 0u32.. {
                if let std::task::Poll::Ready(outcome) =
                    std::future::Future::poll(handle.as_mut(), &mut cx)
                {
                    return outcome;
                }
                assert!(start.elapsed() < GUARD, "never resolved");
                // Poll back to back while the cancel is likely in flight (that is where the
                // race is), then give the core to the pool's threads.
                if polls < 5_000 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            unreachable!()
        });
        // the grace period ends at once: the queued task is cancelled by the pool
        let report = pool.shutdown_timeout(Duration::ZERO);
        assert_eq!(report.cancelled, 1);
        assert_eq!(
            poller.join().expect("poll panicked"),
            Err(TaskError::Cancelled)
        );
        gate.open();
    }
}

#[test]
fn a_core_size_beyond_the_thread_limit_is_refused_naming_the_pool_and_the_value() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let count = attempts.clone();
    let err = ThreadPool::builder()
        .name("huge")
        .core_size(40_000)
        .spawn_handler(move |spawn| {
            // never start thousands of threads, even if the limit were not checked
            if count.fetch_add(1, Ordering::SeqCst) >= 1 {
                return Err(std::io::Error::other("this test starts one thread at most"));
            }
            std::thread::Builder::new()
                .spawn(move || spawn.run())
                .map(|_| ())
        })
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("huge") && text.contains("40000"), "{text}");
    assert_eq!(attempts.load(Ordering::SeqCst), 0, "no thread was started");
}

#[test]
fn a_max_size_beyond_the_thread_limit_is_lowered_to_it() {
    let pool = ThreadPool::builder().max_size(usize::MAX).build().unwrap();
    assert_eq!(pool.metrics().max_size, (1 << 15) - 1);
}

#[test]
fn absurd_durations_never_panic() {
    let pool = ThreadPool::builder()
        .core_size(1)
        .max_size(2)
        .keep_alive(Duration::MAX)
        .shutdown_timeout(Duration::MAX)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (tx, rx) = channel();
    blocker(&pool, &gate, &tx);
    recv(&rx);
    // a second thread starts for this task, then parks with the endless keep-alive
    let second = pool.submit(|| 2).unwrap();
    let second = second.join_timeout(Duration::MAX).unwrap();
    assert_eq!(second, Ok(2));
    let gate2 = gate.clone();
    let opener = std::thread::spawn(move || gate2.open());
    let report = pool.shutdown();
    opener.join().unwrap();
    assert!(!report.timed_out);
    assert_eq!((report.completed, report.still_running), (2, 0));
}

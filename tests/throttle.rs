//! Throttled and rate-limited scheduler views, after Mule's `ThrottledSchedulerThrottleTestCase`
//! and its throttling regressions (MULE-17938, MULE-18053, MULE-18909, MULE-14590), one
//! behaviour per test.
//!
//! Sequencing uses channels and gates; "the caller is blocked" is observed with a channel that
//! stays empty until a slot frees. Time appears only as loose lower bounds and generous failure
//! guards.

mod common;

use common::{GUARD, Gate, HighWater, PREFIX, block, join, outcome, service, wait_until};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use uberpool::{
    PoolsConfig, RejectKind, Resources, Scheduler, SchedulerConfig, SchedulerError,
    SchedulerService, Strategy, TaskClass, TaskError,
};

/// DEDICATED with roomy pools (cpuLight 4, io up to 64, cpuIntensive 4, no queues).
fn dedicated(name: &str) -> SchedulerService {
    let mut text = format!("{PREFIX}SchedulerPoolStrategy={}\n", Strategy::Dedicated);
    for (key, value) in [
        ("cpuLight.threadPool.size", 4),
        ("cpuLight.workQueue.size", 0),
        ("io.threadPool.coreSize", 1),
        ("io.threadPool.maxSize", 64),
        ("io.workQueue.size", 0),
        ("cpuIntensive.threadPool.size", 4),
        ("cpuIntensive.workQueue.size", 0),
    ] {
        text.push_str(&format!("{PREFIX}{key}={value}\n"));
    }
    let config = PoolsConfig::parse(&text, &Resources::new(2, 1 << 20)).expect("valid");
    SchedulerService::builder()
        .name(name)
        .config(config)
        .build()
        .expect("service starts")
}

fn throttled(svc: &SchedulerService, class: TaskClass, config: SchedulerConfig) -> Scheduler {
    svc.scheduler_with(class, config).expect("a throttled view")
}

fn in_flight(view: &Scheduler) -> (usize, usize) {
    let status = view.throttle().expect("throttled");
    (status.in_flight, status.held)
}

// ---- concurrency limit -----------------------------------------------------------------------

#[test]
fn max_concurrent_tasks_at_or_above_the_pool_max_is_a_plain_view() {
    let svc = dedicated("plain");
    for (class, max) in [
        (TaskClass::CpuLight, 4),
        (TaskClass::Io, 64),
        (TaskClass::CpuIntensive, 4),
    ] {
        let view = throttled(
            &svc,
            class,
            SchedulerConfig::new().max_concurrent_tasks(max),
        );
        assert!(view.throttle().is_none(), "{class}");
        let view = throttled(
            &svc,
            class,
            SchedulerConfig::new().max_concurrent_tasks(max - 1),
        );
        assert_eq!(view.throttle().unwrap().limit, Some(max - 1), "{class}");
    }
}

#[test]
fn max_one_runs_tasks_one_at_a_time() {
    let svc = service("max-one");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let high_water = HighWater::default();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let high_water = high_water.clone();
            view.submit(move || {
                high_water.enter();
                thread::yield_now();
                high_water.leave();
                i
            })
            .unwrap()
        })
        .collect();
    let sum: i32 = handles.into_iter().map(join).sum();
    assert_eq!(sum, 190);
    assert_eq!(high_water.peak(), 1);
    assert_eq!(in_flight(&view), (0, 0));
}

#[test]
fn a_limit_of_3_holds_under_8_submitters_of_1000_tasks_each() {
    // Without a queue every excess caller waits at the gate; with one, most wait in the queue.
    for queue in [0, 16] {
        let svc = service("high-water");
        let view = throttled(
            &svc,
            TaskClass::Io,
            SchedulerConfig::new()
                .max_concurrent_tasks(3)
                .queue_size(queue),
        );
        let high_water = HighWater::default();
        let done = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let submitters: Vec<_> = (0..8)
            .map(|_| {
                let (view, high_water, done, start) = (
                    view.clone(),
                    high_water.clone(),
                    done.clone(),
                    start.clone(),
                );
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..1000 {
                        let (high_water, done) = (high_water.clone(), done.clone());
                        view.execute(move || {
                            high_water.enter();
                            std::hint::black_box((0..50).sum::<u64>());
                            high_water.leave();
                            done.fetch_add(1, Ordering::SeqCst);
                        })
                        .expect("a foreign caller waits, it is never refused");
                    }
                })
            })
            .collect();
        for submitter in submitters {
            submitter.join().unwrap();
        }
        wait_until("all 8,000 tasks", || done.load(Ordering::SeqCst) == 8000);
        assert!(high_water.peak() <= 3, "queue {queue}");
        let status = view.throttle().unwrap();
        assert!(status.peak_in_flight <= 3, "{status:?}");
        assert_eq!(status.throttled, 0, "nobody was refused");
        wait_until("the gate to empty", || in_flight(&view) == (0, 0));
    }
}

#[test]
fn an_excess_task_blocks_a_foreign_caller_until_a_slot_frees() {
    let svc = service("blocks");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let (accepted_tx, accepted_rx) = channel();
    let caller = {
        let view = view.clone();
        thread::spawn(move || {
            let handle = view.submit(|| 2).expect("waits, then is accepted");
            accepted_tx.send(()).unwrap();
            join(handle)
        })
    };
    assert_eq!(
        accepted_rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout),
        "the caller waits while the slot is taken"
    );
    gate.open();
    accepted_rx
        .recv_timeout(GUARD)
        .expect("accepted once the slot frees");
    assert_eq!(caller.join().unwrap(), 2);
    join(first);
}

#[test]
fn an_excess_task_is_throttled_from_a_cpu_light_thread() {
    let svc = dedicated("from-light");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let kind = {
        let view = view.clone();
        join(
            svc.cpu_light()
                .submit(move || view.submit(|| ()).err().map(|r| r.kind()))
                .unwrap(),
        )
    };
    assert_eq!(kind, Some(RejectKind::Throttled));
    assert_eq!(view.throttle().unwrap().throttled, 1);
    gate.open();
    join(first);
    assert_eq!(in_flight(&view), (0, 0));
}

#[test]
fn an_io_thread_waits_for_a_throttled_slot() {
    let svc = dedicated("from-io");
    let view = throttled(
        &svc,
        TaskClass::CpuIntensive,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let (accepted_tx, accepted_rx) = channel();
    let outer = {
        let view = view.clone();
        svc.io()
            .submit(move || {
                let handle = view.submit(|| 3).expect("an io thread waits");
                accepted_tx.send(()).unwrap();
                join(handle)
            })
            .unwrap()
    };
    assert!(accepted_rx.recv_timeout(Duration::from_millis(50)).is_err());
    gate.open();
    assert_eq!(join(outer), 3);
    join(first);
}

#[test]
fn try_submit_and_submit_timeout_are_throttled_instead_of_waiting_forever() {
    let svc = service("timeouts");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let refused = view.try_submit(|| ()).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Throttled);
    let start = Instant::now();
    let refused = view
        .submit_timeout(|| 5, Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Throttled);
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(refused.into_inner()(), 5, "the closure comes back");
    gate.open();
    join(first);
    assert_eq!(in_flight(&view), (0, 0));
}

#[test]
fn max_plus_two_dispatches_do_not_deadlock() {
    // MULE-17938: an increment/check race deadlocked the third and fourth callers.
    let svc = dedicated("max-plus-two");
    for from_wait_group in [false, true] {
        let view = throttled(
            &svc,
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(2),
        );
        let submit_four = {
            let view = view.clone();
            move || {
                let handles: Vec<_> = (0..4)
                    .map(|_| view.submit(thread::yield_now))
                    .collect::<Result<_, _>>()
                    .expect("all four accepted");
                handles.into_iter().map(join).count()
            }
        };
        let count = if from_wait_group {
            join(svc.io().submit(submit_four).unwrap())
        } else {
            submit_four()
        };
        assert_eq!(count, 4);
        assert_eq!(in_flight(&view), (0, 0));
    }
}

#[test]
fn every_accepted_task_runs_once_or_is_cancelled_under_cancels_panics_and_shutdown_now() {
    for round in 0..4 {
        let svc = service("exact");
        let view = throttled(
            &svc,
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(3).queue_size(8),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        let submitted = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(5));
        let submitters: Vec<_> = (0..4)
            .map(|s| {
                let (view, ran, submitted, start) =
                    (view.clone(), ran.clone(), submitted.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    let mut handles = Vec::new();
                    for i in 0..500usize {
                        let ran = ran.clone();
                        match view.submit(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            if i % 10 == 3 {
                                panic!("task {s}/{i} fails");
                            }
                        }) {
                            Ok(handle) => {
                                submitted.fetch_add(1, Ordering::SeqCst);
                                if i % 10 == 7 {
                                    handle.cancel();
                                }
                                handles.push(handle);
                            }
                            Err(refused) => {
                                assert_eq!(refused.kind(), RejectKind::Shutdown);
                                break;
                            }
                        }
                    }
                    handles
                })
            })
            .collect();
        start.wait();
        // Shut down at a different point each round.
        wait_until("some progress", || {
            submitted.load(Ordering::SeqCst) >= 200 * (round + 1)
        });
        let cancelled_at_shutdown = view.shutdown_now();
        let handles: Vec<_> = submitters
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect();
        let (mut ok, mut panicked, mut cancelled) = (0, 0, 0);
        for handle in handles {
            match outcome(handle) {
                Ok(()) => ok += 1,
                Err(TaskError::Panicked(_)) => panicked += 1,
                Err(TaskError::Cancelled) => cancelled += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        let accepted = submitted.load(Ordering::SeqCst);
        assert_eq!(ok + panicked + cancelled, accepted);
        assert_eq!(ok + panicked, ran.load(Ordering::SeqCst), "each ran once");
        // shutdown_now counted every task not started; at most the four submitters' own tasks,
        // still waiting at the gate, were refused instead of accepted.
        assert!(
            cancelled <= accepted && cancelled + 4 >= cancelled_at_shutdown,
            "{cancelled} cancelled, {cancelled_at_shutdown} reported"
        );
        wait_until("the view to terminate", || view.is_terminated());
        assert_eq!(in_flight(&view), (0, 0));
    }
}

// ---- the view's own queue --------------------------------------------------------------------

#[test]
fn the_queue_takes_the_excess_without_blocking_and_releases_it_in_order() {
    let svc = dedicated("queue");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1).queue_size(3),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let (order_tx, order_rx) = channel();
    // From a cpuLight thread, which may never wait: the queue accepts three, refuses the fourth.
    let kinds = {
        let view = view.clone();
        join(
            svc.cpu_light()
                .submit(move || {
                    (1..=4)
                        .map(|i| {
                            let order_tx = order_tx.clone();
                            view.execute(move || order_tx.send(i).unwrap())
                                .err()
                                .map(|r| r.kind())
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap(),
        )
    };
    assert_eq!(kinds, [None, None, None, Some(RejectKind::Throttled)]);
    assert_eq!(in_flight(&view), (1, 3));
    gate.open();
    let order: Vec<i32> = (0..3)
        .map(|_| order_rx.recv_timeout(GUARD).unwrap())
        .collect();
    assert_eq!(order, [1, 2, 3]);
    join(first);
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
}

#[test]
fn cancelling_queued_tasks_keeps_the_counter_exact() {
    // MULE-14590: the count broke when a task was cancelled.
    let svc = service("cancel-count");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1).queue_size(4),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let held: Vec<_> = (0..3).map(|i| view.submit(move || i).unwrap()).collect();
    assert!(held[1].cancel());
    gate.open();
    join(first);
    let outcomes: Vec<_> = held.into_iter().map(outcome).collect();
    assert_eq!(outcomes, [Ok(0), Err(TaskError::Cancelled), Ok(2)]);
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
    assert_eq!(join(view.try_submit(|| 9).expect("a free slot")), 9);
}

#[test]
fn panicking_tasks_give_their_slots_back() {
    let svc = service("panics");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    for _ in 0..3 {
        let handle = view.submit(|| -> u8 { panic!("bad address") }).unwrap();
        assert!(matches!(outcome(handle), Err(TaskError::Panicked(_))));
    }
    assert_eq!(in_flight(&view), (0, 0));
    assert_eq!(join(view.try_submit(|| 1).expect("a free slot")), 1);
}

#[test]
fn shutdown_now_cancels_queued_tasks_and_reports_them() {
    let svc = service("shut-now");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1).queue_size(3),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let held: Vec<_> = (0..3).map(|i| view.submit(move || i).unwrap()).collect();
    assert_eq!(view.shutdown_now(), 3);
    for handle in held {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    assert_eq!(
        in_flight(&view),
        (1, 0),
        "only the running task holds a slot"
    );
    gate.open();
    join(first);
    wait_until("the view to terminate", || view.is_terminated());
    assert_eq!(in_flight(&view), (0, 0));
}

#[test]
fn shutdown_lets_queued_tasks_run_and_wakes_waiting_callers() {
    let svc = service("shut");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1).queue_size(1),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let queued = view.submit(|| "queued").unwrap();
    let (waiting_tx, waiting_rx) = channel();
    let waiter = {
        let view = view.clone();
        thread::spawn(move || {
            waiting_tx.send(()).unwrap();
            view.submit(|| "late").err().map(|r| r.kind())
        })
    };
    waiting_rx.recv_timeout(GUARD).unwrap();
    view.shutdown();
    assert_eq!(waiter.join().unwrap(), Some(RejectKind::Shutdown));
    gate.open();
    join(first);
    assert_eq!(join(queued), "queued");
    wait_until("the view to terminate", || view.is_terminated());
}

#[test]
fn service_shutdown_cancels_held_tasks_and_accounts_for_every_accepted_task() {
    let svc = service("svc-shut");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1).queue_size(3),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let held: Vec<_> = (0..2).map(|i| view.submit(move || i).unwrap()).collect();
    let delayed = view.schedule(Duration::ZERO, || ()).unwrap();
    assert_eq!(in_flight(&view), (1, 3));
    let report = svc.shutdown_timeout(Duration::from_millis(20));
    assert_eq!(report.cancelled, 3, "{report:?}");
    assert_eq!(report.still_running, 1, "{report:?}");
    assert_eq!(report.accepted(), 4);
    for handle in held {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    assert!(delayed.is_cancelled() && delayed.is_done(), "{delayed:?}");
    gate.open();
    join(first);
}

// ---- timed tasks on a throttled view ---------------------------------------------------------

#[test]
fn delayed_tasks_are_throttled_when_they_run_and_give_their_slots_back() {
    // MULE-18053 (throttled too early) and MULE-18909 (counter not decremented).
    let svc = service("delayed");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let high_water = HighWater::default();
    let (tx, rx) = channel();
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (high_water, tx) = (high_water.clone(), tx.clone());
            view.schedule(Duration::from_millis(1), move || {
                high_water.enter();
                thread::yield_now();
                high_water.leave();
                tx.send(()).unwrap();
            })
            .expect("every delayed task is accepted")
        })
        .collect();
    for _ in 0..20 {
        rx.recv_timeout(GUARD).unwrap();
    }
    assert_eq!(high_water.peak(), 1);
    wait_until("every delayed task done", || {
        handles.iter().all(|h| h.is_done())
    });
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
    // Nested: a delayed task scheduling another on the same view.
    let (tx, rx) = channel();
    let inner_view = view.clone();
    let _outer = view
        .schedule(Duration::from_millis(1), move || {
            let _inner = inner_view
                .schedule(Duration::from_millis(1), move || tx.send(()).unwrap())
                .unwrap();
        })
        .unwrap();
    rx.recv_timeout(GUARD).unwrap();
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
    assert_eq!(join(view.try_submit(|| 1).expect("a free slot")), 1);
}

#[test]
fn cancelling_a_delayed_task_of_a_throttled_view_keeps_the_counter_exact() {
    let svc = service("delayed-cancel");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let handle = view.schedule(Duration::from_secs(3600), || ()).unwrap();
    assert!(handle.cancel());
    assert_eq!(in_flight(&view), (0, 0));
    // Cancel while it waits for a slot (the timer retries it).
    let gate = Gate::new();
    let first = block(&view, &gate);
    let waiting = view.schedule(Duration::ZERO, || ()).unwrap();
    wait_until("a throttled offer", || {
        view.throttle().unwrap().throttled >= 1
    });
    assert!(waiting.cancel());
    gate.open();
    join(first);
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
    view.shutdown();
    assert!(view.is_terminated());
}

#[test]
fn cancelling_a_running_delayed_task_of_a_throttled_view_keeps_the_counter_exact() {
    let svc = service("delayed-running");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let gate = Gate::new();
    let (started_tx, started_rx) = channel();
    let handle = {
        let gate = gate.clone();
        view.schedule(Duration::from_millis(1), move || {
            started_tx.send(()).unwrap();
            gate.wait();
        })
        .unwrap()
    };
    started_rx.recv_timeout(GUARD).unwrap();
    assert_eq!(in_flight(&view), (1, 0));
    assert!(!handle.cancel(), "a running task cannot be cancelled");
    gate.open();
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
    assert_eq!(join(view.try_submit(|| 4).expect("a free slot")), 4);
}

#[test]
fn shutdown_now_cancels_the_delayed_tasks_of_a_throttled_view() {
    // Mule's ThrottledScheduler does not track delayed tasks, so stopping it leaks them.
    let svc = service("delayed-leak");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1),
    );
    let (tx, rx) = channel::<()>();
    let handle = view
        .schedule(Duration::from_secs(3600), move || tx.send(()).unwrap())
        .unwrap();
    let periodic = view
        .schedule_at_fixed_rate(Duration::from_secs(3600), Duration::from_secs(1), || ())
        .unwrap();
    assert_eq!(view.shutdown_now(), 1);
    assert!(handle.is_cancelled() && periodic.is_cancelled());
    assert_eq!(rx.recv_timeout(GUARD), Err(RecvTimeoutError::Disconnected));
    assert!(view.is_terminated());
}

#[test]
fn a_delayed_task_waiting_in_the_queue_is_cancelled_by_shutdown_now() {
    let svc = service("delayed-queued");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(1).queue_size(2),
    );
    let gate = Gate::new();
    let first = block(&view, &gate);
    let (tx, rx) = channel::<()>();
    let queued = view
        .schedule(Duration::ZERO, move || tx.send(()).unwrap())
        .unwrap();
    assert_eq!(
        in_flight(&view),
        (1, 1),
        "the due task waits in the view's queue"
    );
    assert_eq!(view.shutdown_now(), 1);
    assert!(queued.is_cancelled() && queued.is_done());
    assert_eq!(rx.recv_timeout(GUARD), Err(RecvTimeoutError::Disconnected));
    gate.open();
    join(first);
    wait_until("the view to terminate", || view.is_terminated());
    assert_eq!(in_flight(&view), (0, 0));
}

// ---- rate limits -----------------------------------------------------------------------------

#[test]
fn a_rate_of_5_per_second_spaces_the_tasks_after_the_first_burst() {
    let svc = service("rate");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new()
            .rate_limit(5, Duration::from_secs(1))
            .queue_size(100),
    );
    let (tx, rx) = channel();
    let start = Instant::now();
    for i in 0..14 {
        let tx = tx.clone();
        view.execute(move || tx.send((i, Instant::now())).unwrap())
            .unwrap();
    }
    let starts: Vec<(i32, Instant)> = (0..14).map(|_| rx.recv_timeout(GUARD).unwrap()).collect();
    let mut order: Vec<i32> = starts.iter().map(|(i, _)| *i).collect();
    // The burst of five runs at once on five threads, in any order; the held ones are released
    // one by one, 200 ms apart.
    order[..5].sort_unstable();
    assert_eq!(
        order,
        (0..14).collect::<Vec<_>>(),
        "held tasks start in order"
    );
    let last = starts[13].1 - start;
    // 9 tasks after the burst of 5, one every 200 ms: 1.8 s, with a loose margin.
    assert!(last >= Duration::from_millis(1600), "done after {last:?}");
    let status = view.throttle().unwrap();
    assert_eq!(status.rate, Some((5, Duration::from_secs(1))));
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
}

#[test]
fn a_rate_limited_view_holds_tasks_without_blocking_callers_that_may_not_wait() {
    let svc = dedicated("rate-light");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new()
            .rate_limit(1, Duration::from_secs(3600))
            .queue_size(2),
    );
    let view2 = view.clone();
    let kinds = join(
        svc.cpu_light()
            .submit(move || {
                (0..4)
                    .map(|_| view2.execute(|| ()).err().map(|r| r.kind()))
                    .collect::<Vec<_>>()
            })
            .unwrap(),
    );
    assert_eq!(
        kinds,
        [None, None, None, Some(RejectKind::Throttled)],
        "one starts, two are held, the fourth finds the queue full"
    );
    wait_until("the first task to finish", || in_flight(&view) == (0, 2));
    assert_eq!(
        view.shutdown_now(),
        2,
        "the held tasks are cancelled and reported"
    );
    assert_eq!(in_flight(&view), (0, 0));
}

#[test]
fn a_rate_and_a_limit_combine() {
    let svc = service("rate-and-limit");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new()
            .max_concurrent_tasks(1)
            .rate_limit(1000, Duration::from_secs(1))
            .queue_size(50),
    );
    let high_water = HighWater::default();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let high_water = high_water.clone();
            view.submit(move || {
                high_water.enter();
                thread::yield_now();
                high_water.leave();
            })
            .unwrap()
        })
        .collect();
    handles.into_iter().for_each(join);
    assert_eq!(high_water.peak(), 1);
    wait_until("the gate to empty", || in_flight(&view) == (0, 0));
}

// ---- configuration ---------------------------------------------------------------------------

#[test]
fn nonsense_throttling_options_are_refused() {
    let svc = service("options");
    let err = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().rate_limit(0, Duration::from_secs(1)),
        )
        .unwrap_err();
    assert!(
        matches!(err, SchedulerError::InvalidRateLimit { n: 0, .. }),
        "{err}"
    );
    let err = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(0),
        )
        .unwrap_err();
    assert!(
        matches!(err, SchedulerError::ZeroConcurrency { .. }),
        "{err}"
    );
    let err = svc
        .scheduler_with(TaskClass::Io, SchedulerConfig::new().queue_size(4))
        .unwrap_err();
    assert!(
        matches!(err, SchedulerError::QueueWithoutThrottle { .. }),
        "{err}"
    );
    let err = svc
        .custom(
            SchedulerConfig::new()
                .max_concurrent_tasks(1)
                .rate_limit(1, Duration::from_secs(1)),
        )
        .unwrap_err();
    assert!(matches!(err, SchedulerError::RateLimitOnCustom), "{err}");
}

#[test]
fn the_debug_form_shows_the_throttle() {
    let svc = service("debug");
    let view = throttled(
        &svc,
        TaskClass::Io,
        SchedulerConfig::new().max_concurrent_tasks(2),
    );
    let text = format!("{view:?}");
    assert!(text.contains("limit: Some(2)"), "{text}");
}

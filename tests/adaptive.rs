//! A view with an adaptive limit follows every rule of a throttled view at its current limit —
//! caller roles, the own queue, shutdown, accounting — and its tasks' reports move the limit.
//! One behaviour per test.
//!
//! While the tasks holding slots are blocked no task ends, so no sample arrives and the limit
//! stays where the test put it: the role and shutdown tests sequence on gates and channels as
//! `tests/throttle.rs` does. Time appears only as generous failure guards (and one "still
//! blocked" check of 50 ms).

mod common;

use common::{GUARD, Gate, PREFIX, block, join, outcome, service, wait_until};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use uberpool::{
    AdaptiveConcurrency, LimitDecision, MAX_DELAY, PoolsConfig, RejectKind, Resources, Scheduler,
    SchedulerConfig, SchedulerError, SchedulerService, Strategy, TaskClass, TaskError,
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

/// An IO view whose adaptive limit starts at `initial`, with a queue of `queue`.
fn adaptive(svc: &SchedulerService, initial: usize, queue: usize) -> Scheduler {
    adaptive_with(
        svc,
        AdaptiveConcurrency::new().initial_limit(initial),
        queue,
    )
}

fn adaptive_with(svc: &SchedulerService, options: AdaptiveConcurrency, queue: usize) -> Scheduler {
    svc.scheduler_with(
        TaskClass::Io,
        SchedulerConfig::new()
            .name("adaptive")
            .adaptive_concurrency(options)
            .queue_size(queue),
    )
    .expect("an adaptive view")
}

fn in_flight(view: &Scheduler) -> (usize, usize) {
    let status = view.throttle().expect("gated");
    (status.in_flight, status.held)
}

fn limit(view: &Scheduler) -> usize {
    view.throttle().and_then(|s| s.limit).expect("a limit")
}

// ---- what tasks tell the limit ---------------------------------------------------------------

#[test]
fn a_task_that_reports_overload_backs_the_limit_off() {
    let svc = service("overload");
    let view = adaptive(&svc, 10, 0);
    assert!(join(view.submit(uberpool::report_overload).unwrap()));
    let status = view.throttle().unwrap();
    assert_eq!(status.limit, Some(8));
    let adaptive = status.adaptive.unwrap();
    assert_eq!((adaptive.overloads, adaptive.backoffs), (1, 1));
    assert_eq!(adaptive.decision, LimitDecision::Backoff);
    assert_eq!(in_flight(&view), (0, 0));
}

#[test]
fn reports_outside_an_adaptive_task_do_nothing() {
    let svc = service("nowhere");
    assert!(!uberpool::report_overload());
    assert!(!uberpool::ignore_sample());
    assert!(!join(svc.io().submit(uberpool::report_overload).unwrap()));
    let fixed = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(2),
        )
        .unwrap();
    assert!(!join(fixed.submit(uberpool::report_overload).unwrap()));
    assert_eq!(fixed.throttle().unwrap().adaptive, None);
}

#[test]
fn an_ignored_task_is_counted_and_an_overload_wins_over_it() {
    let svc = service("ignored");
    let view = adaptive(&svc, 10, 0);
    assert!(join(view.submit(uberpool::ignore_sample).unwrap()));
    let both = view.submit(|| uberpool::report_overload() && uberpool::ignore_sample());
    assert!(join(both.unwrap()));
    let adaptive = view.throttle().unwrap().adaptive.unwrap();
    assert_eq!((adaptive.ignored, adaptive.overloads), (1, 1));
    assert_eq!(limit(&view), 8);
}

#[test]
fn a_panicking_task_is_a_sample_its_report_stands_and_its_slot_comes_back() {
    let svc = service("panics");
    let view = adaptive(&svc, 10, 0);
    let handle = view
        .submit(|| -> u8 {
            uberpool::report_overload();
            panic!("the relay dropped the connection")
        })
        .unwrap();
    assert!(matches!(outcome(handle), Err(TaskError::Panicked(_))));
    assert_eq!(limit(&view), 8);
    for _ in 0..3 {
        let handle = view.submit(|| -> u8 { panic!("bad address") }).unwrap();
        assert!(matches!(outcome(handle), Err(TaskError::Panicked(_))));
    }
    assert_eq!(in_flight(&view), (0, 0));
    assert_eq!(join(view.try_submit(|| 1).expect("a free slot")), 1);
}

#[test]
fn a_lowered_limit_lets_the_tasks_in_flight_finish_and_admits_none_until_below_it() {
    let svc = service("lowered");
    let view = adaptive(&svc, 4, 0);
    let gates: Vec<Gate> = (0..4).map(|_| Gate::new()).collect();
    let (started_tx, started_rx) = channel();
    let handles: Vec<_> = gates
        .iter()
        .enumerate()
        .map(|(i, gate)| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            view.submit(move || {
                started_tx.send(()).unwrap();
                gate.wait();
                // The first task to be let go met a 421.
                i == 0 && uberpool::report_overload()
            })
            .unwrap()
        })
        .collect();
    for _ in 0..4 {
        started_rx.recv_timeout(GUARD).unwrap();
    }
    let mut handles = handles.into_iter();
    gates[0].open();
    assert!(join(handles.next().unwrap()));
    // 4 × 0.8 = 3.2: limit 3, with 3 still in flight.
    assert_eq!(limit(&view), 3);
    assert_eq!(in_flight(&view), (3, 0));
    assert_eq!(view.free_slots(), 0);
    let refused = view.try_submit(|| ()).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Throttled);
    gates[1].open();
    assert!(!join(handles.next().unwrap()));
    assert_eq!(in_flight(&view), (2, 0));
    assert_eq!(
        join(view.try_submit(|| 7).expect("2 in flight, limit 3")),
        7
    );
    for gate in &gates[2..] {
        gate.open();
    }
    handles.for_each(|h| assert!(!join(h)));
    assert_eq!(in_flight(&view), (0, 0));
}

// ---- caller roles at the current limit -------------------------------------------------------

#[test]
fn an_excess_task_blocks_a_foreign_caller_until_a_slot_frees() {
    let svc = service("blocks");
    let view = adaptive(&svc, 1, 0);
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
fn an_excess_task_is_throttled_from_a_cpu_light_thread_and_waits_on_an_io_thread() {
    let svc = dedicated("roles");
    let view = adaptive(&svc, 1, 0);
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
    let (accepted_tx, accepted_rx) = channel();
    let from_io = {
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
    assert_eq!(join(from_io), 3);
    join(first);
    assert_eq!(in_flight(&view), (0, 0));
}

#[test]
fn try_submit_and_submit_timeout_are_throttled_instead_of_waiting_forever() {
    let svc = service("timeouts");
    let view = adaptive(&svc, 1, 0);
    let gate = Gate::new();
    let first = block(&view, &gate);
    assert_eq!(
        view.try_submit(|| ()).unwrap_err().kind(),
        RejectKind::Throttled
    );
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
fn a_task_of_the_view_runs_its_own_excess_inline_and_the_inline_task_reports_for_itself() {
    let svc = dedicated("inline");
    let view = adaptive(&svc, 2, 0);
    let gate = Gate::new();
    let blocker = block(&view, &gate);
    let outer = {
        let view = view.clone();
        view.clone()
            .submit(move || {
                // The view is at its limit (2): this io thread holds a slot, so the inner task
                // runs here, on a lent slot, and its report is its own.
                let inner = view.submit(uberpool::report_overload).expect("run inline");
                assert!(inner.is_finished(), "ran inline");
                let reported = join(inner);
                (reported, uberpool::current_class())
            })
            .unwrap()
    };
    assert_eq!(join(outer), (true, Some(TaskClass::Io)));
    let adaptive = view.throttle().unwrap().adaptive.unwrap();
    assert_eq!(
        adaptive.overloads, 1,
        "the outer task's own outcome is untouched"
    );
    assert_eq!(limit(&view), 1, "2 × 0.8");
    gate.open();
    join(blocker);
    assert_eq!(in_flight(&view), (0, 0));
}

// ---- the own queue, shutdown and accounting --------------------------------------------------

#[test]
fn the_queue_takes_the_excess_and_shutdown_lets_it_run_while_refusing_waiting_callers() {
    let svc = service("shut");
    let view = adaptive(&svc, 1, 1);
    let gate = Gate::new();
    let first = block(&view, &gate);
    let queued = view.submit(|| "queued").unwrap();
    assert_eq!(in_flight(&view), (1, 1));
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
fn shutdown_now_and_service_shutdown_cancel_held_tasks_and_account_for_them() {
    let svc = service("shut-now");
    let view = adaptive(&svc, 1, 3);
    let gate = Gate::new();
    let first = block(&view, &gate);
    let held: Vec<_> = (0..3).map(|i| view.submit(move || i).unwrap()).collect();
    assert_eq!(view.shutdown_now(), 3);
    for handle in held {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    assert_eq!(in_flight(&view), (1, 0));
    gate.open();
    join(first);
    wait_until("the view to terminate", || view.is_terminated());

    // The service's report counts a service's cancelled tasks: a fresh one.
    let svc = service("svc-shut");
    let other = adaptive(&svc, 1, 3);
    let gate = Gate::new();
    let first = block(&other, &gate);
    let held: Vec<_> = (0..2).map(|i| other.submit(move || i).unwrap()).collect();
    let report = svc.shutdown_timeout(Duration::from_millis(20));
    assert_eq!(
        (report.cancelled, report.still_running),
        (2, 1),
        "{report:?}"
    );
    for handle in held {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    gate.open();
    join(first);
}

#[test]
fn every_accepted_task_runs_once_or_is_cancelled_under_overloads_panics_cancels_and_shutdown_now() {
    for round in 0..4 {
        let svc = service("exact");
        let options = AdaptiveConcurrency::new()
            .initial_limit(3)
            .floor(2)
            .ceiling(16);
        let view = adaptive_with(&svc, options, 8);
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
                            match i % 10 {
                                3 => panic!("task {s}/{i} fails"),
                                5 => assert!(uberpool::report_overload()),
                                9 => assert!(uberpool::ignore_sample()),
                                _ => {}
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
        wait_until("some progress", || {
            submitted.load(Ordering::SeqCst) >= 200 * (round + 1)
        });
        view.shutdown_now();
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
        assert_eq!(ok + panicked + cancelled, submitted.load(Ordering::SeqCst));
        assert_eq!(ok + panicked, ran.load(Ordering::SeqCst), "each ran once");
        wait_until("the view to terminate", || view.is_terminated());
        assert_eq!(in_flight(&view), (0, 0));
        let adaptive = view.throttle().unwrap().adaptive.unwrap();
        assert!((2..=16).contains(&adaptive.limit), "{adaptive:?}");
        assert!(
            adaptive.overloads > 0 && adaptive.backoffs <= adaptive.overloads,
            "{adaptive:?}"
        );
    }
}

// ---- options ---------------------------------------------------------------------------------

#[test]
fn nonsense_adaptive_options_are_refused_with_the_option_named() {
    let svc = service("options");
    let bad = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("smtp")
                .adaptive_concurrency(AdaptiveConcurrency::new().floor(8).ceiling(4)),
        )
        .unwrap_err();
    assert!(
        matches!(
            &bad,
            SchedulerError::InvalidAdaptive {
                option: "ceiling",
                ..
            }
        ),
        "{bad:?}"
    );
    assert_eq!(
        bad.to_string(),
        "scheduler 'smtp': adaptive_concurrency ceiling(4) is out of range: at least the floor"
    );
    let both = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .max_concurrent_tasks(4)
                .adaptive_concurrency(AdaptiveConcurrency::new()),
        )
        .unwrap_err();
    assert!(
        matches!(both, SchedulerError::FixedAndAdaptiveLimit { .. }),
        "{both:?}"
    );
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .max_concurrent_tasks(4)
                .adaptive_concurrency(AdaptiveConcurrency::new()),
        )
        .unwrap_err();
    assert!(
        matches!(custom, SchedulerError::AdaptiveOnCustom),
        "{custom:?}"
    );
    let rate = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .rate_limit(0, Duration::from_secs(1))
                .adaptive_concurrency(AdaptiveConcurrency::new()),
        )
        .unwrap_err();
    assert!(
        matches!(rate, SchedulerError::InvalidRateLimit { .. }),
        "{rate:?}"
    );
}

#[test]
fn the_overload_timeout_goes_up_to_max_delay_and_no_further() {
    let svc = service("timeouts");
    let with = |timeout| {
        svc.scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .adaptive_concurrency(AdaptiveConcurrency::new().overload_timeout(timeout)),
        )
    };
    assert!(with(MAX_DELAY).is_ok());
    let beyond = with(MAX_DELAY + Duration::from_nanos(1)).unwrap_err();
    assert!(
        matches!(
            beyond,
            SchedulerError::InvalidAdaptive {
                option: "overload_timeout",
                ..
            }
        ),
        "{beyond:?}"
    );
}

#[test]
fn an_adaptive_limit_combines_with_a_rate_and_shows_in_the_status() {
    let svc = service("status");
    let view = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .adaptive_concurrency(AdaptiveConcurrency::new().initial_limit(6).ceiling(50))
                .rate_limit(1000, Duration::from_secs(1)),
        )
        .unwrap();
    let status = view.throttle().unwrap();
    assert_eq!(status.limit, Some(6));
    assert_eq!(status.rate, Some((1000, Duration::from_secs(1))));
    assert_eq!(status.queue_size, 1000, "a rate's default queue");
    let adaptive = status.adaptive.unwrap();
    assert_eq!(
        (adaptive.limit, adaptive.floor, adaptive.ceiling),
        (6, 1, 50)
    );
    assert_eq!(adaptive.exact_limit, 6.0);
    assert!(format!("{view:?}").contains("adaptive: Some"));
    assert_eq!(join(view.submit(|| 4).unwrap()), 4);
}

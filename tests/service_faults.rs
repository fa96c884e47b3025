//! Structural faults of the dispatch layer, each a regression test: no hang from the library's
//! own structure (a timer tick racing a shutdown, a task submitting to its own full throttled
//! view), no stack overflow from nested inline runs, absurd durations refused up front.
//!
//! A hang is detected by running the operation on a thread and waiting for it with the generous
//! failure guard; the guard is never a sequencing device.

mod common;

use common::{GUARD, PREFIX, join, service};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use uberpool::{
    MAX_DELAY, MAX_INLINE_DEPTH, PoolsConfig, RejectKind, Resources, SchedulerConfig,
    SchedulerError, SchedulerService, Strategy, TaskClass,
};

/// Runs `f` on its own thread; panics if it does not return within the guard.
fn within_guard<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("{what} did not return within the guard: hung"))
}

/// A DEDICATED service with `light` cpuLight threads, up to `io` io threads and `intensive`
/// cpuIntensive threads, no queues.
fn dedicated(name: &str, light: usize, io: usize, intensive: usize) -> SchedulerService {
    let mut text = format!("{PREFIX}SchedulerPoolStrategy={}\n", Strategy::Dedicated);
    for (key, value) in [
        ("cpuLight.threadPool.size", light),
        ("cpuLight.workQueue.size", 0),
        ("io.threadPool.coreSize", 1),
        ("io.threadPool.maxSize", io),
        ("io.workQueue.size", 0),
        ("cpuIntensive.threadPool.size", intensive),
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

/// Issue 13 row 3: a periodic tick offering to a rate-limited view while the service shuts down
/// used to hold the task's lock across the offer; the drained queue dropped the tick's own
/// periodic run, whose `Drop` took the same lock, and the shutdown hung for ever.
#[test]
fn shutdown_with_fixed_delay_ticks_racing_a_rate_limited_view_never_hangs() {
    for round in 0..40 {
        within_guard("a shutdown with ticks in flight", move || {
            let svc = service(&format!("tick-race-{round}"));
            let view = svc
                .scheduler_with(
                    TaskClass::Io,
                    SchedulerConfig::new()
                        .rate_limit(200, Duration::from_millis(100))
                        .queue_size(100_000),
                )
                .unwrap();
            let handles: Vec<_> = (0..64)
                .map(|_| {
                    view.schedule_with_fixed_delay(Duration::ZERO, Duration::from_nanos(1), || {})
                        .unwrap()
                })
                .collect();
            // Shut down once the rate holds runs in the view's queue and ticks keep coming.
            assert!(common::poll_until(|| view.throttle().unwrap().held > 0));
            let report = svc.shutdown_timeout(Duration::from_millis(200));
            assert_eq!(report.still_running, 0, "{report:?}");
            assert!(handles.iter().all(|h| h.is_done()));
        });
    }
}

/// Issue 13 row 4: a task of a throttled view (`max_concurrent_tasks(1)`) that submits to its
/// own full view from a thread that may wait used to wait for the slot it holds itself.
#[test]
fn a_task_submitting_to_its_own_full_throttled_view_runs_the_task_inline() {
    for strategy in ["uber", "dedicated"] {
        let svc = match strategy {
            "uber" => service("own-view-uber"),
            _ => dedicated("own-view-dedicated", 2, 8, 2),
        };
        let view = svc
            .scheduler_with(
                TaskClass::Io,
                SchedulerConfig::new().max_concurrent_tasks(1),
            )
            .unwrap();
        let inner_view = view.clone();
        let outer = view
            .submit(move || {
                let outer_thread = thread::current().id();
                let inner = inner_view
                    .submit(move || thread::current().id() == outer_thread)
                    .expect("accepted: run inline on the slot the caller holds");
                inner.join_timeout(GUARD).map_err(|_| "the inner task hung")
            })
            .unwrap();
        let inner = within_guard("the outer task", move || outer.join_timeout(GUARD));
        let ran_on_the_callers_thread = inner
            .expect("the outer task finished")
            .expect("no panic")
            .expect("the inner task finished")
            .expect("no panic");
        assert!(ran_on_the_callers_thread, "{strategy}: run inline");
        let status = view.throttle().unwrap();
        assert_eq!(
            (status.in_flight, status.held),
            (0, 0),
            "{strategy}: slots given back"
        );
        assert_eq!(svc.metrics().for_class(TaskClass::Io).caller_ran, 1);
        svc.shutdown();
    }
}

/// A task of a throttled view on a thread that may not wait (a CPU thread) is refused rather
/// than run inline or made to wait when its own view is full.
#[test]
fn a_cpu_task_submitting_to_its_own_full_throttled_view_is_refused() {
    let svc = dedicated("own-view-cpu", 2, 8, 4);
    let view = svc
        .scheduler_with(
            TaskClass::CpuIntensive,
            SchedulerConfig::new().max_concurrent_tasks(1),
        )
        .unwrap();
    let inner_view = view.clone();
    let outer = view
        .submit(move || inner_view.submit(|| ()).map(drop).map_err(|r| r.kind()))
        .unwrap();
    assert_eq!(join(outer), Err(RejectKind::Throttled));
    svc.shutdown();
}

/// Issue 13 row 5: a CPU_LIGHT task that keeps submitting CPU_LIGHT work to its full pool ran
/// each task inline on one stack, without limit, until the process aborted on a stack overflow.
#[test]
fn nested_inline_runs_stop_at_the_depth_bound_with_the_work_refused() {
    let svc = dedicated("deep-inline", 1, 1, 1);
    let light = svc.cpu_light();
    let deepest = Arc::new(AtomicUsize::new(0));
    let refusal = Arc::new(Mutex::new(None));

    fn nest(
        light: uberpool::Scheduler,
        depth: usize,
        deepest: Arc<AtomicUsize>,
        refusal: Arc<Mutex<Option<RejectKind>>>,
    ) {
        deepest.fetch_max(depth, Ordering::SeqCst);
        let (next, deeper, refused) = (light.clone(), deepest.clone(), refusal.clone());
        if let Err(rejected) = light.execute(move || nest(next, depth + 1, deeper, refused)) {
            *refusal.lock().unwrap() = Some(rejected.kind());
            drop(rejected.into_inner());
        }
    }

    let (light2, deepest2, refusal2) = (light.clone(), deepest.clone(), refusal.clone());
    let top = light
        .submit(move || nest(light2, 0, deepest2, refusal2))
        .unwrap();
    within_guard("the nested task", move || join(top));
    assert_eq!(deepest.load(Ordering::SeqCst), MAX_INLINE_DEPTH);
    assert_eq!(*refusal.lock().unwrap(), Some(RejectKind::Busy));
    let light_pool = svc.metrics().for_class(TaskClass::CpuLight).clone();
    assert_eq!(light_pool.caller_ran, MAX_INLINE_DEPTH as u64);
    assert_eq!(light_pool.rejected, 1);
    svc.shutdown();
}

/// Issue 13 row 7: `rate_limit(1, Duration::MAX)` used to be accepted, after which every submit
/// panicked on an `Instant` overflow and leaked the view's count.
#[test]
fn a_rate_period_beyond_max_delay_is_refused_up_front() {
    let svc = service("absurd-rate");
    for per in [Duration::MAX, MAX_DELAY + Duration::from_secs(1)] {
        let refused = svc
            .scheduler_with(TaskClass::Io, SchedulerConfig::new().rate_limit(1, per))
            .unwrap_err();
        assert!(
            matches!(refused, SchedulerError::InvalidRateLimit { n: 1, per: p, .. } if p == per),
            "{refused}"
        );
    }
    let longest = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .rate_limit(1, MAX_DELAY)
                .queue_size(0),
        )
        .expect("the longest period is accepted");
    join(longest.submit(|| ()).unwrap());
    assert!(
        longest.try_submit(|| ()).is_err(),
        "the next start is a period away"
    );
    longest.shutdown();
    svc.shutdown();
}

/// Issue 13 row 7: `shutdown_timeout(Duration::MAX)` on a view used to make `stop()` panic.
#[test]
fn a_stop_timeout_beyond_max_delay_is_refused_up_front() {
    let svc = service("absurd-stop");
    let refused = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().shutdown_timeout(Duration::MAX),
        )
        .unwrap_err();
    assert!(
        matches!(
            refused,
            SchedulerError::DurationTooLarge {
                option: "shutdown_timeout",
                ..
            }
        ),
        "{refused}"
    );
    let refused = svc
        .custom(
            SchedulerConfig::new()
                .max_concurrent_tasks(1)
                .shutdown_timeout(Duration::MAX),
        )
        .unwrap_err();
    assert!(matches!(refused, SchedulerError::DurationTooLarge { .. }));
    let view = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().shutdown_timeout(MAX_DELAY),
        )
        .unwrap();
    assert!(within_guard("stop", move || view.stop()));
    svc.shutdown();
}

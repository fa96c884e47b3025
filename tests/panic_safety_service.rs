//! Panics from user code anywhere, on every kind of view: a plain class scheduler, a throttled
//! view, a rate-limited view, a custom scheduler, delayed tasks and flows. For every kind of
//! misbehaviour each test checks that the worker thread survives (the one-thread pool behind the
//! view runs the next task), the gate's slot is given back, the handle resolves, and the
//! shutdown report accounts for every task.
//!
//! The misbehaviours, after tokio's `task_abort` tests: a task that panics; one whose panic
//! payload panics when dropped; one whose captured value panics when dropped, after running or
//! dropped unrun (cancelled, or drained at shutdown); one whose result panics when dropped
//! because nobody reads it.

mod common;

use common::{GUARD, Gate, PREFIX, join, outcome};
use std::panic::panic_any;
use std::sync::mpsc::channel;
use std::thread;
use std::time::Duration;

use uberpool::{
    Flow, PoolsConfig, Resources, Scheduler, SchedulerConfig, SchedulerService, Strategy,
    TaskClass, TaskError,
};

/// Panics when dropped, unless the thread is already panicking (a double panic would abort).
struct DropBomb(&'static str);

impl Drop for DropBomb {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("{} panicked in Drop", self.0);
        }
    }
}

/// A DEDICATED service whose pools have one thread each (io may grow to 4), no queues.
fn service(name: &str) -> SchedulerService {
    let mut text = format!("{PREFIX}SchedulerPoolStrategy={}\n", Strategy::Dedicated);
    for (key, value) in [
        ("cpuLight.threadPool.size", 1),
        ("cpuLight.workQueue.size", 0),
        ("io.threadPool.coreSize", 1),
        ("io.threadPool.maxSize", 4),
        ("io.workQueue.size", 0),
        ("cpuIntensive.threadPool.size", 1),
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

/// The kinds of view a misbehaving task is submitted to.
fn views(service: &SchedulerService) -> Vec<(&'static str, Scheduler)> {
    vec![
        ("cpuIntensive view", service.cpu_intensive()),
        (
            "throttled view",
            service
                .scheduler_with(
                    TaskClass::Io,
                    SchedulerConfig::new().max_concurrent_tasks(1).queue_size(4),
                )
                .unwrap(),
        ),
        (
            "rate-limited view",
            service
                .scheduler_with(
                    TaskClass::CpuIntensive,
                    SchedulerConfig::new().rate_limit(1000, Duration::from_secs(1)),
                )
                .unwrap(),
        ),
        (
            "custom scheduler",
            service
                .custom(
                    SchedulerConfig::new()
                        .name("custom")
                        .max_concurrent_tasks(1),
                )
                .unwrap(),
        ),
    ]
}

/// The view still works: its next task runs, and a gate has every slot back.
fn still_works(label: &str, view: &Scheduler) {
    assert_eq!(
        view.submit(|| 7).unwrap().join_timeout(GUARD).ok(),
        Some(Ok(7)),
        "{label}: the next task runs"
    );
    if let Some(status) = view.throttle() {
        assert!(
            common::poll_until(|| view.throttle().unwrap().in_flight == 0),
            "{label}: a slot leaked: {status:?}"
        );
    }
}

/// The service goes down with every task accounted for.
fn accounted_for(service: &SchedulerService) {
    let report = service.shutdown_timeout(GUARD);
    assert_eq!(report.still_running, 0, "{report:?}");
    assert!(!report.timed_out, "{report:?}");
    for pool in service.metrics().pools {
        assert_eq!(
            pool.submitted,
            pool.completed + pool.cancelled,
            "{}: {pool:?}",
            pool.name
        );
    }
}

#[test]
fn a_panicking_task_leaves_every_view_working() {
    let service = service("panics");
    for (label, view) in views(&service) {
        let handle = view.submit(|| -> u32 { panic!("boom") }).unwrap();
        match outcome(handle) {
            Err(TaskError::Panicked(message)) => assert!(message.contains("boom"), "{label}"),
            other => panic!("{label}: {other:?}"),
        }
        still_works(label, &view);
    }
    accounted_for(&service);
}

#[test]
fn a_panic_payload_that_panics_when_dropped_leaves_every_view_working() {
    let service = service("payload");
    for (label, view) in views(&service) {
        let handle = view
            .submit(|| -> u32 { panic_any(DropBomb("a panic payload")) })
            .unwrap();
        assert!(
            matches!(outcome(handle), Err(TaskError::Panicked(_))),
            "{label}"
        );
        still_works(label, &view);
    }
    accounted_for(&service);
}

#[test]
fn a_captured_value_that_panics_when_dropped_after_running_leaves_every_view_working() {
    let service = service("captured-run");
    for (label, view) in views(&service) {
        let bomb = DropBomb("a captured value");
        let handle = view
            .submit(move || {
                let _bomb = bomb;
                5
            })
            .unwrap();
        // The value's Drop runs inside the task: a panic of the task.
        assert!(
            matches!(outcome(handle), Err(TaskError::Panicked(_)) | Ok(5)),
            "{label}"
        );
        still_works(label, &view);
    }
    accounted_for(&service);
}

#[test]
fn a_captured_value_that_panics_when_its_cancelled_closure_is_dropped_leaves_the_view_working() {
    let service = service("captured-cancel");
    // The views where a task can wait, accepted, behind a running one without its submitter
    // waiting: a throttled view's own queue, and a custom scheduler's pool queue.
    for (label, view) in views(&service)
        .into_iter()
        .filter(|(label, _)| matches!(*label, "throttled view" | "custom scheduler"))
    {
        let gate = Gate::new();
        let blocker = common::block(&view, &gate);
        let bomb = DropBomb("a cancelled closure's value");
        let queued = view
            .try_submit(move || {
                let _bomb = bomb;
            })
            .unwrap_or_else(|_| panic!("{label}: there is room to wait"));
        assert!(queued.cancel(), "{label}: not started, so cancelled");
        gate.open();
        join(blocker);
        assert_eq!(outcome(queued), Err(TaskError::Cancelled), "{label}");
        still_works(label, &view);
    }
    accounted_for(&service);
}

#[test]
fn a_captured_value_that_panics_when_drained_at_shutdown_is_counted_cancelled() {
    let service = service("captured-drain");
    let view = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(1).queue_size(4),
        )
        .unwrap();
    let gate = Gate::new();
    let blocker = common::block(&view, &gate);
    let bomb = DropBomb("a drained closure's value");
    let held = view
        .submit(move || {
            let _bomb = bomb;
        })
        .unwrap();
    assert_eq!(view.throttle().unwrap().held, 1);
    let shutting = thread::spawn({
        let service = service.clone();
        move || service.shutdown_timeout(Duration::ZERO)
    });
    let report = shutting.join().expect("the shutdown did not panic");
    assert!(report.cancelled >= 1, "{report:?}");
    assert_eq!(outcome(held), Err(TaskError::Cancelled));
    gate.open();
    let _ = blocker.join_timeout(GUARD);
}

#[test]
fn a_result_that_panics_when_dropped_unread_leaves_every_view_working() {
    let service = service("result");
    for (label, view) in views(&service) {
        let (done, finished) = channel();
        let handle = view
            .submit(move || {
                let _signal = Signal(done);
                DropBomb("an unread result")
            })
            .unwrap();
        drop(handle); // nobody reads the result: the pool drops it
        finished.recv_timeout(GUARD).unwrap();
        still_works(label, &view);
    }
    accounted_for(&service);
}

/// Sends on drop: the task body has ended (its result is about to be published or dropped).
struct Signal(std::sync::mpsc::Sender<()>);

impl Drop for Signal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn misbehaving_delayed_and_periodic_tasks_leave_the_view_working() {
    let service = service("timed");
    for (label, view) in views(&service) {
        let bomb = DropBomb("a delayed task's value");
        let (ran, seen) = channel();
        let once = view
            .schedule(Duration::ZERO, move || {
                let _bomb = bomb;
                ran.send(()).unwrap();
                panic_any(DropBomb("a delayed task's payload"));
            })
            .unwrap();
        seen.recv_timeout(GUARD).unwrap();
        assert!(common::poll_until(|| once.is_done()), "{label}");
        let (tick, ticks) = channel();
        let mut n = 0;
        let periodic = view
            .schedule_with_fixed_delay(Duration::ZERO, Duration::from_millis(1), move || {
                n += 1;
                let _ = tick.send(n);
                if n % 2 == 1 {
                    panic!("a periodic run panicked");
                }
            })
            .unwrap();
        for want in 1..=3 {
            assert_eq!(
                ticks.recv_timeout(GUARD),
                Ok(want),
                "{label}: the schedule goes on"
            );
        }
        periodic.cancel();
        assert!(periodic.panics() >= 1);
        still_works(label, &view);
    }
    accounted_for(&service);
}

#[test]
fn misbehaving_flow_steps_leave_the_service_working() {
    let service = service("flows");
    let flow = Flow::builder(&service)
        .io(|n: u32| n)
        .intensive(|n: u32| {
            if n == 1 {
                panic_any(DropBomb("a flow step's payload"));
            }
            n
        })
        .light(|n: u32| {
            if n == 2 {
                panic!("a light step panicked");
            }
            n
        })
        .build();
    for n in 0..4 {
        let result = outcome(flow.run(n).unwrap());
        match n {
            1 | 2 => assert!(matches!(result, Err(TaskError::Panicked(_))), "{n}"),
            _ => assert_eq!(result, Ok(n)),
        }
    }
    still_works("cpuIntensive after flows", &service.cpu_intensive());
    accounted_for(&service);
}

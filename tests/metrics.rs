//! What a service publishes through the `metrics` facade (feature `metrics`): known workloads
//! give known counters and gauges, refusals are counted per scheduler and kind, schedulers made
//! per call add to one series, and the periodic publish reaches the global recorder. Run with
//! `cargo test --features metrics --test metrics`.
//!
//! A small recorder of our own keeps every value by its series (`name{label="value",...}`,
//! labels sorted). Every test but the periodic one publishes on its own thread into a local
//! recorder, so tests never see each other's figures.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::services::{dedicated, service, uber};
use common::{Gate, block, join, outcome, wait_until};
use uberpool::metrics::{
    self, Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use uberpool::{
    AdaptiveConcurrency, AdaptiveStatus, Flow, PoolKind, RejectKind, Scheduler, SchedulerConfig,
    SchedulerService, TaskClass,
};

/// A counter's or gauge's value (a gauge's as `f64` bits).
#[derive(Debug, Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::SeqCst);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::SeqCst)) + value);
    }
    fn decrement(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::SeqCst)) - value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<Cell>>>,
    gauges: Mutex<BTreeMap<String, Arc<Cell>>>,
    /// Family name → (unit, help).
    described: Mutex<BTreeMap<String, (Option<Unit>, String)>>,
    /// Series → the thread that last registered it (the publishing thread).
    publishers: Mutex<BTreeMap<String, Option<String>>>,
}

/// `name{a="1",b="2"}`, labels sorted by key.
fn series(key: &Key) -> String {
    let mut labels: Vec<_> = key
        .labels()
        .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorded {
    fn cell(&self, map: &Mutex<BTreeMap<String, Arc<Cell>>>, key: &Key) -> Arc<Cell> {
        let series = series(key);
        let thread = std::thread::current().name().map(str::to_owned);
        self.publishers
            .lock()
            .unwrap()
            .insert(series.clone(), thread);
        map.lock().unwrap().entry(series).or_default().clone()
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        let help = help.into_owned();
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), (unit, help));
    }

    /// The counter of `series`, if it was published.
    fn counter(&self, series: &str) -> Option<u64> {
        let counters = self.counters.lock().unwrap();
        counters.get(series).map(|c| c.0.load(Ordering::SeqCst))
    }

    /// The gauge of `series`, if it was published.
    fn gauge(&self, series: &str) -> Option<f64> {
        let gauges = self.gauges.lock().unwrap();
        gauges
            .get(series)
            .map(|c| f64::from_bits(c.0.load(Ordering::SeqCst)))
    }

    /// Every series of the family `name`.
    fn family(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}{{");
        let counters = self.counters.lock().unwrap();
        let gauges = self.gauges.lock().unwrap();
        counters
            .keys()
            .chain(gauges.keys())
            .filter(|s| s.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

impl Recorder for Recorded {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(&self.counters, key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(&self.gauges, key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        panic!("uberpool publishes no histogram");
    }
}

/// Waits until every task the pools accepted is counted as ended and no thread is busy: a
/// pool counts a task's end just after its handle resolves.
fn settle(service: &SchedulerService) {
    wait_until("the pools to settle", || {
        service
            .metrics()
            .pools
            .iter()
            .all(|p| p.completed + p.cancelled == p.submitted && p.active == 0)
    });
}

/// Publishes `service`'s figures into a fresh recorder.
fn publish(service: &SchedulerService) -> Recorded {
    let recorded = Recorded::default();
    metrics::with_local_recorder(&recorded, || service.publish_metrics_now());
    recorded
}

/// The labels of pool `pool` of service `service`.
fn pool_series(name: &str, service: &str, pool: &str) -> String {
    format!("{name}{{pool=\"{pool}\",service=\"{service}\"}}")
}

/// The labels of scheduler `scheduler` (of class `class`, on pool `pool`).
fn scheduler_series(name: &str, service: &str, pool: &str, class: &str, scheduler: &str) -> String {
    format!(
        "{name}{{class=\"{class}\",pool=\"{pool}\",scheduler=\"{scheduler}\",service=\"{service}\"}}"
    )
}

fn rejected_series(service: &str, pool: &str, class: &str, scheduler: &str, kind: &str) -> String {
    format!(
        "uberpool_scheduler_rejected_tasks_total{{class=\"{class}\",kind=\"{kind}\",pool=\"{pool}\",scheduler=\"{scheduler}\",service=\"{service}\"}}"
    )
}

const POOL_GAUGES: [&str; 7] = [
    "uberpool_pool_threads",
    "uberpool_pool_idle_threads",
    "uberpool_pool_active_threads",
    "uberpool_pool_queued_tasks",
    "uberpool_pool_peak_threads",
    "uberpool_pool_max_threads",
    "uberpool_pool_queue_capacity",
];

const POOL_COUNTERS: [&str; 10] = [
    "uberpool_pool_submitted_tasks_total",
    "uberpool_pool_completed_tasks_total",
    "uberpool_pool_cancelled_tasks_total",
    "uberpool_pool_rejected_tasks_total",
    "uberpool_pool_caller_ran_tasks_total",
    "uberpool_pool_waited_submissions_total",
    "uberpool_pool_panicked_tasks_total",
    "uberpool_pool_light_overruns_total",
    "uberpool_pool_hops_switched_total",
    "uberpool_pool_hops_elided_total",
];

#[test]
fn a_known_workload_publishes_its_counts_and_gauges() {
    let svc = service("known", uber(2, 4, 8));
    let io = svc.io();
    for n in 0..10 {
        assert_eq!(join(io.submit(move || n).unwrap()), n);
    }
    let intensive = svc.cpu_intensive();
    for _ in 0..3 {
        let failed = outcome(intensive.submit(|| panic!("boom")).unwrap());
        assert!(failed.is_err());
    }
    settle(&svc);
    let recorded = publish(&svc);
    let counter = |name| recorded.counter(&pool_series(name, "known", "uber"));
    let gauge = |name| recorded.gauge(&pool_series(name, "known", "uber"));
    assert_eq!(counter("uberpool_pool_submitted_tasks_total"), Some(13));
    assert_eq!(counter("uberpool_pool_completed_tasks_total"), Some(13));
    assert_eq!(counter("uberpool_pool_panicked_tasks_total"), Some(3));
    for zero in [
        "uberpool_pool_cancelled_tasks_total",
        "uberpool_pool_rejected_tasks_total",
        "uberpool_pool_caller_ran_tasks_total",
        "uberpool_pool_light_overruns_total",
        "uberpool_pool_hops_switched_total",
    ] {
        assert_eq!(counter(zero), Some(0), "{zero}");
    }
    assert_eq!(gauge("uberpool_pool_max_threads"), Some(4.0));
    assert_eq!(gauge("uberpool_pool_queue_capacity"), Some(8.0));
    assert_eq!(gauge("uberpool_pool_queued_tasks"), Some(0.0));
    let threads = gauge("uberpool_pool_threads").unwrap();
    assert!((2.0..=4.0).contains(&threads), "{threads} threads");
    assert!(gauge("uberpool_pool_peak_threads").unwrap() >= threads);
    // Every family is described, counted in units of things.
    let described = recorded.described.lock().unwrap();
    for family in POOL_GAUGES.iter().chain(&POOL_COUNTERS) {
        let (unit, help) = described.get(*family).expect(family);
        assert_eq!(*unit, Some(Unit::Count), "{family}");
        assert!(!help.is_empty(), "{family}");
    }
    // No scheduler refused anything: no refusal series, and no gate.
    assert!(
        recorded
            .family("uberpool_scheduler_rejected_tasks_total")
            .is_empty()
    );
    assert!(
        recorded
            .family("uberpool_scheduler_in_flight_tasks")
            .is_empty()
    );
}

#[test]
fn every_pool_family_matches_the_service_snapshot() {
    let svc = service("snap", dedicated((1, 4), (1, 4, 4), (1, 4)));
    let flow = Flow::builder(&svc)
        .io(|n: u64| n + 1)
        .light(|n| n * 2)
        .intensive(|n| n + 3)
        .light(|n| n - 1)
        .build();
    for n in 0..5 {
        assert_eq!(join(flow.run(n).unwrap()), (n + 1) * 2 + 2);
    }
    // A CPU_LIGHT task that overruns its budget: misclassified work, counted.
    join(
        svc.cpu_light()
            .submit(|| std::thread::sleep(Duration::from_millis(15)))
            .unwrap(),
    );
    settle(&svc);
    let snapshot = svc.metrics();
    let recorded = publish(&svc);
    assert!(snapshot.hops_switched > 0 && snapshot.hops_elided > 0);
    for (kind, label) in [
        (PoolKind::CpuLight, "cpuLight"),
        (PoolKind::Io, "io"),
        (PoolKind::CpuIntensive, "cpuIntensive"),
    ] {
        let pool = snapshot.pool(kind).unwrap();
        let expected = [
            pool.submitted,
            pool.completed,
            pool.cancelled,
            pool.rejected,
            pool.caller_ran,
            pool.waited,
            pool.panicked,
            pool.light_overruns,
            pool.hops_switched,
            pool.hops_elided,
        ];
        for (name, value) in POOL_COUNTERS.iter().zip(expected) {
            let series = pool_series(name, "snap", label);
            assert_eq!(recorded.counter(&series), Some(value), "{series}");
        }
        let settled = [
            ("uberpool_pool_peak_threads", pool.peak_threads),
            ("uberpool_pool_max_threads", pool.max_size),
            ("uberpool_pool_queue_capacity", pool.queue_size),
            ("uberpool_pool_queued_tasks", 0),
        ];
        for (name, value) in settled {
            let series = pool_series(name, "snap", label);
            assert_eq!(recorded.gauge(&series), Some(value as f64), "{series}");
        }
    }
    let light = snapshot.pool(PoolKind::CpuLight).unwrap();
    assert_eq!(light.light_overruns, 1);
}

#[test]
fn refusals_are_counted_per_scheduler_and_kind() {
    let svc = service("refusals", uber(2, 4, 8));
    let gate = Gate::new();

    let io = svc.io();
    io.shutdown();
    for _ in 0..2 {
        assert_eq!(io.submit(|| ()).unwrap_err().kind(), RejectKind::Shutdown);
    }

    let smtp = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("smtp")
                .max_concurrent_tasks(1)
                .queue_size(0),
        )
        .unwrap();
    let holding_the_slot = block(&smtp, &gate);
    for _ in 0..3 {
        let refused = smtp.try_submit(|| ()).unwrap_err();
        assert_eq!(refused.kind(), RejectKind::Throttled);
    }

    let tiny = svc
        .custom(
            SchedulerConfig::new()
                .name("tiny")
                .max_concurrent_tasks(1)
                .queue_size(0),
        )
        .unwrap();
    let holding_the_thread = block(&tiny, &gate);
    for _ in 0..4 {
        assert_eq!(tiny.try_submit(|| ()).unwrap_err().kind(), RejectKind::Busy);
    }

    let recorded = publish(&svc);
    let count = |pool, scheduler, kind| {
        recorded.counter(&rejected_series("refusals", pool, "IO", scheduler, kind))
    };
    assert_eq!(count("uber", "refusals.io", "shutdown"), Some(2));
    assert_eq!(count("uber", "refusals.io", "busy"), Some(0));
    assert_eq!(count("uber", "smtp", "throttled"), Some(3));
    assert_eq!(count("uber", "smtp", "busy"), Some(0));
    assert_eq!(count("tiny", "tiny", "busy"), Some(4));
    assert_eq!(count("tiny", "tiny", "throttled"), Some(0));
    // The gate's gauges, while the blocker holds its one slot.
    let gauge = |name| recorded.gauge(&scheduler_series(name, "refusals", "uber", "IO", "smtp"));
    assert_eq!(gauge("uberpool_scheduler_concurrency_limit"), Some(1.0));
    assert_eq!(gauge("uberpool_scheduler_in_flight_tasks"), Some(1.0));
    assert_eq!(gauge("uberpool_scheduler_held_tasks"), Some(0.0));
    // The custom pool is a pool of its own, labelled by its name; the refused offers count there.
    let tiny_rejected = pool_series("uberpool_pool_rejected_tasks_total", "refusals", "tiny");
    assert_eq!(recorded.counter(&tiny_rejected), Some(4));

    gate.open();
    join(holding_the_slot);
    join(holding_the_thread);
}

#[test]
fn schedulers_made_per_call_add_to_one_series() {
    let svc = service("per-call", uber(2, 4, 8));
    for _ in 0..500 {
        let io = svc.io();
        io.shutdown();
        assert!(io.submit(|| ()).is_err());
        let smtp = svc
            .scheduler_with(
                TaskClass::Io,
                SchedulerConfig::new().name("smtp").max_concurrent_tasks(2),
            )
            .unwrap();
        join(smtp.submit(|| ()).unwrap());
    }
    let recorded = publish(&svc);
    let shutdown = rejected_series("per-call", "uber", "IO", "per-call.io", "shutdown");
    assert_eq!(recorded.counter(&shutdown), Some(500));
    let rejected = recorded.family("uberpool_scheduler_rejected_tasks_total");
    let of = |scheduler: &str| {
        let label = format!("scheduler=\"{scheduler}\"");
        rejected.iter().filter(|s| s.contains(&label)).count()
    };
    assert_eq!(of("per-call.io"), 3, "one series per kind: {rejected:?}");
    // The last throttled view may still be held by its task's bookkeeping as the publish runs:
    // then its name shows, once, with its zero refusals.
    assert!(matches!(of("smtp"), 0 | 3), "{rejected:?}");
    assert_eq!(rejected.len(), 3 + of("smtp"));
    assert!(recorded.family("uberpool_scheduler_in_flight_tasks").len() <= 1);
}

#[test]
fn a_dropped_throttled_schedulers_gauges_fall_to_zero() {
    let svc = service("gone", uber(2, 4, 8));
    let gate = Gate::new();
    let smtp = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().name("smtp").max_concurrent_tasks(2),
        )
        .unwrap();
    let blocker = block(&smtp, &gate);
    let series = |name| scheduler_series(name, "gone", "uber", "IO", "smtp");
    let recorded = Recorded::default();
    metrics::with_local_recorder(&recorded, || svc.publish_metrics_now());
    assert_eq!(
        recorded.gauge(&series("uberpool_scheduler_in_flight_tasks")),
        Some(1.0)
    );
    assert_eq!(
        recorded.gauge(&series("uberpool_scheduler_concurrency_limit")),
        Some(2.0)
    );
    gate.open();
    join(blocker);
    drop(smtp);
    // The task's bookkeeping lets go of the view just after its handle resolves.
    wait_until("the view to be gone", || {
        metrics::with_local_recorder(&recorded, || svc.publish_metrics_now());
        recorded.gauge(&series("uberpool_scheduler_concurrency_limit")) == Some(0.0)
    });
    for name in [
        "uberpool_scheduler_in_flight_tasks",
        "uberpool_scheduler_held_tasks",
        "uberpool_scheduler_concurrency_limit",
    ] {
        assert_eq!(recorded.gauge(&series(name)), Some(0.0), "{name}");
    }
    // Its refusal counters stay (zero: it refused nothing).
    let throttled = rejected_series("gone", "uber", "IO", "smtp", "throttled");
    assert_eq!(recorded.counter(&throttled), Some(0));
}

/// The adaptive state of `view`.
fn adaptive(view: &Scheduler) -> AdaptiveStatus {
    view.throttle()
        .and_then(|status| status.adaptive)
        .expect("an adaptive view")
}

/// Runs one task on `view` that runs at least `latency` (a latency to measure, not a wait for
/// anything) and waits until its sample is taken: `windows` judged windows in all.
fn run_for(view: &Scheduler, latency: Duration, windows: u64) {
    join(
        view.submit(move || {
            let start = Instant::now();
            while start.elapsed() < latency {
                std::hint::spin_loop();
            }
        })
        .unwrap(),
    );
    wait_until("the window to be judged", || {
        adaptive(view).windows == windows
    });
}

#[test]
fn an_adaptive_schedulers_limit_and_gradient_are_published() {
    let svc = service("adaptive", uber(2, 4, 8));
    // Every task that runs a millisecond closes a window of its own.
    let relay = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().name("relay").adaptive_concurrency(
                AdaptiveConcurrency::new()
                    .initial_limit(2)
                    .window(Duration::from_millis(1))
                    .window_tasks(1),
            ),
        )
        .unwrap();
    let series = |name| scheduler_series(name, "adaptive", "uber", "IO", "relay");
    let (limit, gradient) = (
        series("uberpool_scheduler_concurrency_limit"),
        series("uberpool_scheduler_concurrency_gradient"),
    );
    let recorded = publish(&svc);
    assert_eq!(recorded.gauge(&limit), Some(2.0), "the initial limit");
    assert_eq!(recorded.gauge(&gradient), Some(1.0), "no window judged yet");
    assert_eq!(
        recorded.described.lock().unwrap()[GRADIENT].0,
        None,
        "a ratio"
    );

    // An overload: 2 × 0.8 = 1.6, whose whole part the gate applies.
    join(
        relay
            .submit(|| assert!(uberpool::report_overload()))
            .unwrap(),
    );
    wait_until("the backoff", || adaptive(&relay).backoffs == 1);
    let recorded = publish(&svc);
    assert_eq!(recorded.gauge(&limit), Some(1.0));
    assert_eq!(recorded.gauge(&gradient), Some(1.0), "a backoff's gradient");

    // A window sets the baseline; one four times slower has the lowest gradient there is.
    run_for(&relay, Duration::from_millis(2), 1);
    let baseline = adaptive(&relay).latency.expect("a judged window");
    run_for(&relay, baseline * 4, 2);
    let status = adaptive(&relay);
    assert_eq!(status.gradient, 0.5, "{status:?}");
    let recorded = publish(&svc);
    assert_eq!(recorded.gauge(&gradient), Some(0.5));
    assert_eq!(recorded.gauge(&limit), Some(status.limit as f64));

    // Gone: both gauges fall to zero.
    drop(relay);
    wait_until("the view to be gone", || {
        metrics::with_local_recorder(&recorded, || svc.publish_metrics_now());
        recorded.gauge(&limit) == Some(0.0)
    });
    assert_eq!(recorded.gauge(&gradient), Some(0.0));
}

#[test]
fn a_fixed_schedulers_gradient_is_not_published() {
    let svc = service("fixed", uber(2, 4, 8));
    let _smtp = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().name("smtp").max_concurrent_tasks(2),
        )
        .unwrap();
    let recorded = publish(&svc);
    assert_eq!(
        recorded
            .family("uberpool_scheduler_concurrency_limit")
            .len(),
        1
    );
    assert!(recorded.family(GRADIENT).is_empty());
}

const GRADIENT: &str = "uberpool_scheduler_concurrency_gradient";

#[test]
fn a_custom_schedulers_pool_gauges_fall_to_zero_once_it_is_gone() {
    let svc = service("customs", uber(1, 2, 2));
    let relay = svc
        .custom(SchedulerConfig::new().name("relay").max_concurrent_tasks(3))
        .unwrap();
    join(relay.submit(|| ()).unwrap());
    settle(&svc);
    let recorded = Recorded::default();
    metrics::with_local_recorder(&recorded, || svc.publish_metrics_now());
    let threads = pool_series("uberpool_pool_threads", "customs", "relay");
    assert_eq!(recorded.gauge(&threads), Some(3.0));
    assert!(relay.stop());
    drop(relay);
    wait_until("the custom pool to be gone", || {
        metrics::with_local_recorder(&recorded, || svc.publish_metrics_now());
        recorded.gauge(&threads) == Some(0.0)
    });
    let completed = pool_series("uberpool_pool_completed_tasks_total", "customs", "relay");
    assert_eq!(
        recorded.counter(&completed),
        Some(1),
        "counters keep their value"
    );
}

#[test]
fn periodic_publishing_reaches_the_global_recorder_and_ends_with_the_final_figures() {
    // The one test of this file that installs a global recorder; the others publish into local
    // ones, which take precedence on their threads.
    let recorded: &'static Recorded = Box::leak(Box::default());
    metrics::set_global_recorder(recorded).expect("no other global recorder in this binary");
    let svc = SchedulerService::builder()
        .name("periodic")
        .config(uber(2, 4, 8))
        .publish_metrics(Duration::from_millis(20))
        .build()
        .unwrap();
    let io = svc.io();
    for _ in 0..5 {
        join(io.submit(|| ()).unwrap());
    }
    let completed = pool_series("uberpool_pool_completed_tasks_total", "periodic", "uber");
    wait_until("a periodic publish with the five tasks", || {
        recorded.counter(&completed) == Some(5)
    });
    let publisher = recorded.publishers.lock().unwrap()[&completed].clone();
    assert_eq!(publisher.as_deref(), Some("periodic.timer"));
    for _ in 0..2 {
        join(io.submit(|| ()).unwrap());
    }
    svc.shutdown();
    // The shutdown published the final figures on this thread, before it returned.
    assert_eq!(recorded.counter(&completed), Some(7));
    let threads = pool_series("uberpool_pool_threads", "periodic", "uber");
    assert_eq!(recorded.gauge(&threads), Some(0.0));
}

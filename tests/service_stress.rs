//! The service under stress, as users meet it: several submitters over every class, a throttled
//! and a rate-limited view, delayed and periodic tasks, async tasks awaiting handles, flows, random
//! panics of every kind, random cancels, and a random shutdown point.
//!
//! Every round checks: no task ran twice; every handle resolves (within the generous guard:
//! nothing hangs); a task whose handle says `Cancelled` never ran; and once the service is down,
//! every pool accounts for every task it accepted (`submitted = completed + cancelled`).
//!
//! The seed varies per run and is printed; a failure names it. `UBERPOOL_STRESS_SEED` replays a
//! seed, `UBERPOOL_STRESS_ROUNDS` sets the rounds (CI runs the default few; the ignored
//! `soak` test runs many: `cargo test --release --test service_stress -- --ignored`).

mod common;

use common::GUARD;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uberpool::{
    Flow, PoolsConfig, Resources, Scheduler, SchedulerConfig, SchedulerService, Strategy,
    TaskClass, TaskError, TaskHandle,
};

/// xorshift64*: a small generator, so that a seed replays a round exactly (up to scheduling).
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How a task misbehaves.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    None,
    /// Panics with a string.
    Panic,
    /// Captures a value whose `Drop` panics (when the closure is dropped, run or not).
    CapturedDropPanics,
    /// Returns a value whose `Drop` panics (when nobody reads it).
    ResultDropPanics,
}

impl Misbehaviour {
    fn pick(rng: &mut Rng) -> Self {
        match rng.below(20) {
            0 => Misbehaviour::Panic,
            1 => Misbehaviour::CapturedDropPanics,
            2 => Misbehaviour::ResultDropPanics,
            _ => Misbehaviour::None,
        }
    }
}

/// Panics when dropped, unless the thread is already panicking (a double panic would abort).
struct DropBomb;

impl Drop for DropBomb {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("a value's Drop panicked");
        }
    }
}

/// Drops a value of the test's own that may hold a bomb (refused work comes back to the
/// submitter, whose own `Drop` may panic: that is the caller's business, not the library's).
fn discard<T>(value: T) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

/// What a task returns: possibly a bomb.
struct Outcome {
    _bomb: Option<DropBomb>,
}

/// Which tasks ran, by id: each slot is set once when its task's body starts. A second run is
/// counted in `twice` (a panic inside the task would only be caught as the task's own).
struct Ledger {
    ran: Vec<AtomicU8>,
    next: AtomicUsize,
    twice: AtomicUsize,
}

impl Ledger {
    fn new(capacity: usize) -> Self {
        Ledger {
            ran: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicUsize::new(0),
            twice: AtomicUsize::new(0),
        }
    }

    fn id(&self) -> Option<usize> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        (id < self.ran.len()).then_some(id)
    }

    fn record(&self, id: usize) {
        if self.ran[id].fetch_add(1, Ordering::SeqCst) > 0 {
            self.twice.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ran(&self, id: usize) -> bool {
        self.ran[id].load(Ordering::SeqCst) > 0
    }
}

/// The body of a task with id `id`.
fn body(
    ledger: &Arc<Ledger>,
    id: usize,
    how: Misbehaviour,
) -> impl FnOnce() -> Outcome + Send + 'static {
    let ledger = ledger.clone();
    let captured = matches!(how, Misbehaviour::CapturedDropPanics).then(|| DropBomb);
    move || {
        let _captured = captured;
        ledger.record(id);
        match how {
            Misbehaviour::Panic => panic!("task {id} panicked"),
            Misbehaviour::ResultDropPanics => Outcome {
                _bomb: Some(DropBomb),
            },
            _ => Outcome { _bomb: None },
        }
    }
}

/// A handle we keep, with its task's id.
struct Tracked {
    id: usize,
    handle: TaskHandle<Outcome>,
}

fn config(strategy: Strategy) -> PoolsConfig {
    let text = match strategy {
        Strategy::Uber => "org.mule.runtime.scheduler.SchedulerPoolStrategy=UBER\n\
             org.mule.runtime.scheduler.uber.threadPool.coreSize=2\n\
             org.mule.runtime.scheduler.uber.threadPool.maxSize=16\n\
             org.mule.runtime.scheduler.uber.workQueue.size=4\n"
            .to_owned(),
        _ => "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n\
             org.mule.runtime.scheduler.cpuLight.threadPool.size=2\n\
             org.mule.runtime.scheduler.cpuLight.workQueue.size=4\n\
             org.mule.runtime.scheduler.io.threadPool.coreSize=1\n\
             org.mule.runtime.scheduler.io.threadPool.maxSize=12\n\
             org.mule.runtime.scheduler.io.workQueue.size=0\n\
             org.mule.runtime.scheduler.cpuIntensive.threadPool.size=2\n\
             org.mule.runtime.scheduler.cpuIntensive.workQueue.size=4\n"
            .to_owned(),
    };
    PoolsConfig::parse(&text, &Resources::new(2, 1 << 20)).expect("valid")
}

/// One submitter's work: `ops` random operations against `views`.
#[allow(clippy::too_many_arguments)]
fn submitter(
    seed: u64,
    ops: usize,
    views: Vec<Scheduler>,
    flow: Flow<u32, u32>,
    ledger: Arc<Ledger>,
    start: Arc<Barrier>,
) -> (
    Vec<Tracked>,
    Vec<TaskHandle<u32>>,
    Vec<uberpool::ScheduledHandle>,
) {
    let mut rng = Rng::new(seed);
    let mut tracked = Vec::new();
    let mut others = Vec::new();
    let mut scheduled = Vec::new();
    start.wait();
    for _ in 0..ops {
        let view = &views[rng.below(views.len() as u64) as usize];
        let how = Misbehaviour::pick(&mut rng);
        let Some(id) = ledger.id() else { break };
        match rng.below(10) {
            0..=4 => {
                let work = body(&ledger, id, how);
                let submitted = match rng.below(3) {
                    0 => view.try_submit(work),
                    1 => view.submit_timeout(work, Duration::from_millis(rng.below(3))),
                    _ => view.submit(work),
                };
                match submitted {
                    Ok(handle) => {
                        if rng.chance(15) {
                            handle.cancel();
                        }
                        tracked.push(Tracked { id, handle });
                    }
                    Err(refused) => discard(refused),
                }
            }
            5 => {
                let work = body(&ledger, id, how);
                if let Err(refused) = view.execute(move || drop(work())) {
                    discard(refused);
                }
            }
            6 => {
                let work = body(&ledger, id, how);
                let delay = Duration::from_millis(rng.below(4));
                match view.schedule(delay, move || drop(work())) {
                    Ok(handle) => {
                        if rng.chance(20) {
                            handle.cancel();
                        }
                        scheduled.push(handle);
                    }
                    Err(refused) => discard(refused),
                }
            }
            7 => {
                let ticks = Arc::new(AtomicUsize::new(0));
                if let Ok(handle) = view.schedule_with_fixed_delay(
                    Duration::ZERO,
                    Duration::from_micros(200),
                    move || {
                        if ticks.fetch_add(1, Ordering::Relaxed) % 7 == 3 {
                            panic!("a periodic run panicked");
                        }
                    },
                ) {
                    scheduled.push(handle);
                }
            }
            8 => {
                let inner = views[rng.below(views.len() as u64) as usize].clone();
                let work = body(&ledger, id, how);
                let awaited = view.spawn_async(async move {
                    match inner.submit(work) {
                        Ok(handle) => match handle.await {
                            Ok(value) => {
                                discard(value);
                                1
                            }
                            Err(_) => 0,
                        },
                        Err(refused) => {
                            discard(refused);
                            0
                        }
                    }
                });
                match awaited {
                    Ok(handle) => others.push(handle),
                    Err(refused) => discard(refused),
                }
            }
            _ => {
                if let Ok(handle) = flow.try_run(id as u32) {
                    others.push(handle);
                }
            }
        }
    }
    (tracked, others, scheduled)
}

/// One round: build, stress, shut down at a random point, check.
fn round(seed: u64) {
    let mut rng = Rng::new(seed);
    let strategy = if rng.chance(50) {
        Strategy::Uber
    } else {
        Strategy::Dedicated
    };
    let service = SchedulerService::builder()
        .name(format!("stress-{seed}"))
        .config(config(strategy))
        .build()
        .expect("service starts");
    let throttled = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(2).queue_size(8),
        )
        .expect("a throttled view");
    let rated = service
        .scheduler_with(
            TaskClass::CpuLight,
            SchedulerConfig::new()
                .rate_limit(2000, Duration::from_secs(1))
                .queue_size(64),
        )
        .expect("a rate-limited view");
    let views = vec![
        service.cpu_light(),
        service.io(),
        service.cpu_intensive(),
        throttled.clone(),
        rated.clone(),
    ];
    let flow = Flow::builder(&service)
        .io(|n: u32| n)
        .intensive(|n: u32| n.wrapping_mul(3))
        .light(|n: u32| n)
        .max_concurrency(8)
        .build();
    let ledger = Arc::new(Ledger::new(4_000));
    let submitters = 3;
    let start = Arc::new(Barrier::new(submitters + 1));
    let workers: Vec<_> = (0..submitters)
        .map(|n| {
            let (views, flow, ledger, start) =
                (views.clone(), flow.clone(), ledger.clone(), start.clone());
            let seed = rng.next() ^ n as u64;
            thread::spawn(move || submitter(seed, 600, views, flow, ledger, start))
        })
        .collect();
    start.wait();
    // The random shutdown point: some operations in, one of the ways down.
    let pause = Instant::now() + Duration::from_micros(rng.below(30_000));
    while Instant::now() < pause {
        thread::yield_now();
    }
    match rng.below(4) {
        0 => {
            throttled.shutdown_now();
        }
        1 => {
            rated.shutdown();
        }
        2 => {
            views[rng.below(3) as usize].shutdown_now();
        }
        _ => {}
    }
    let report = match rng.below(3) {
        0 => service.shutdown_timeout(Duration::ZERO),
        1 => service.shutdown_timeout(Duration::from_millis(rng.below(20))),
        _ => service.shutdown_timeout(GUARD),
    };
    let mut tracked = Vec::new();
    let mut others = Vec::new();
    let mut scheduled = Vec::new();
    for worker in workers {
        let (t, o, s) = worker.join().unwrap_or_else(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("a submitter panicked: {message}")
        });
        tracked.extend(t);
        others.extend(o);
        scheduled.extend(s);
    }
    for Tracked { id, handle } in tracked {
        let outcome = catch_unwind(AssertUnwindSafe(|| handle.join_timeout(GUARD)))
            .unwrap_or_else(|_| panic!("joining task {id} panicked"));
        match outcome {
            Err(_) => panic!("task {id}'s handle never resolved"),
            Ok(Err(TaskError::Cancelled)) => {
                assert!(!ledger.ran(id), "task {id} said Cancelled but ran")
            }
            Ok(Ok(value)) => {
                assert!(ledger.ran(id), "task {id} has a value but never ran");
                discard(value); // its Drop may panic: that is the caller's own value
            }
            Ok(Err(_)) => assert!(ledger.ran(id), "task {id} failed but never ran"),
        }
    }
    for handle in others {
        assert!(
            handle.join_timeout(GUARD).is_ok(),
            "an async task or flow never resolved"
        );
    }
    for handle in &scheduled {
        assert!(
            common::poll_until(|| handle.is_done()),
            "a timed task still pending after the service shut down"
        );
    }
    // Once every pool is down, each accounts for every task it accepted.
    assert!(
        common::poll_until(|| {
            service
                .metrics()
                .pools
                .iter()
                .all(|p| p.submitted == p.completed + p.cancelled)
        }),
        "a pool lost a task: {:#?} {report:?}",
        service.metrics()
    );
    assert_eq!(ledger.twice.load(Ordering::SeqCst), 0, "a task ran twice");
    let ran = ledger
        .ran
        .iter()
        .filter(|slot| slot.load(Ordering::SeqCst) > 0)
        .count();
    eprintln!("  {strategy:?}: {ran} tasks ran, {report:?}");
}

fn seed() -> u64 {
    std::env::var("UBERPOOL_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

fn rounds(default: usize) -> usize {
    std::env::var("UBERPOOL_STRESS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn run(rounds: usize) {
    let first = seed();
    let started = Instant::now();
    for n in 0..rounds as u64 {
        let seed = first.wrapping_add(n);
        eprintln!("service stress round {n}: seed {seed} (replay: UBERPOOL_STRESS_SEED={seed})");
        round(seed);
    }
    eprintln!("{rounds} rounds in {:?}", started.elapsed());
}

#[test]
fn the_service_survives_misbehaving_user_code_and_random_shutdowns() {
    run(rounds(12));
}

#[test]
#[ignore = "a long soak: cargo test --release --test service_stress -- --ignored"]
fn soak() {
    run(rounds(200));
}

//! Proactor flows: what elision buys.
//!
//! A 5-step flow io → light → light → intensive → light under the Mule policy (light steps run
//! in place), under `Always` (a switch at every step), and as direct calls on one thread; a
//! 2-step flow io → intensive under Mule gives the cost of the three elided light steps:
//! (5-step − 2-step) / 3. That difference is small against the run-to-run noise of a shared
//! machine, so `elided_x32` amplifies it: io then 32 light steps against io alone, / 32.
//!
//! Two shapes: 1,000 runs started together then joined (throughput), and 100 runs one at a time
//! (latency: every switch is a hand-off to another thread). Both strategies: UBER with a fixed
//! pool (core = max = cores, deep queue, so the figures measure dispatch, not thread creation)
//! and DEDICATED with fixed pools of `cores` threads each.
//!
//! Peers, 1,000 runs together: the same 5-step chain made by hand, with the same number of
//! threads per pool as DEDICATED:
//! - tokio: a task per run on a runtime of `cores` workers; the io step goes to
//!   `spawn_blocking` (at most `cores` blocking threads) and is awaited, the light and intensive
//!   steps run in the task; the bench thread awaits every `JoinHandle`.
//! - threadpool → rayon: the io step and the two light steps after it on a
//!   `threadpool::ThreadPool` of `cores` threads, which hands the run to a rayon pool of `cores`
//!   threads for the intensive step and the last light step (light steps run in place, as under
//!   the Mule policy); each run sends its result on a channel the bench thread drains.
//!
//! Run: `cargo bench -p uberpool-bench --bench flow` (warm-up 1 s and measurement 3 s per bench unless the command
//! line says otherwise).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::Duration;
use uberpool::{Flow, PoolsConfig, ProactorPolicy, Resources, SchedulerService};

const RUNS: u64 = 1_000;
const SEQUENTIAL: u64 = 100;
/// Light steps in the elision bench.
const ELIDED: usize = 32;

fn io(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}
fn light(x: u64) -> u64 {
    x ^ 0x5a
}
fn intensive(x: u64) -> u64 {
    (0..16).fold(x, |a, i| a.rotate_left(i).wrapping_add(i as u64))
}

fn five(service: &SchedulerService, policy: ProactorPolicy) -> Flow<u64, u64> {
    Flow::builder(service)
        .policy(policy)
        .io(io)
        .light(light)
        .light(light)
        .intensive(intensive)
        .light(light)
        .build()
}

fn run_all(flow: &Flow<u64, u64>) -> u64 {
    let handles: Vec<_> = (0..RUNS).map(|i| flow.run(i).unwrap()).collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// A service whose pools all have `threads` threads (a sizing expression) and deep queues.
fn build_service(strategy: &str, threads: &str) -> SchedulerService {
    let p = "org.mule.runtime.scheduler.";
    let text = match strategy {
        "UBER" => format!(
            "{p}SchedulerPoolStrategy=UBER\n{p}uber.threadPool.coreSize={threads}\n\
             {p}uber.threadPool.maxSize={threads}\n{p}uber.workQueue.size=1000000\n"
        ),
        _ => format!(
            "{p}SchedulerPoolStrategy=DEDICATED\n{p}cpuLight.threadPool.size={threads}\n\
             {p}cpuLight.workQueue.size=1000000\n{p}io.threadPool.coreSize={threads}\n\
             {p}io.threadPool.maxSize={threads}\n{p}io.workQueue.size=1000000\n\
             {p}cpuIntensive.threadPool.size={threads}\n{p}cpuIntensive.workQueue.size=1000000\n"
        ),
    };
    let config = PoolsConfig::parse(&text, &Resources::detect()).unwrap();
    SchedulerService::builder()
        .name("bench")
        .config(config)
        .build()
        .unwrap()
}

fn flows(c: &mut Criterion) {
    for strategy in ["UBER", "DEDICATED"] {
        let service = build_service(strategy, "cores");
        let mule = five(&service, ProactorPolicy::Mule);
        let always = five(&service, ProactorPolicy::Always);
        let two = Flow::builder(&service).io(io).intensive(intensive).build();

        let mut group = c.benchmark_group(format!("flow_{strategy}_1000_together"));
        group.throughput(Throughput::Elements(RUNS));
        group.bench_function("mule", |b| b.iter(|| run_all(&mule)));
        group.bench_function("always", |b| b.iter(|| run_all(&always)));
        group.bench_function("mule_without_light_steps", |b| b.iter(|| run_all(&two)));
        group.finish();

        // The cost of an elided light step, amplified: an io step followed by 32 light steps
        // (all run in place) against the io step alone; (32-light − io-only) / 32 per run. One
        // thread per pool, so the time is that thread's: the figure is the step's cost on the
        // thread that runs it, not a share of two threads working side by side.
        let one = build_service(strategy, "1");
        let mut lights = Flow::builder(&one).io(io);
        for _ in 0..ELIDED {
            lights = lights.light(light);
        }
        let lights = lights.build();
        let io_only = Flow::builder(&one).io(io).build();
        let mut group = c.benchmark_group(format!("flow_{strategy}_elided_x{ELIDED}"));
        group.throughput(Throughput::Elements(RUNS));
        group.bench_function("io_then_light_steps", |b| b.iter(|| run_all(&lights)));
        group.bench_function("io_only", |b| b.iter(|| run_all(&io_only)));
        group.finish();

        let mut group = c.benchmark_group(format!("flow_{strategy}_one_at_a_time"));
        group.throughput(Throughput::Elements(SEQUENTIAL));
        for (name, flow) in [("mule", &mule), ("always", &always)] {
            group.bench_function(BenchmarkId::new(name, SEQUENTIAL), |b| {
                b.iter(|| {
                    (0..SEQUENTIAL)
                        .map(|i| flow.run(i).unwrap().join().unwrap())
                        .sum::<u64>()
                })
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("flow_direct_calls");
    group.throughput(Throughput::Elements(RUNS));
    group.bench_function(BenchmarkId::new("direct_calls", RUNS), |b| {
        b.iter(|| {
            (0..RUNS)
                .map(|i| light(intensive(light(light(io(std::hint::black_box(i)))))))
                .sum::<u64>()
        })
    });
    group.finish();
}

/// The same chain made by hand on the peers, 1,000 runs together.
fn peers(c: &mut Criterion) {
    let cores = num_cpus::get().max(1);
    let mut group = c.benchmark_group("flow_peers_1000_together");
    group.throughput(Throughput::Elements(RUNS));

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .max_blocking_threads(cores)
        .build()
        .unwrap();
    group.bench_function(BenchmarkId::new("tokio_spawn_blocking_io", cores), |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..RUNS)
                .map(|i| {
                    tokio.spawn(async move {
                        let x = tokio::task::spawn_blocking(move || io(i)).await.unwrap();
                        light(intensive(light(light(x))))
                    })
                })
                .collect();
            tokio.block_on(async {
                let mut sum = 0u64;
                for h in handles {
                    sum = sum.wrapping_add(h.await.unwrap());
                }
                sum
            })
        })
    });

    let io_pool = threadpool::ThreadPool::new(cores);
    let cpu_pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .build()
            .unwrap(),
    );
    group.bench_function(BenchmarkId::new("threadpool_io_then_rayon", cores), |b| {
        b.iter(|| {
            let (tx, rx) = channel();
            for i in 0..RUNS {
                let (tx, cpu_pool) = (tx.clone(), cpu_pool.clone());
                io_pool.execute(move || {
                    let x = light(light(io(i)));
                    cpu_pool.spawn(move || {
                        let _ = tx.send(light(intensive(x)));
                    });
                });
            }
            drop(tx);
            rx.iter().fold(0u64, u64::wrapping_add)
        })
    });
    group.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = flows, peers
);
criterion_main!(benches);

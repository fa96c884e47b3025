//! Proactor flows: what elision buys.
//!
//! A 5-step flow io → light → light → intensive → light under the Mule policy (light steps run
//! in place), under `Always` (a switch at every step), and as direct calls on one thread; a
//! 2-step flow io → intensive under Mule gives the cost of the three elided light steps:
//! (5-step − 2-step) / 3.
//!
//! Two shapes: 1,000 runs started together then joined (throughput), and 100 runs one at a time
//! (latency: every switch is a hand-off to another thread). Both strategies: UBER with a fixed
//! pool (core = max = cores, deep queue, so the figures measure dispatch, not thread creation)
//! and DEDICATED with fixed pools of `cores` threads each.
//!
//! Run: `cargo bench --bench flow`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use uberpool::{Flow, PoolsConfig, ProactorPolicy, Resources, SchedulerService};

const RUNS: u64 = 1_000;
const SEQUENTIAL: u64 = 100;

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

fn service(strategy: &str) -> SchedulerService {
    let p = "org.mule.runtime.scheduler.";
    let text = match strategy {
        "UBER" => format!(
            "{p}SchedulerPoolStrategy=UBER\n{p}uber.threadPool.coreSize=cores\n\
             {p}uber.threadPool.maxSize=cores\n{p}uber.workQueue.size=1000000\n"
        ),
        _ => format!(
            "{p}SchedulerPoolStrategy=DEDICATED\n{p}cpuLight.threadPool.size=cores\n\
             {p}cpuLight.workQueue.size=1000000\n{p}io.threadPool.coreSize=cores\n\
             {p}io.threadPool.maxSize=cores\n{p}io.workQueue.size=1000000\n\
             {p}cpuIntensive.threadPool.size=cores\n{p}cpuIntensive.workQueue.size=1000000\n"
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
        let service = service(strategy);
        let mule = five(&service, ProactorPolicy::Mule);
        let always = five(&service, ProactorPolicy::Always);
        let two = Flow::builder(&service).io(io).intensive(intensive).build();

        let mut group = c.benchmark_group(format!("flow_{strategy}_1000_together"));
        group.throughput(Throughput::Elements(RUNS));
        group.bench_function("mule", |b| b.iter(|| run_all(&mule)));
        group.bench_function("always", |b| b.iter(|| run_all(&always)));
        group.bench_function("mule_without_light_steps", |b| b.iter(|| run_all(&two)));
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

criterion_group!(benches, flows);
criterion_main!(benches);

//! Proactor flows: what elision buys.
//!
//! A 5-step flow io → light → light → intensive → light, 1,000 runs per iteration (all started,
//! then all joined), under the Mule policy (light steps run in place), under `Always` (a switch
//! at every step), and as direct calls on one thread. A 2-step flow io → intensive under Mule
//! gives the cost of the three elided light steps: (5-step − 2-step) / 3.
//!
//! Run: `cargo bench --bench flow`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use uberpool::{Flow, ProactorPolicy, SchedulerService};

const RUNS: u64 = 1_000;

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

fn flows(c: &mut Criterion) {
    let service = SchedulerService::builder().name("bench").build().unwrap();
    let mut group = c.benchmark_group("flow_5_steps");
    group.throughput(Throughput::Elements(RUNS));

    let mule = five(&service, ProactorPolicy::Mule);
    group.bench_function(BenchmarkId::new("mule", RUNS), |b| {
        b.iter(|| run_all(&mule))
    });

    let always = five(&service, ProactorPolicy::Always);
    group.bench_function(BenchmarkId::new("always", RUNS), |b| {
        b.iter(|| run_all(&always))
    });

    let two = Flow::builder(&service).io(io).intensive(intensive).build();
    group.bench_function(BenchmarkId::new("mule_without_light_steps", RUNS), |b| {
        b.iter(|| run_all(&two))
    });

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

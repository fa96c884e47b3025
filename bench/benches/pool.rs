//! The pool against its peers on tokio's task shapes, all in one run.
//!
//! - `spawn_many_remote`: 100,000 empty tasks submitted from a thread outside the pool, then
//!   wait until all ran (a service from the defaults, UBER and DEDICATED, through
//!   `cpu_light().execute` and `submit`; the bare pool's `execute` and `submit` as diagnostics;
//!   threadpool, rayon, tokio `spawn` and `spawn_blocking`);
//! - `chained_spawn`: a task that submits the next, 1,000 deep, from inside the pool;
//! - `ping_pong`: 1,000 round trips: a task on the pool spawns a task that spawns a task that
//!   answers it. The thread pools block their worker on a channel for the answer; tokio and
//!   `uberpool_async` (a future on a scheduler, `Scheduler::spawn_async`) await a oneshot
//!   instead, so the waiting costs no blocked thread.
//!
//! Every pool has as many threads as the machine has cores. Run: `cargo bench -p uberpool-bench --bench pool`.

use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use uberpool_bench::Latch;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use uberpool::pool::ThreadPool;
use uberpool::{PoolsConfig, Resources, SchedulerService};

const SPAWN_MANY: usize = 100_000;
const CHAIN: usize = 1_000;
const PINGS: usize = 1_000;

fn threads() -> usize {
    num_cpus::get().max(2)
}

fn uberpool(threads: usize) -> Arc<ThreadPool> {
    Arc::new(
        ThreadPool::builder()
            .name("bench")
            .core_size(threads)
            .queue_size(1 << 24)
            .build()
            .unwrap(),
    )
}

fn spawn_many_remote(c: &mut Criterion) {
    let n = threads();
    let mut group = c.benchmark_group("spawn_many_remote");
    group.throughput(Throughput::Elements(SPAWN_MANY as u64));
    group.sample_size(20);

    // The path users take: `service.cpu_light().execute` on a service from the defaults, UBER
    // and DEDICATED (the strategy line alone). The bare-pool rows after them are diagnostics.
    let resources = Resources::detect();
    for (label, text) in [
        ("service_uber_defaults", None),
        (
            "service_dedicated_defaults",
            Some("org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n"),
        ),
    ] {
        let config = match text {
            None => PoolsConfig::defaults(&resources),
            Some(text) => PoolsConfig::parse(text, &resources).unwrap(),
        };
        let service = SchedulerService::builder()
            .name(label)
            .config(config)
            .build()
            .unwrap();
        let light = service.cpu_light();
        group.bench_function(BenchmarkId::new(format!("{label}_execute"), n), |b| {
            b.iter(|| {
                let (latch, done) = Latch::new(SPAWN_MANY);
                for _ in 0..SPAWN_MANY {
                    let latch = latch.clone();
                    light.execute(move || latch.count_down()).unwrap();
                }
                done.recv().unwrap();
            })
        });
        group.bench_function(BenchmarkId::new(format!("{label}_submit"), n), |b| {
            let mut handles = Vec::with_capacity(SPAWN_MANY);
            b.iter(|| {
                let (latch, done) = Latch::new(SPAWN_MANY);
                for _ in 0..SPAWN_MANY {
                    let latch = latch.clone();
                    handles.push(light.submit(move || latch.count_down()).unwrap());
                }
                done.recv().unwrap();
                handles.clear();
            })
        });
        service.shutdown();
    }

    let pool = uberpool(n);
    group.bench_function(BenchmarkId::new("uberpool_execute", n), |b| {
        b.iter(|| {
            let (latch, done) = Latch::new(SPAWN_MANY);
            for _ in 0..SPAWN_MANY {
                let latch = latch.clone();
                pool.execute(move || latch.count_down()).unwrap();
            }
            done.recv().unwrap();
        })
    });
    group.bench_function(BenchmarkId::new("uberpool_submit", n), |b| {
        let mut handles = Vec::with_capacity(SPAWN_MANY);
        b.iter(|| {
            let (latch, done) = Latch::new(SPAWN_MANY);
            for _ in 0..SPAWN_MANY {
                let latch = latch.clone();
                handles.push(pool.submit(move || latch.count_down()).unwrap());
            }
            done.recv().unwrap();
            handles.clear();
        })
    });

    let tp = threadpool::ThreadPool::new(n);
    group.bench_function(BenchmarkId::new("threadpool", n), |b| {
        b.iter(|| {
            let (latch, done) = Latch::new(SPAWN_MANY);
            for _ in 0..SPAWN_MANY {
                let latch = latch.clone();
                tp.execute(move || latch.count_down());
            }
            done.recv().unwrap();
        })
    });

    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap();
    group.bench_function(BenchmarkId::new("rayon", n), |b| {
        b.iter(|| {
            let (latch, done) = Latch::new(SPAWN_MANY);
            for _ in 0..SPAWN_MANY {
                let latch = latch.clone();
                rayon.spawn(move || latch.count_down());
            }
            done.recv().unwrap();
        })
    });

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .build()
        .unwrap();
    group.bench_function(BenchmarkId::new("tokio_spawn", n), |b| {
        b.iter(|| {
            let (latch, done) = Latch::new(SPAWN_MANY);
            for _ in 0..SPAWN_MANY {
                let latch = latch.clone();
                tokio.spawn(async move { latch.count_down() });
            }
            done.recv().unwrap();
        })
    });
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("tokio_spawn_blocking", n), |b| {
        b.iter(|| {
            let (latch, done) = Latch::new(SPAWN_MANY);
            for _ in 0..SPAWN_MANY {
                let latch = latch.clone();
                tokio.spawn_blocking(move || latch.count_down());
            }
            done.recv().unwrap();
        })
    });
    group.finish();
}

fn chained_spawn(c: &mut Criterion) {
    let n = threads();
    let mut group = c.benchmark_group("chained_spawn");
    group.throughput(Throughput::Elements(CHAIN as u64));

    let pool = uberpool(n);
    fn uber_chain(pool: Arc<ThreadPool>, left: usize, done: Sender<()>) {
        if left == 0 {
            done.send(()).unwrap();
            return;
        }
        let next = pool.clone();
        pool.execute(move || uber_chain(next, left - 1, done))
            .unwrap();
    }
    group.bench_function(BenchmarkId::new("uberpool", n), |b| {
        b.iter(|| {
            let (tx, rx) = channel();
            let p = pool.clone();
            pool.execute(move || uber_chain(p, CHAIN, tx)).unwrap();
            rx.recv().unwrap();
        })
    });

    let tp = threadpool::ThreadPool::new(n);
    fn tp_chain(pool: threadpool::ThreadPool, left: usize, done: Sender<()>) {
        if left == 0 {
            done.send(()).unwrap();
            return;
        }
        let next = pool.clone();
        pool.execute(move || tp_chain(next, left - 1, done));
    }
    group.bench_function(BenchmarkId::new("threadpool", n), |b| {
        b.iter(|| {
            let (tx, rx) = channel();
            let p = tp.clone();
            tp.execute(move || tp_chain(p, CHAIN, tx));
            rx.recv().unwrap();
        })
    });

    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap();
    fn rayon_chain(left: usize, done: Sender<()>) {
        if left == 0 {
            done.send(()).unwrap();
            return;
        }
        rayon::spawn(move || rayon_chain(left - 1, done));
    }
    group.bench_function(BenchmarkId::new("rayon", n), |b| {
        b.iter(|| {
            let (tx, rx) = channel();
            rayon.spawn(move || rayon_chain(CHAIN, tx));
            rx.recv().unwrap();
        })
    });

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .build()
        .unwrap();
    fn tokio_chain(left: usize, done: Sender<()>) {
        if left == 0 {
            done.send(()).unwrap();
            return;
        }
        tokio::spawn(async move { tokio_chain(left - 1, done) });
    }
    group.bench_function(BenchmarkId::new("tokio", n), |b| {
        b.iter(|| {
            let (tx, rx) = channel();
            tokio.spawn(async move { tokio_chain(CHAIN, tx) });
            rx.recv().unwrap();
        })
    });
    group.finish();
}

fn ping_pong(c: &mut Criterion) {
    let n = threads();
    let mut group = c.benchmark_group("ping_pong");
    group.throughput(Throughput::Elements(PINGS as u64));

    let pool = uberpool(n);
    group.bench_function(BenchmarkId::new("uberpool", n), |b| {
        b.iter(|| {
            let (done_tx, done_rx) = channel();
            let p = pool.clone();
            pool.execute(move || {
                for _ in 0..PINGS {
                    let (tx, rx) = channel();
                    let q = p.clone();
                    p.execute(move || q.execute(move || tx.send(()).unwrap()).unwrap())
                        .unwrap();
                    rx.recv().unwrap();
                }
                done_tx.send(()).unwrap();
            })
            .unwrap();
            done_rx.recv().unwrap();
        })
    });

    // The async shape on uberpool: a future polled on a fixed UBER pool of `n` threads (deep
    // queue); each wake re-submits its poll to the scheduler.
    let p = "org.mule.runtime.scheduler.";
    let text = format!(
        "{p}SchedulerPoolStrategy=UBER\n{p}uber.threadPool.coreSize={n}\n\
         {p}uber.threadPool.maxSize={n}\n{p}uber.workQueue.size=1000000\n"
    );
    let service = SchedulerService::builder()
        .name("bench")
        .config(PoolsConfig::parse(&text, &Resources::detect()).unwrap())
        .build()
        .unwrap();
    let light = service.cpu_light();
    group.bench_function(BenchmarkId::new("uberpool_async", n), |b| {
        b.iter(|| {
            let s = light.clone();
            let done = light
                .spawn_async(async move {
                    for _ in 0..PINGS {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let q = s.clone();
                        s.execute(move || {
                            q.execute(move || {
                                let _ = tx.send(());
                            })
                            .unwrap()
                        })
                        .unwrap();
                        rx.await.unwrap();
                    }
                })
                .unwrap();
            done.join().unwrap();
        })
    });

    let tp = threadpool::ThreadPool::new(n);
    group.bench_function(BenchmarkId::new("threadpool", n), |b| {
        b.iter(|| {
            let (done_tx, done_rx) = channel();
            let p = tp.clone();
            tp.execute(move || {
                for _ in 0..PINGS {
                    let (tx, rx) = channel();
                    let q = p.clone();
                    p.execute(move || q.execute(move || tx.send(()).unwrap()));
                    rx.recv().unwrap();
                }
                done_tx.send(()).unwrap();
            });
            done_rx.recv().unwrap();
        })
    });

    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap();
    group.bench_function(BenchmarkId::new("rayon", n), |b| {
        b.iter(|| {
            let (done_tx, done_rx) = channel();
            rayon.spawn(move || {
                for _ in 0..PINGS {
                    let (tx, rx) = channel();
                    rayon::spawn(move || rayon::spawn(move || tx.send(()).unwrap()));
                    rx.recv().unwrap();
                }
                done_tx.send(()).unwrap();
            });
            done_rx.recv().unwrap();
        })
    });

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .build()
        .unwrap();
    group.bench_function(BenchmarkId::new("tokio", n), |b| {
        b.iter(|| {
            let (done_tx, done_rx) = channel();
            tokio.spawn(async move {
                for _ in 0..PINGS {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move {
                        tokio::spawn(async move {
                            let _ = tx.send(());
                        });
                    });
                    rx.await.unwrap();
                }
                done_tx.send(()).unwrap();
            });
            done_rx.recv().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, spawn_many_remote, chained_spawn, ping_pong);
criterion_main!(benches);

//! spawn_many_remote: 100,000 empty tasks submitted from a thread outside the pool, then a wait
//! until all ran — on the path users take (a service from the defaults, UBER and DEDICATED, through
//! `service.cpu_light()`), on a bare pool with a deep queue (a diagnostic), and on the peers, one
//! iteration of every contender per round, round after round.

use std::time::{Duration, Instant};

use uberpool::pool::ThreadPool;
use uberpool::{PoolsConfig, Resources, SchedulerService};

use crate::Latch;

/// Tasks per iteration.
pub const TASKS: usize = 100_000;

/// One contender's way of submitting `TASKS` tasks that count the latch down.
type Submit<'a> = Box<dyn Fn(Latch) + 'a>;

fn timed(spawn: &dyn Fn(Latch)) -> Duration {
    let (latch, done) = Latch::new(TASKS);
    let start = Instant::now();
    spawn(latch);
    done.recv().unwrap();
    start.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `rounds` interleaved rounds with `threads` threads for the fixed-size pools and returns
/// the markdown table: each contender's median and its ratio to the fastest peer's median.
pub fn table(rounds: usize, threads: usize) -> String {
    let pool = ThreadPool::builder()
        .name("ratio")
        .core_size(threads)
        .queue_size(1 << 24)
        .build()
        .unwrap();
    // The path users take: a service from the defaults, `service.cpu_light().execute`. UBER is
    // the default strategy; DEDICATED is the same defaults with the strategy line alone.
    let resources = Resources::detect();
    let uber = SchedulerService::builder()
        .name("ratio-uber")
        .config(PoolsConfig::defaults(&resources))
        .build()
        .unwrap();
    let dedicated = SchedulerService::builder()
        .name("ratio-dedicated")
        .config(
            PoolsConfig::parse(
                "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n",
                &resources,
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let uber_light = uber.cpu_light();
    let dedicated_light = dedicated.cpu_light();
    let tp = threadpool::ThreadPool::new(threads);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()
        .unwrap();

    let contenders: Vec<(&str, bool, Submit)> = vec![
        (
            "service UBER defaults, cpu_light().execute",
            false,
            Box::new(|latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    uber_light.execute(move || latch.count_down()).unwrap();
                }
            }),
        ),
        (
            "service UBER defaults, cpu_light().submit (handles kept, then dropped)",
            false,
            Box::new(|latch: Latch| {
                let mut handles = Vec::with_capacity(TASKS);
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    handles.push(uber_light.submit(move || latch.count_down()).unwrap());
                }
                drop(handles);
            }),
        ),
        (
            "service DEDICATED defaults, cpu_light().execute",
            false,
            Box::new(|latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    dedicated_light.execute(move || latch.count_down()).unwrap();
                }
            }),
        ),
        (
            "service DEDICATED defaults, cpu_light().submit (handles kept, then dropped)",
            false,
            Box::new(|latch: Latch| {
                let mut handles = Vec::with_capacity(TASKS);
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    handles.push(dedicated_light.submit(move || latch.count_down()).unwrap());
                }
                drop(handles);
            }),
        ),
        (
            "bare pool (2 threads, 16M queue) execute",
            false,
            Box::new(|latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    pool.execute(move || latch.count_down()).unwrap();
                }
            }),
        ),
        (
            "bare pool submit (handles kept, then dropped)",
            false,
            Box::new(|latch: Latch| {
                let mut handles = Vec::with_capacity(TASKS);
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    handles.push(pool.submit(move || latch.count_down()).unwrap());
                }
                drop(handles);
            }),
        ),
        (
            "threadpool execute",
            true,
            Box::new(|latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    tp.execute(move || latch.count_down());
                }
            }),
        ),
        (
            "rayon spawn",
            true,
            Box::new(|latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    rayon.spawn(move || latch.count_down());
                }
            }),
        ),
        (
            "tokio spawn",
            true,
            Box::new(|latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    tokio.spawn(async move { latch.count_down() });
                }
            }),
        ),
    ];

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    for (_, _, spawn) in &contenders {
        timed(spawn.as_ref()); // warm-up
    }
    for _ in 0..rounds {
        for (i, (_, _, spawn)) in contenders.iter().enumerate() {
            samples[i].push(timed(spawn.as_ref()));
        }
    }
    let medians: Vec<Duration> = samples.iter_mut().map(|s| median(s)).collect();
    let fastest_peer = contenders
        .iter()
        .zip(&medians)
        .filter(|((_, peer, _), _)| *peer)
        .map(|(_, m)| *m)
        .min()
        .unwrap();
    let mut out = format!(
        "spawn_many_remote: {TASKS} empty tasks from outside, {threads} threads, {rounds} interleaved rounds\n\n"
    );
    out += "| contender | median | ns/task | × fastest peer |\n|---|---|---|---|\n";
    for ((name, _, _), m) in contenders.iter().zip(&medians) {
        out += &format!(
            "| {name} | {:.2} ms | {:.0} | {:.2} |\n",
            m.as_secs_f64() * 1e3,
            m.as_nanos() as f64 / TASKS as f64,
            m.as_secs_f64() / fastest_peer.as_secs_f64()
        );
    }
    for service in [uber, dedicated] {
        service.shutdown();
    }
    out
}

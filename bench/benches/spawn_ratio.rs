//! Interleaved ratio harness for `spawn_many_remote`: 100,000 empty tasks submitted from outside
//! the pool, then wait until all ran.
//!
//! Shared machines drift by 2× within minutes, so comparing medians taken minutes apart says
//! little. This harness runs one iteration of every contender per round, round after round, and
//! reports each contender's median and its ratio to the fastest peer's median. Run:
//! `cargo bench -p uberpool-bench --bench spawn_ratio` (`-- --rounds N` to change the 31 rounds).

use std::time::{Duration, Instant};
use uberpool_bench::Latch;

use uberpool::pool::ThreadPool;

const TASKS: usize = 100_000;

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

fn main() {
    let rounds = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(31usize);
    let threads = num_cpus::get().max(2);

    let pool = ThreadPool::builder()
        .name("ratio")
        .core_size(threads)
        .queue_size(1 << 24)
        .build()
        .unwrap();
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
            "uberpool execute",
            false,
            Box::new(|latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    pool.execute(move || latch.count_down()).unwrap();
                }
            }),
        ),
        (
            "uberpool submit (handles kept, then dropped)",
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
    println!(
        "spawn_many_remote: {TASKS} empty tasks from outside, {threads} threads, {rounds} interleaved rounds"
    );
    println!("| contender | median | ns/task | × fastest peer |");
    println!("|---|---|---|---|");
    for ((name, _, _), m) in contenders.iter().zip(&medians) {
        println!(
            "| {name} | {:.2} ms | {:.0} | {:.2} |",
            m.as_secs_f64() * 1e3,
            m.as_nanos() as f64 / TASKS as f64,
            m.as_secs_f64() / fastest_peer.as_secs_f64()
        );
    }
}

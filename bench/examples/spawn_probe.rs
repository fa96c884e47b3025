//! Profiling probe for spawn_many_remote: runs one contender alone, round after round, so that
//! `perf` sees one path — the service's defaults (`uber` or `dedicated`, through
//! `cpu_light().execute`; `uber-submit`: `cpu_light().submit`, the handles kept, then dropped) or
//! the bare pool with a deep queue (`pool`) — and prints each round's time per task, then the
//! service's pool figures (threads started, wake-ups, waits for room).
//! Run: `cargo run --release -p uberpool-bench --example spawn_probe -- uber 20`.

use std::time::Instant;

use uberpool::pool::ThreadPool;
use uberpool::{PoolsConfig, Resources, SchedulerService};
use uberpool_bench::Latch;
use uberpool_bench::spawn::TASKS;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "uber".to_owned());
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(20);
    let resources = Resources::detect();
    let config = if which == "dedicated" {
        PoolsConfig::parse(
            "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n",
            &resources,
        )
        .unwrap()
    } else {
        PoolsConfig::defaults(&resources)
    };
    let service = SchedulerService::builder().config(config).build().unwrap();
    let light = service.cpu_light();
    let pool = ThreadPool::builder()
        .core_size(2)
        .queue_size(1 << 24)
        .build()
        .unwrap();
    for _ in 0..rounds {
        let (latch, done) = Latch::new(TASKS);
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..TASKS {
            let latch = latch.clone();
            match which.as_str() {
                "pool" => pool.execute(move || latch.count_down()).unwrap(),
                "uber-submit" => handles.push(light.submit(move || latch.count_down()).unwrap()),
                _ => light.execute(move || latch.count_down()).unwrap(),
            }
        }
        done.recv().unwrap();
        drop(handles);
        println!(
            "{:.0} ns/task",
            start.elapsed().as_nanos() as f64 / TASKS as f64
        );
    }
    for pool in service.metrics().pools {
        println!(
            "{}: peak threads {}, threads started {}, wake-ups {}, waits for room {}",
            pool.name, pool.peak_threads, pool.threads_started, pool.wakeups, pool.waited
        );
    }
}

//! The Redis queue's costs, beside the beanstalkd ones (`queue.rs`), against a Redis server and
//! a three-master Redis Cluster the benchmark starts on loopback (append-only files on):
//!
//! 1. jobs/s through one queue with 1, 2 and 4 worker processes (copies of this binary),
//!    single server and cluster, against the same jobs submitted in-process to the same
//!    throttled view — for empty jobs (the queue's own overhead) and for jobs that block 1 ms
//!    (an SMTP hand-off);
//! 2. the cost per job of the round trips (add, read, acknowledge), one per round trip and
//!    pipelined, single server and cluster.
//!
//! Run: `cargo bench -p uberpool-bench --features redis --bench queue_redis` (`-- --quick` for
//! a short run). Record results in BENCHMARKS.md with the machine and date.

#[path = "../../tests/queue_redis_common/mod.rs"]
mod queue_redis_common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use queue_redis_common::{RedisCluster, RedisServer};
use uberpool::queue::redis::{Producer, RedisBackend, RedisQueue};
use uberpool::queue::{Backend, Consumer, Outcome, Settle, Settlement};
use uberpool::{SchedulerConfig, SchedulerService, TaskClass};

const ROLE: &str = "UBERPOOL_QUEUE_BENCH_WORKER";

/// Slots of the throttled view every worker (and the in-process run) uses.
const SLOTS: usize = 8;

fn main() {
    if std::env::var_os(ROLE).is_some() {
        worker();
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (Some(server), Some(cluster)) = (RedisServer::start(), RedisCluster::start()) else {
        eprintln!("redis queue benchmark skipped: no redis-server");
        return;
    };
    let jobs = if quick { 2_000 } else { 20_000 };
    println!(
        "redis queue benchmark: a server on {} (1 shard) and a 3-master cluster on {} (16 shards), \
         {jobs} jobs per run, {SLOTS} slots per process",
        server.url(),
        cluster.urls()
    );
    for work in [Duration::ZERO, Duration::from_millis(1)] {
        println!("\njobs of {work:?} blocking work");
        let in_process = in_process(jobs, work);
        println!(
            "  {:<36}{:>10.0} jobs/s",
            "in-process (1 process)", in_process
        );
        for (deployment, urls) in [("server", server.url()), ("cluster", cluster.urls())] {
            for workers in [1, 2, 4] {
                let rate = through_queue(&urls, jobs, work, workers);
                println!(
                    "  {:<36}{:>10.0} jobs/s   {:>5.2} x in-process",
                    format!("redis {deployment}, {workers} worker process(es)"),
                    rate,
                    rate / in_process
                );
            }
        }
    }
    let jobs = if quick { 2_000 } else { 20_000 };
    println!("\nround trips, {jobs} jobs, microseconds per job");
    round_trips("server", &server.url(), jobs);
    round_trips("cluster", &cluster.urls(), jobs);
}

/// The work of one job: a blocking wait (or nothing).
fn job(work: Duration) {
    if !work.is_zero() {
        std::thread::sleep(work);
    }
}

fn work_of(body: &[u8]) -> Duration {
    Duration::from_micros(
        std::str::from_utf8(body)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    )
}

/// A worker process: consumes the queue in `UBERPOOL_QUEUE_BENCH_QUEUE` until stdin closes.
fn worker() {
    let urls = std::env::var("UBERPOOL_QUEUE_BENCH_URLS").unwrap();
    let queue = std::env::var("UBERPOOL_QUEUE_BENCH_QUEUE").unwrap();
    let service = SchedulerService::builder().name("bench").build().unwrap();
    let view = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(SLOTS),
        )
        .unwrap();
    let backend = RedisBackend::connect(&urls, &RedisQueue::new(&queue)).unwrap();
    let consumer = Consumer::builder(backend)
        .name("bench")
        .prefetch(SLOTS)
        .batch(32)
        .start(&view, |delivery| {
            job(work_of(delivery.body()));
            Outcome::Done
        })
        .unwrap();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    consumer.stop();
}

/// jobs/s of `jobs` jobs submitted straight to a throttled view of `SLOTS` slots.
fn in_process(jobs: usize, work: Duration) -> f64 {
    let service = SchedulerService::builder().name("bench").build().unwrap();
    let view = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(SLOTS),
        )
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..jobs)
        .map(|_| {
            let done = done.clone();
            view.submit(move || {
                job(work);
                done.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap()
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    assert_eq!(done.load(Ordering::Relaxed), jobs as u64);
    rate
}

/// jobs/s of `jobs` jobs added to a fresh queue and drained by `workers` processes, from the
/// workers' start to the last job acknowledged (polled every 5 ms).
fn through_queue(urls: &str, jobs: usize, work: Duration, workers: usize) -> f64 {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let queue = format!(
        "bench-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let body = work.as_micros().to_string().into_bytes();
    let mut producer = Producer::connect(urls, &RedisQueue::new(&queue)).unwrap();
    for result in producer.put_batch((0..jobs).map(|_| &body[..])) {
        result.unwrap();
    }
    let started = Instant::now();
    let mut children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .env(ROLE, "1")
                .env("UBERPOOL_QUEUE_BENCH_URLS", urls)
                .env("UBERPOOL_QUEUE_BENCH_QUEUE", &queue)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    while producer.stats().unwrap().unfinished() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the queue did not drain"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    for child in &mut children {
        drop(child.stdin.take());
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    rate
}

/// Microseconds per job of add, read and acknowledge: one per round trip, then pipelined
/// (adds in batches; reads of 64 in the consumer's exchanges, then their acknowledgements).
fn round_trips(deployment: &str, urls: &str, jobs: usize) {
    let per_job = |elapsed: Duration| elapsed.as_secs_f64() * 1e6 / jobs as f64;
    let ack = |id| Settlement {
        job: id,
        action: Settle::Ack,
    };

    let queue = RedisQueue::new(&format!(
        "bench-rtt-single-{}-{deployment}",
        std::process::id()
    ));
    let mut producer = Producer::connect(urls, &queue).unwrap();
    let started = Instant::now();
    for _ in 0..jobs {
        producer.put(b"x").unwrap();
    }
    let put = per_job(started.elapsed());
    let mut backend = RedisBackend::connect(urls, &queue).unwrap();
    let (mut read, mut acked) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < jobs {
        let started = Instant::now();
        let reserved = backend.exchange(&[], 1, Duration::ZERO).unwrap().reserved;
        let between = Instant::now();
        for r in &reserved {
            backend
                .exchange(&[ack(r.id.clone())], 0, Duration::ZERO)
                .unwrap();
        }
        read += between - started;
        acked += between.elapsed();
        done += reserved.len();
    }
    let (read, acked) = (per_job(read), per_job(acked));
    println!(
        "  {deployment:<8} one per round trip:  add {put:>6.2}  read {read:>6.2}  ack {acked:>6.2}  total {:>6.2}",
        put + read + acked
    );

    let queue = RedisQueue::new(&format!(
        "bench-rtt-piped-{}-{deployment}",
        std::process::id()
    ));
    let mut producer = Producer::connect(urls, &queue).unwrap();
    let started = Instant::now();
    for result in producer.put_batch((0..jobs).map(|_| &b"x"[..])) {
        result.unwrap();
    }
    let put = per_job(started.elapsed());
    let mut backend = RedisBackend::connect(urls, &queue).unwrap();
    let (mut read, mut acked) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < jobs {
        let started = Instant::now();
        let exchange = backend
            .exchange(&[], 64.min(jobs - done), Duration::ZERO)
            .unwrap();
        let between = Instant::now();
        let acks: Vec<Settlement> = exchange.reserved.into_iter().map(|r| ack(r.id)).collect();
        backend.exchange(&acks, 0, Duration::ZERO).unwrap();
        read += between - started;
        acked += between.elapsed();
        done += acks.len();
    }
    let (read, acked) = (per_job(read), per_job(acked));
    println!(
        "  {deployment:<8} pipelined:           add {put:>6.2}  read {read:>6.2}  ack {acked:>6.2}  total {:>6.2}",
        put + read + acked
    );
    assert_eq!(producer.stats().unwrap().unfinished(), 0);
}

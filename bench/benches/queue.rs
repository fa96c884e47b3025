//! The queue's costs, measured against a beanstalkd the benchmark starts on loopback:
//!
//! 1. jobs/s through one tube with 1, 2 and 4 worker processes (copies of this binary), against
//!    the same jobs submitted in-process to the same throttled view — for empty jobs (the
//!    queue's own overhead) and for jobs that block 1 ms (an SMTP hand-off);
//! 2. the cost per job of the round trips (put, reserve, delete), one command per round trip
//!    and pipelined.
//!
//! Run: `cargo bench -p uberpool-bench --features beanstalkd --bench queue` (`-- --quick` for a
//! short run).
//! Record results in BENCHMARKS.md with the machine and date.

#[path = "../../tests/queue_common/mod.rs"]
mod queue_common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use queue_common::{Beanstalkd, jobs_in};
use uberpool::queue::beanstalkd::{BeanstalkdBackend, Client, Producer, PutOptions};
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
    let Some(server) = Beanstalkd::start() else {
        eprintln!("queue benchmark skipped: no beanstalkd");
        return;
    };
    let jobs = if quick { 2_000 } else { 20_000 };
    println!(
        "queue benchmark: beanstalkd on {}, {} jobs per run, {SLOTS} slots per process",
        server.addr(),
        jobs
    );
    for work in [Duration::ZERO, Duration::from_millis(1)] {
        println!("\njobs of {work:?} blocking work");
        let in_process = in_process(jobs, work);
        println!(
            "  {:<28}{:>10.0} jobs/s",
            "in-process (1 process)", in_process
        );
        for workers in [1, 2, 4] {
            let rate = through_queue(&server, jobs, work, workers);
            println!(
                "  {:<28}{:>10.0} jobs/s   {:>5.2} x in-process",
                format!("beanstalkd, {workers} worker process(es)"),
                rate,
                rate / in_process
            );
        }
    }
    round_trips(&server, if quick { 2_000 } else { 20_000 });
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

/// A worker process: consumes the tube in `UBERPOOL_QUEUE_BENCH_TUBE` until stdin closes.
fn worker() {
    let addr = std::env::var("UBERPOOL_QUEUE_BENCH_ADDR").unwrap();
    let tube = std::env::var("UBERPOOL_QUEUE_BENCH_TUBE").unwrap();
    let service = SchedulerService::builder().name("bench").build().unwrap();
    let view = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(SLOTS),
        )
        .unwrap();
    let consumer = Consumer::builder(BeanstalkdBackend::connect(addr, &tube).unwrap())
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

/// jobs/s of `jobs` jobs put into a fresh tube and drained by `workers` processes, from the
/// workers' start to the tube's last job deleted.
fn through_queue(server: &Beanstalkd, jobs: usize, work: Duration, workers: usize) -> f64 {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let tube = format!("bench-{}", RUN.fetch_add(1, Ordering::Relaxed));
    let body = work.as_micros().to_string().into_bytes();
    let mut producer = Producer::connect(server.addr(), &tube).unwrap();
    for result in producer.put_batch((0..jobs).map(|_| (&body[..], PutOptions::new()))) {
        result.unwrap();
    }
    let mut monitor = server.client();
    let started = Instant::now();
    let mut children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .env(ROLE, "1")
                .env("UBERPOOL_QUEUE_BENCH_ADDR", server.addr())
                .env("UBERPOOL_QUEUE_BENCH_TUBE", &tube)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    while jobs_in(&mut monitor, &tube) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the tube did not drain"
        );
        std::thread::sleep(Duration::from_millis(1));
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

/// Microseconds per job of put, reserve and delete: one command per round trip, then
/// pipelined (puts in batches; reserves with their stats-job, then their deletes, in the
/// consumer's exchanges of 64).
fn round_trips(server: &Beanstalkd, jobs: usize) {
    println!("\nround trips, {jobs} jobs, microseconds per job");
    let per_job = |elapsed: Duration| elapsed.as_secs_f64() * 1e6 / jobs as f64;

    let tube = "bench-rtt-single";
    let mut client = server.client();
    client.use_tube(tube).unwrap();
    client.watch(tube).unwrap();
    client.ignore("default").unwrap();
    let started = Instant::now();
    for _ in 0..jobs {
        client.put(b"x", PutOptions::new()).unwrap();
    }
    let put = per_job(started.elapsed());
    // Reserve and delete alternate, as a worker does: a connection holding thousands of
    // reservations makes the server's bookkeeping per command grow with them.
    // The consumer reads every reserved job's stats-job (delivery count, TTR, priority): it is
    // timed with the reserve, as in the pipelined exchange below.
    let (mut reserve, mut delete) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..jobs {
        let started = Instant::now();
        let id = client.reserve_with_timeout(Duration::ZERO).unwrap().id;
        client.stats_job(id).unwrap();
        let reserved = Instant::now();
        client.delete(id).unwrap();
        reserve += reserved - started;
        delete += reserved.elapsed();
    }
    let (reserve, delete) = (per_job(reserve), per_job(delete));
    println!(
        "  one per round trip:  put {put:>6.2}  reserve+stats-job {reserve:>6.2}  delete {delete:>6.2}  total {:>6.2}",
        put + reserve + delete
    );

    let tube = "bench-rtt-pipelined";
    let mut producer = Producer::connect(server.addr(), tube).unwrap();
    let started = Instant::now();
    for result in producer.put_batch((0..jobs).map(|_| (&b"x"[..], PutOptions::new()))) {
        result.unwrap();
    }
    let put = per_job(started.elapsed());
    let mut backend =
        BeanstalkdBackend::new(Client::connect(server.addr()).unwrap(), tube).unwrap();
    let (mut reserve, mut delete) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < jobs {
        let started = Instant::now();
        let exchange = backend
            .exchange(&[], 64.min(jobs - done), Duration::ZERO)
            .unwrap();
        let reserved = Instant::now();
        let acks: Vec<Settlement> = exchange
            .reserved
            .into_iter()
            .map(|r| Settlement {
                job: r.id,
                action: Settle::Ack,
            })
            .collect();
        backend.exchange(&acks, 0, Duration::ZERO).unwrap();
        reserve += reserved - started;
        delete += reserved.elapsed();
        done += acks.len();
    }
    let (reserve, delete) = (per_job(reserve), per_job(delete));
    println!(
        "  pipelined:           put {put:>6.2}  reserve+stats-job {reserve:>6.2}  delete {delete:>6.2}  total {:>6.2}",
        put + reserve + delete
    );
    assert_eq!(jobs_in(&mut client, tube), 0);
}

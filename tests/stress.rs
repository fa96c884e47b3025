//! Stress: concurrent submitters, random cancels and a shutdown at a random point; every
//! accepted task must be accounted for exactly once.
//!
//! The seed is printed; set `UBERPOOL_STRESS_SEED` to replay a run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use uberpool::pool::ThreadPool;
use uberpool::{RejectKind, TaskError, TaskHandle};

const SUBMITTERS: usize = 4;
const TASKS_PER_SUBMITTER: u64 = 250_000;

/// xorshift64*: small, deterministic for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn seed() -> u64 {
    std::env::var("UBERPOOL_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

/// What one submitter saw.
struct Tally {
    accepted: u64,
    handle_ok: u64,
    handle_cancelled: u64,
    cancel_won: u64,
}

fn submitter(
    pool: Arc<ThreadPool>,
    mut rng: Rng,
    ran: Arc<AtomicU64>,
    start: Arc<Barrier>,
) -> Tally {
    start.wait();
    let mut handles: Vec<TaskHandle<u64>> = Vec::new();
    let mut tally = Tally {
        accepted: 0,
        handle_ok: 0,
        handle_cancelled: 0,
        cancel_won: 0,
    };
    for i in 0..TASKS_PER_SUBMITTER {
        let counter = ran.clone();
        let work = move || {
            counter.fetch_add(1, Ordering::Relaxed);
            i
        };
        if rng.next().is_multiple_of(4) {
            match pool.execute(move || {
                work();
            }) {
                Ok(()) => tally.accepted += 1,
                Err(refused) => {
                    assert_eq!(refused.kind(), RejectKind::Shutdown, "the pool has room");
                    break;
                }
            }
            continue;
        }
        match pool.submit(work) {
            Ok(handle) => {
                tally.accepted += 1;
                if rng.next().is_multiple_of(8) && handle.cancel() {
                    tally.cancel_won += 1;
                }
                handles.push(handle);
            }
            Err(refused) => {
                assert_eq!(refused.kind(), RejectKind::Shutdown, "the pool has room");
                // the closure came back intact
                assert_eq!(refused.into_inner()(), i);
                ran.fetch_sub(1, Ordering::Relaxed);
                break;
            }
        }
    }
    for handle in handles {
        match handle.join_timeout(Duration::from_secs(60)) {
            Ok(Ok(_)) => tally.handle_ok += 1,
            Ok(Err(TaskError::Cancelled)) => tally.handle_cancelled += 1,
            Ok(Err(other)) => panic!("unexpected task error {other}"),
            Err(_) => panic!("a handle never completed"),
        }
    }
    tally
}

fn run_once(seed: u64, grace: Duration) {
    let pool = Arc::new(
        ThreadPool::builder()
            .name("stress")
            .core_size(2)
            .max_size(4)
            .queue_size(1 << 21)
            .build()
            .unwrap(),
    );
    let ran = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(SUBMITTERS + 1));
    let mut rng = Rng(seed);
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|_| {
            let (pool, ran, start) = (pool.clone(), ran.clone(), start.clone());
            let rng = Rng(rng.next() | 1);
            std::thread::spawn(move || submitter(pool, rng, ran, start))
        })
        .collect();
    start.wait();
    // shut down once a random number of tasks has been accepted
    let shutdown_after = rng.next() % (SUBMITTERS as u64 * TASKS_PER_SUBMITTER);
    let guard = Instant::now();
    while pool.metrics().submitted < shutdown_after && !submitters.iter().all(|s| s.is_finished()) {
        assert!(
            guard.elapsed() < Duration::from_secs(120),
            "submitters stalled"
        );
        std::thread::yield_now();
    }
    let report = pool.shutdown_timeout(grace);
    println!("shutdown after {shutdown_after}: {report:?}");
    let tallies: Vec<Tally> = submitters.into_iter().map(|s| s.join().unwrap()).collect();
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let accepted = sum(|t| t.accepted);

    // the report partitions what was accepted when it was made
    assert!(
        report.completed + report.cancelled + report.still_running <= accepted,
        "seed {seed}: {report:?} vs {accepted} accepted"
    );
    if !report.timed_out {
        assert_eq!(report.still_running, 0, "seed {seed}");
        assert_eq!(report.accepted(), accepted, "seed {seed}: {report:?}");
    }
    // once everything has ended, the counters partition every accepted task exactly
    let end = Instant::now();
    while !pool.is_terminated() {
        assert!(
            end.elapsed() < Duration::from_secs(60),
            "seed {seed}: threads never exited"
        );
        std::thread::yield_now();
    }
    let final_report = pool.shutdown_timeout(Duration::from_secs(60));
    assert_eq!(final_report.still_running, 0, "seed {seed}");
    assert_eq!(
        final_report.accepted(),
        accepted,
        "seed {seed}: {final_report:?}"
    );
    let m = pool.metrics();
    assert_eq!(m.submitted, accepted, "seed {seed}");
    assert_eq!(
        m.completed,
        ran.load(Ordering::Relaxed),
        "seed {seed}: each ran once"
    );
    assert!(
        sum(|t| t.handle_cancelled) >= sum(|t| t.cancel_won),
        "seed {seed}"
    );
    assert!(sum(|t| t.handle_ok) <= m.completed, "seed {seed}");
}

#[test]
fn every_accepted_task_is_accounted_for_exactly_once() {
    let seed = seed();
    println!("UBERPOOL_STRESS_SEED={seed}");
    run_once(seed, Duration::from_secs(60));
}

#[test]
fn accounting_holds_when_the_grace_period_ends_first() {
    let seed = seed().rotate_left(17) | 1;
    println!("UBERPOOL_STRESS_SEED={seed}");
    run_once(seed, Duration::ZERO);
}

//! CPU work kept to the cores, on the service built from the defaults: CPU_LIGHT work beyond
//! `cores` running tasks queues behind them instead of waking or starting a thread per task, and
//! user code that blocks in such work anyway (against the class's contract) still never
//! deadlocks the work queued behind it: the stall watch adds a thread when the computing threads
//! stop making progress. CPU_INTENSIVE work keeps the hand-off.
//!
//! Sequenced with a meeting point that every task must reach before any may leave; the
//! timeouts are failure guards only.

mod common;

use std::sync::{Arc, Condvar, Mutex};

use common::{GUARD, join};
use uberpool::{PoolsConfig, Resources, Scheduler, SchedulerService, TaskClass};

/// A meeting point for `n` tasks: each arrives and waits until all `n` have arrived (or the
/// guard passes). Returns whether everyone came.
struct Meeting {
    arrived: Mutex<usize>,
    all_here: Condvar,
    n: usize,
}

impl Meeting {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Meeting {
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
            n,
        })
    }

    fn arrive_and_wait(&self) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, timeout) = self
            .all_here
            .wait_timeout_while(arrived, GUARD, |arrived| *arrived < self.n)
            .unwrap();
        drop(arrived);
        !timeout.timed_out()
    }
}

fn defaults(strategy: &str) -> SchedulerService {
    let resources = Resources::detect();
    let config = if strategy == "DEDICATED" {
        PoolsConfig::parse(
            "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n",
            &resources,
        )
        .unwrap()
    } else {
        PoolsConfig::defaults(&resources)
    };
    SchedulerService::builder()
        .name(format!("cpu-{}", strategy.to_lowercase()))
        .config(config)
        .build()
        .unwrap()
}

/// `n` tasks of `scheduler` that each wait for all the others: they can only finish if all `n`
/// run at once, although only `cores` of them may compute at once.
fn all_meet(scheduler: &Scheduler, n: usize) {
    let meeting = Meeting::new(n);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let meeting = meeting.clone();
            scheduler.submit(move || meeting.arrive_and_wait()).unwrap()
        })
        .collect();
    for handle in handles {
        assert!(join(handle), "every task reached the meeting point");
    }
}

fn cores() -> usize {
    Resources::detect().cores.max(1)
}

#[test]
fn light_tasks_that_wait_for_each_other_all_run_on_the_uber_defaults() {
    let service = defaults("UBER");
    // Two more than may compute at once: the last ones are queued behind blocked threads.
    all_meet(&service.cpu_light(), cores() + 2);
    let report = service.shutdown();
    assert_eq!(report.completed, cores() as u64 + 2);
}

#[test]
fn intensive_tasks_that_wait_for_each_other_all_run_on_the_uber_defaults() {
    let service = defaults("UBER");
    all_meet(&service.cpu_intensive(), cores() + 2);
}

#[test]
fn light_tasks_that_wait_for_each_other_all_run_on_the_dedicated_defaults() {
    let service = defaults("DEDICATED");
    // The cpuLight pool has 2 × cores threads: all of them are needed, while only `cores` may
    // compute at once; the others are asleep when the tasks are admitted.
    all_meet(&service.cpu_light(), 2 * cores());
}

#[test]
fn queued_light_work_is_all_run_and_accounted_at_shutdown() {
    for strategy in ["UBER", "DEDICATED"] {
        let service = defaults(strategy);
        let light = service.cpu_light();
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..20_000 {
            let ran = ran.clone();
            light
                .execute(move || {
                    ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .unwrap();
        }
        let report = service.shutdown_timeout(GUARD);
        assert!(!report.timed_out, "{strategy}");
        assert_eq!(report.completed, 20_000, "{strategy}");
        assert_eq!(ran.load(std::sync::atomic::Ordering::Relaxed), 20_000);
    }
}

#[test]
fn a_light_task_blocked_on_io_work_gets_it_run() {
    // Light tasks may not block, but one that waits for IO work must not starve it: IO work is
    // not CPU work and still gets a thread.
    let service = defaults("UBER");
    let io = service.io();
    let blockers: Vec<_> = (0..cores())
        .map(|_| {
            let io = io.clone();
            service
                .cpu_light()
                .submit(move || join(io.submit(|| TaskClass::Io).unwrap()))
                .unwrap()
        })
        .collect();
    for handle in blockers {
        assert_eq!(join(handle), TaskClass::Io);
    }
}

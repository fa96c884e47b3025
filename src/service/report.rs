//! What a service reports about its pools: [`ServiceMetrics`] and [`PoolMetrics`] snapshots,
//! and Mule's usage table.

use std::fmt::Write as _;

use crate::TaskClass;
use crate::config::Strategy;
use crate::dispatch::{PoolKind, ServicePool};
use crate::loom::Ordering;

/// A snapshot of one of a service's pools: the pool's own gauges and counters, and what the
/// service did around it (tasks run on the caller's thread, CPU_LIGHT overruns, flow hops).
///
/// Gauges (`threads`, `idle`, `active`, `queued`) are read one after the other while the pool
/// runs, so they are individually exact but may not add up at a single instant. Counters only
/// grow. `completed` counts tasks that ran to their end, including those that panicked
/// (`panicked` is a subset of `completed`). Once a task's handle has returned from `join`, the
/// counters include that task.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// The pool's name (the thread-name prefix), e.g. `uberpool.io`.
    pub name: String,
    /// Which pool of the service this is.
    pub kind: PoolKind,
    /// Threads that never retire.
    pub core_size: usize,
    /// Most threads the pool may have.
    pub max_size: usize,
    /// Tasks that may wait in the queue when no thread is idle.
    pub queue_size: usize,
    /// Threads alive (or being started) now.
    pub threads: usize,
    /// Threads without a task now.
    pub idle: usize,
    /// Threads running a task now.
    pub active: usize,
    /// Tasks accepted and waiting for a thread now.
    pub queued: usize,
    /// Scheduler views over this pool that are not shut down.
    pub schedulers: usize,
    /// Tasks the pool accepted since it started.
    pub submitted: u64,
    /// Tasks that ran to their end (panicked or not).
    pub completed: u64,
    /// Tasks that never ran: cancelled through their handle, or at shutdown.
    pub cancelled: u64,
    /// Submissions handed back to their caller because this pool was full (a submission that
    /// waited and was then accepted is not one, nor one retried from the timer).
    pub rejected: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Threads the OS (or the spawn handler) refused to start.
    pub spawn_failures: u64,
    /// Most threads alive at once.
    pub peak_threads: usize,
    /// Threads started since the pool was built.
    pub threads_started: u64,
    /// Threads that retired after their keep-alive.
    pub threads_retired: u64,
    /// Parked threads woken by a submission.
    pub wakeups: u64,
    /// Submissions that had to wait for this pool to accept them.
    pub waited: u64,
    /// Tasks run on the submitting thread because this pool (or a throttled scheduler's gate
    /// over it) was full.
    pub caller_ran: u64,
    /// CPU_LIGHT tasks that ran longer than 10 ms on this pool: misclassified work.
    pub light_overruns: u64,
    /// Flow steps dispatched to this pool: each one a thread switch (flow entries included).
    pub hops_switched: u64,
    /// Flow steps of this pool's class that ran in place on the thread at hand, with no switch.
    pub hops_elided: u64,
}

impl PoolMetrics {
    /// The snapshot of one service pool.
    pub(crate) fn of(pool: &ServicePool) -> Self {
        let m = pool.pool.metrics();
        let counts = &pool.counts;
        PoolMetrics {
            name: m.name,
            kind: pool.kind(),
            core_size: m.core_size,
            max_size: m.max_size,
            queue_size: m.queue_size,
            threads: m.threads,
            idle: m.idle,
            active: m.active,
            queued: m.queued,
            schedulers: pool.schedulers.load(Ordering::Relaxed),
            submitted: m.submitted,
            completed: m.completed,
            cancelled: m.cancelled,
            rejected: counts.rejected.load(Ordering::Relaxed),
            panicked: m.panicked,
            spawn_failures: m.spawn_failures,
            peak_threads: m.peak_threads,
            threads_started: m.threads_started,
            threads_retired: m.threads_retired,
            wakeups: m.wakeups,
            waited: m.waited,
            caller_ran: counts.caller_ran.load(Ordering::Relaxed),
            light_overruns: counts.light_overruns.load(Ordering::Relaxed),
            hops_switched: counts.hops_switched.load(Ordering::Relaxed),
            hops_elided: counts.hops_elided.load(Ordering::Relaxed),
        }
    }

    /// Submissions refused as a share of those offered, in percent (0 when none were offered).
    pub fn rejection_percent(&self) -> f64 {
        let offered = self.submitted + self.rejected;
        if offered == 0 {
            0.0
        } else {
            100.0 * self.rejected as f64 / offered as f64
        }
    }
}

/// A snapshot of the service's pools.
///
/// ```
/// use uberpool::{PoolKind, SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().build()?; // UBER by default
/// service.io().submit(|| ())?.join()?;
/// let metrics = service.metrics();
/// let uber = metrics.pool(PoolKind::Uber).expect("the UBER pool");
/// assert_eq!(uber.completed, 1);
/// assert_eq!(metrics.for_class(TaskClass::Io).kind, PoolKind::Uber);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceMetrics {
    /// The strategy the service runs.
    pub strategy: Strategy,
    /// One entry per pool: UBER's pool, or DEDICATED's cpuLight, io and cpuIntensive pools (in
    /// that order), then every live custom scheduler's pool.
    pub pools: Vec<PoolMetrics>,
    /// Flow steps dispatched to a pool (a thread switch), flow entries included, over all pools.
    pub hops_switched: u64,
    /// Flow steps that ran in place on the thread that finished the previous step.
    pub hops_elided: u64,
}

impl ServiceMetrics {
    pub(crate) fn new(strategy: Strategy, pools: Vec<PoolMetrics>) -> Self {
        ServiceMetrics {
            strategy,
            hops_switched: pools.iter().map(|p| p.hops_switched).sum(),
            hops_elided: pools.iter().map(|p| p.hops_elided).sum(),
            pools,
        }
    }

    /// The first pool of `kind` (for [`PoolKind::Custom`], the first custom scheduler's pool;
    /// find the others by [`name`](PoolMetrics::name)).
    pub fn pool(&self, kind: PoolKind) -> Option<&PoolMetrics> {
        self.pools.iter().find(|p| p.kind == kind)
    }

    /// The pool that serves `class` under the service's strategy: the UBER pool for every class,
    /// or DEDICATED's pool for that class.
    pub fn for_class(&self, class: TaskClass) -> &PoolMetrics {
        let kind = match (self.strategy, class) {
            (Strategy::Uber, _) => PoolKind::Uber,
            (Strategy::Dedicated, TaskClass::CpuLight) => PoolKind::CpuLight,
            (Strategy::Dedicated, TaskClass::Io) => PoolKind::Io,
            (Strategy::Dedicated, TaskClass::CpuIntensive) => PoolKind::CpuIntensive,
        };
        self.pool(kind)
            .expect("a service has the pool of every class under its strategy")
    }
}

/// Mule's usage table over `pools`, labelled by `label`.
pub(crate) fn usage_table<'a>(pools: impl Iterator<Item = (&'a str, PoolMetrics)>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} | {:>10} | {:>12} | {:>12} | {:>12} | {:>11}",
        "Pool", "Schedulers", "Idle threads", "Used threads", "Queued tasks", "Rejection %"
    );
    let _ = writeln!(out, "{}", "-".repeat(24 + 10 + 12 * 3 + 11 + 15));
    for (label, m) in pools {
        let _ = writeln!(
            out,
            "{:<24} | {:>10} | {:>12} | {:>12} | {:>12} | {:>11.2}",
            label,
            m.schedulers,
            m.idle,
            m.active,
            m.queued,
            m.rejection_percent()
        );
    }
    out
}

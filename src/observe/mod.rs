//! Publishing a service's figures through the `metrics` facade (cargo feature `metrics`): what
//! is watched, the refusals counted per scheduler, and the periodic publish from the timer.
//!
//! Publishing samples counters the pools and the dispatch layer keep anyway: nothing here runs
//! on the path of a task. A publish (`publish.rs`) reads every watched pool and throttled view,
//! and hands the figures to whichever recorder is current on the publishing thread (a local one
//! set with `metrics::with_local_recorder`, else the global one); counters go out as absolute
//! values, gauges as set values. See `README.md` beside this file for the design, its measured
//! cost and the families published.
//!
//! What is watched, and why memory stays bounded however many views a program makes:
//! - pools: the class pools and every custom scheduler's pool, held weakly (pruned when they
//!   are gone);
//! - throttled and rate-limited views, held weakly (pruned the same way), for their gate's
//!   gauges;
//! - refusals, counted per scheduler *name* (with its class and pool), not per view: the
//!   fresh view `service.io()` hands out on every call shares the tally of every other
//!   `{service}.io` view. A tally is made on a name's first refusal and kept, so a published
//!   counter never goes backwards; there are as many as there are scheduler names that ever
//!   refused work, the same bound as the recorder's own series.

mod publish;
#[cfg(all(test, not(loom)))]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::TaskClass;
use crate::dispatch::ServicePool;
use crate::loom::{AtomicBool, AtomicU64, Mutex, Ordering};
use crate::rejected::RejectKind;
use crate::throttle::ThrottleStatus;
use crate::timer::{Fire, Timer};

use publish::LastPublished;

/// The shortest interval between periodic publishes: a publish walks every pool and gate.
pub(crate) const MIN_PUBLISH_INTERVAL: Duration = Duration::from_millis(10);

/// Which scheduler a per-scheduler figure belongs to: its labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SchedulerKey {
    /// The scheduler's name (`{service}.io`, or the name it was given).
    pub(crate) scheduler: String,
    /// The class of its tasks.
    pub(crate) class: TaskClass,
    /// The label of the pool it runs on (`uber`, `io`, …, or a custom scheduler's name).
    pub(crate) pool: String,
}

/// A view with a gate (throttled or rate-limited), as the publisher sees it.
pub(crate) trait Gated: Send + Sync {
    /// The view's labels.
    fn key(&self) -> SchedulerKey;
    /// The gate's figures now; `None` for a view without a gate.
    fn gate_status(&self) -> Option<ThrottleStatus>;
}

/// Refusals of one scheduler name, by kind. Each counter only grows.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// Refused because the pool was full ([`RejectKind::Busy`]).
    busy: AtomicU64,
    /// Refused by the scheduler's gate ([`RejectKind::Throttled`]).
    throttled: AtomicU64,
    /// Refused because the scheduler or its pool is shut down ([`RejectKind::Shutdown`]).
    shutdown: AtomicU64,
}

impl Refusals {
    fn count(&self, kind: RejectKind) {
        let counter = match kind {
            RejectKind::Busy => &self.busy,
            RejectKind::Throttled => &self.throttled,
            RejectKind::Shutdown => &self.shutdown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `[busy, throttled, shutdown]`.
    fn snapshot(&self) -> [u64; 3] {
        [
            self.busy.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
            self.shutdown.load(Ordering::Relaxed),
        ]
    }
}

/// Everything one service publishes, shared by the service, its views and the timer entry of
/// the periodic publish. It holds nothing of the service strongly, so it never keeps a pool or
/// a view alive.
pub(crate) struct Observed {
    /// The `service` label.
    service: String,
    /// The class pools and custom pools, by label; dead entries are pruned when a pool is
    /// added and at every publish.
    pools: Mutex<Vec<(String, Weak<ServicePool>)>>,
    /// Views with a gate; dead entries are pruned when one is added and at every publish.
    gates: Mutex<Vec<Weak<dyn Gated>>>,
    /// Refusals per scheduler name (see the module docs for why per name and kept).
    refusals: Mutex<HashMap<SchedulerKey, Arc<Refusals>>>,
    /// What the last publish set gauges for. Held for the whole of a publish, so that publishes
    /// (the timer's, a user's) never interleave.
    last: Mutex<LastPublished>,
    /// Set once periodic publishing is started: the service's shutdown then publishes the
    /// final figures.
    periodic: AtomicBool,
}

impl Observed {
    /// Nothing watched yet, for the service named `service`.
    pub(crate) fn new(service: String) -> Arc<Self> {
        Arc::new(Observed {
            service,
            pools: Mutex::new(Vec::new()),
            gates: Mutex::new(Vec::new()),
            refusals: Mutex::new(HashMap::new()),
            last: Mutex::new(LastPublished::default()),
            periodic: AtomicBool::new(false),
        })
    }

    /// Watches `pool` (a class pool at build, a custom scheduler's pool when it is made).
    pub(crate) fn watch_pool(&self, pool: &Arc<ServicePool>) {
        let mut pools = self.pools.lock();
        pools.retain(|(_, weak)| weak.strong_count() > 0);
        pools.push((pool.label.clone(), Arc::downgrade(pool)));
    }

    /// Watches a view with a gate.
    pub(crate) fn watch_gate<G: Gated + 'static>(&self, view: &Arc<G>) {
        let weak: Weak<dyn Gated> = Arc::downgrade(view) as Weak<dyn Gated>;
        let mut gates = self.gates.lock();
        gates.retain(|gate| gate.strong_count() > 0);
        gates.push(weak);
    }

    /// The tally of the scheduler `key` names, made on first use.
    fn refusals_of(&self, key: SchedulerKey) -> Arc<Refusals> {
        self.refusals.lock().entry(key).or_default().clone()
    }

    /// Publishes every `interval` (at least [`MIN_PUBLISH_INTERVAL`]) from `timer`, until the
    /// timer shuts down; the service's shutdown then publishes once more
    /// ([`publish_final`](Self::publish_final)). An interval too long for an [`Instant`] arms
    /// nothing: publishes happen at shutdown and on request only.
    pub(crate) fn publish_every(self: &Arc<Self>, timer: &Timer, interval: Duration) {
        self.periodic.store(true, Ordering::Release);
        arm(
            self.clone(),
            timer.clone(),
            interval.max(MIN_PUBLISH_INTERVAL),
        );
    }

    /// The last publish of a service that publishes periodically, once its pools are done.
    pub(crate) fn publish_final(&self) {
        if self.periodic.load(Ordering::Acquire) {
            self.publish();
        }
    }
}

/// Arms the next periodic publish. The action only re-arms itself and publishes: it reads
/// counters and hands them to the recorder, never waits for a pool (the timer's contract).
/// Re-arming comes first, so a recorder that panics (the timer catches it) does not end
/// publishing.
fn arm(observed: Arc<Observed>, timer: Timer, interval: Duration) {
    let Some(due) = Instant::now().checked_add(interval) else {
        return;
    };
    let again = timer.clone();
    let action = Box::new(move |fire: Fire| {
        if fire == Fire::Due {
            arm(observed.clone(), again, interval);
            observed.publish();
        }
    });
    // Refused only when the timer is shut down (the service is stopping, and its shutdown
    // publishes the final figures) or cannot start its thread (logged by the timer).
    let _ = timer.defer_until(due, false, action);
}

/// A view's count of its refusals: a handle on its scheduler name's tally, looked up on the
/// view's first refusal (the refusal path, never the submit path) and kept.
pub(crate) struct RefusalTally {
    observed: Arc<Observed>,
    tally: Mutex<Option<Arc<Refusals>>>,
}

impl RefusalTally {
    pub(crate) fn new(observed: Arc<Observed>) -> Self {
        RefusalTally {
            observed,
            tally: Mutex::new(None),
        }
    }

    /// Counts one refusal of `kind` for the scheduler `key` names.
    pub(crate) fn count(&self, kind: RejectKind, key: impl FnOnce() -> SchedulerKey) {
        let tally = self
            .tally
            .lock()
            .get_or_insert_with(|| self.observed.refusals_of(key()))
            .clone();
        tally.count(kind);
    }
}

impl std::fmt::Debug for RefusalTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalTally")
            .field("service", &self.observed.service)
            .finish_non_exhaustive()
    }
}

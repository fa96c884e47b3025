//! One publish: the families (names, help, where each figure comes from), and the walk over a
//! service's pools, gates and refusal tallies that hands their figures to the recorder.
//!
//! Names follow Prometheus conventions: `uberpool_` prefix, the subject (`pool`, `scheduler`),
//! counters ending in `_total`. Pool families carry the labels `service` and `pool`; scheduler
//! families `service`, `pool`, `class` and `scheduler` (and `kind` for refusals). Figures of
//! pools or views that share their labels (two live custom schedulers of the same name, two
//! throttled views of the same name) are added up.

use std::collections::{BTreeMap, BTreeSet};

use metrics::{Label, SharedString, Unit};

use crate::dispatch::ServicePool;
use crate::loom::Ordering;

use super::{Observed, SchedulerKey};

/// A published family: its name and its help text.
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
}

const fn family(name: &'static str, help: &'static str) -> Family {
    Family { name, help }
}

/// Pool gauges, in the order of [`PoolFigures::gauges`].
pub(crate) const POOL_GAUGES: [Family; 7] = [
    family(
        "uberpool_pool_threads",
        "Threads alive (or being started) in the pool.",
    ),
    family("uberpool_pool_idle_threads", "Pool threads without a task."),
    family(
        "uberpool_pool_active_threads",
        "Pool threads running a task.",
    ),
    family(
        "uberpool_pool_queued_tasks",
        "Tasks accepted and waiting for a thread.",
    ),
    family(
        "uberpool_pool_peak_threads",
        "Most threads the pool had alive at once.",
    ),
    family(
        "uberpool_pool_max_threads",
        "Most threads the pool may have.",
    ),
    family(
        "uberpool_pool_queue_capacity",
        "Tasks that may wait in the pool's queue.",
    ),
];

/// Pool counters, in the order of [`PoolFigures::counters`].
pub(crate) const POOL_COUNTERS: [Family; 10] = [
    family(
        "uberpool_pool_submitted_tasks_total",
        "Tasks the pool accepted.",
    ),
    family(
        "uberpool_pool_completed_tasks_total",
        "Tasks that ran to their end, panicked or not.",
    ),
    family(
        "uberpool_pool_cancelled_tasks_total",
        "Accepted tasks that never ran.",
    ),
    family(
        "uberpool_pool_rejected_tasks_total",
        "Offers the pool refused because it was full (busy).",
    ),
    family(
        "uberpool_pool_caller_ran_tasks_total",
        "Tasks run on the submitting thread because the pool or a gate over it was full.",
    ),
    family(
        "uberpool_pool_waited_submissions_total",
        "Submissions that waited for the pool to accept them.",
    ),
    family("uberpool_pool_panicked_tasks_total", "Tasks that panicked."),
    family(
        "uberpool_pool_light_overruns_total",
        "CPU_LIGHT tasks that ran longer than the 10 ms light budget.",
    ),
    family(
        "uberpool_pool_hops_switched_total",
        "Flow steps dispatched to the pool: each a thread switch.",
    ),
    family(
        "uberpool_pool_hops_elided_total",
        "Flow steps of the pool's class run in place, with no thread switch.",
    ),
];

/// Refusals per scheduler, labelled `kind`.
pub(crate) const SCHEDULER_REJECTED: Family = family(
    "uberpool_scheduler_rejected_tasks_total",
    "Submissions the scheduler refused, by kind: busy, throttled, shutdown.",
);

/// The `kind` label values, in the order of `Refusals::snapshot`.
pub(crate) const REJECT_KINDS: [&str; 3] = ["busy", "throttled", "shutdown"];

/// Gauges of a scheduler with a gate, in the order of [`GateFigures`].
pub(crate) const GATE_GAUGES: [Family; 4] = [
    family(
        "uberpool_scheduler_concurrency_limit",
        "Tasks the scheduler's gate lets in flight at once, the adaptive limit's current value \
         for an adaptive scheduler (published when it has a limit).",
    ),
    family(
        "uberpool_scheduler_concurrency_gradient",
        "An adaptive scheduler's latest latency gradient: min(1, tolerance x baseline / latency), \
         at least 0.5; 1 before its first window and after a backoff (adaptive schedulers only).",
    ),
    family(
        "uberpool_scheduler_in_flight_tasks",
        "Tasks holding a slot of the scheduler's gate: offered, queued in the pool or running.",
    ),
    family(
        "uberpool_scheduler_held_tasks",
        "Tasks waiting in the scheduler's own queue for a slot.",
    ),
];

/// One pool's figures (or the sum of the pools sharing a label).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolFigures {
    pub(crate) gauges: [u64; 7],
    pub(crate) counters: [u64; 10],
}

impl PoolFigures {
    /// Reads `pool` now, in the order of [`POOL_GAUGES`] and [`POOL_COUNTERS`].
    pub(crate) fn of(pool: &ServicePool) -> Self {
        let m = pool.pool.metrics();
        let counts = &pool.counts;
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        PoolFigures {
            gauges: [
                wide(m.threads),
                wide(m.idle),
                wide(m.active),
                wide(m.queued),
                wide(m.peak_threads),
                wide(m.max_size),
                wide(m.queue_size),
            ],
            counters: [
                m.submitted,
                m.completed,
                m.cancelled,
                counts.rejected.load(Ordering::Relaxed),
                counts.caller_ran.load(Ordering::Relaxed),
                m.waited,
                m.panicked,
                counts.light_overruns.load(Ordering::Relaxed),
                counts.hops_switched.load(Ordering::Relaxed),
                counts.hops_elided.load(Ordering::Relaxed),
            ],
        }
    }

    fn add(&mut self, other: &PoolFigures) {
        for (sum, n) in self.gauges.iter_mut().zip(other.gauges) {
            *sum = sum.saturating_add(n);
        }
        for (sum, n) in self.counters.iter_mut().zip(other.counters) {
            *sum = sum.saturating_add(n);
        }
    }
}

/// A gate's gauges (or the sum over the views sharing a name).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct GateFigures {
    /// `None` when no view of the name has a concurrency limit (a rate only). For an adaptive
    /// view, its current limit.
    pub(crate) limit: Option<u64>,
    /// The latest gradient of the adaptive views of the name (their mean when there are
    /// several); `None` when none is adaptive.
    pub(crate) gradient: Option<f64>,
    /// Adaptive views of the name, whose gradients `gradient` averages.
    pub(crate) adaptive_views: u32,
    pub(crate) in_flight: u64,
    pub(crate) held: u64,
}

/// The label sets the last publish set gauges for: a pool or gate missing from the next one
/// is gone, and its gauges are set to zero once (a recorder keeps a gauge's last value).
#[derive(Debug, Default)]
pub(crate) struct LastPublished {
    pools: BTreeSet<String>,
    gates: BTreeSet<SchedulerKey>,
    /// Those of `gates` that published a gradient (adaptive schedulers).
    adaptive: BTreeSet<SchedulerKey>,
}

impl Observed {
    /// Hands every figure to the current recorder: the calling thread's local recorder if it
    /// has one, else the global one (none installed: nothing happens).
    pub(crate) fn publish(&self) {
        let mut last = self.last.lock();
        describe();
        let pools = self.pool_figures();
        for (pool, figures) in &pools {
            self.publish_pool(pool, figures);
        }
        for gone in last.pools.iter().filter(|p| !pools.contains_key(*p)) {
            let zero = PoolFigures::default();
            self.publish_pool_gauges(gone, &zero);
        }
        last.pools = pools.into_keys().collect();

        let gates = self.gate_figures();
        for (key, figures) in &gates {
            let mut figures = *figures;
            if figures.gradient.is_none() && last.adaptive.contains(key) {
                // Its adaptive views are gone, views with a fixed limit remain.
                figures.gradient = Some(0.0);
            }
            self.publish_gate(key, &figures);
        }
        for gone in last.gates.iter().filter(|k| !gates.contains_key(*k)) {
            let zero = GateFigures {
                limit: Some(0),
                gradient: last.adaptive.contains(gone).then_some(0.0),
                ..GateFigures::default()
            };
            self.publish_gate(gone, &zero);
        }
        // Every gated view shows its refusals, zero until it refuses; others once they have.
        let tallies: Vec<_> = {
            let refusals = self.refusals.lock();
            gates
                .keys()
                .filter(|key| !refusals.contains_key(*key))
                .map(|key| (key.clone(), [0; 3]))
                .chain(refusals.iter().map(|(k, t)| (k.clone(), t.snapshot())))
                .collect()
        };
        for (key, counts) in &tallies {
            for (kind, count) in REJECT_KINDS.iter().zip(counts) {
                let mut labels = self.scheduler_labels(key);
                labels.push(Label::new("kind", *kind));
                metrics::counter!(SCHEDULER_REJECTED.name, labels).absolute(*count);
            }
        }
        last.adaptive = gates
            .iter()
            .filter(|(_, figures)| figures.gradient.is_some())
            .map(|(key, _)| key.clone())
            .collect();
        last.gates = gates.into_keys().collect();
    }

    /// Every live pool's figures by label, the pools sharing a label added up.
    pub(crate) fn pool_figures(&self) -> BTreeMap<String, PoolFigures> {
        let live: Vec<_> = {
            let mut pools = self.pools.lock();
            pools.retain(|(_, weak)| weak.strong_count() > 0);
            pools
                .iter()
                .filter_map(|(label, weak)| Some((label.clone(), weak.upgrade()?)))
                .collect()
        };
        let mut figures: BTreeMap<String, PoolFigures> = BTreeMap::new();
        for (label, pool) in live {
            figures
                .entry(label)
                .or_default()
                .add(&PoolFigures::of(&pool));
        }
        figures
    }

    /// Every live gate's figures by scheduler, the views sharing a name added up.
    pub(crate) fn gate_figures(&self) -> BTreeMap<SchedulerKey, GateFigures> {
        let live: Vec<_> = {
            let mut gates = self.gates.lock();
            gates.retain(|gate| gate.strong_count() > 0);
            gates.iter().filter_map(|gate| gate.upgrade()).collect()
        };
        let mut figures: BTreeMap<SchedulerKey, GateFigures> = BTreeMap::new();
        for view in live {
            let Some(status) = view.gate_status() else {
                continue;
            };
            let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            let sum = figures.entry(view.key()).or_default();
            if let Some(limit) = status.limit {
                sum.limit = Some(sum.limit.unwrap_or(0).saturating_add(wide(limit)));
            }
            if let Some(adaptive) = &status.adaptive {
                // A running mean over the adaptive views of the name.
                let n = f64::from(sum.adaptive_views);
                let mean = sum.gradient.unwrap_or(0.0);
                sum.gradient = Some((mean * n + adaptive.gradient) / (n + 1.0));
                sum.adaptive_views += 1;
            }
            sum.in_flight = sum.in_flight.saturating_add(wide(status.in_flight));
            sum.held = sum.held.saturating_add(wide(status.held));
        }
        figures
    }

    fn pool_labels(&self, pool: &str) -> Vec<Label> {
        vec![
            Label::new("service", self.service.clone()),
            Label::new("pool", pool.to_owned()),
        ]
    }

    fn scheduler_labels(&self, key: &SchedulerKey) -> Vec<Label> {
        vec![
            Label::new("service", self.service.clone()),
            Label::new("pool", key.pool.clone()),
            Label::new("class", key.class.to_string()),
            Label::new("scheduler", key.scheduler.clone()),
        ]
    }

    fn publish_pool(&self, pool: &str, figures: &PoolFigures) {
        self.publish_pool_gauges(pool, figures);
        for (family, value) in POOL_COUNTERS.iter().zip(figures.counters) {
            metrics::counter!(family.name, self.pool_labels(pool)).absolute(value);
        }
    }

    fn publish_pool_gauges(&self, pool: &str, figures: &PoolFigures) {
        for (family, value) in POOL_GAUGES.iter().zip(figures.gauges) {
            metrics::gauge!(family.name, self.pool_labels(pool)).set(value as f64);
        }
    }

    fn publish_gate(&self, key: &SchedulerKey, figures: &GateFigures) {
        let [limit, gradient, in_flight, held] = &GATE_GAUGES;
        if let Some(n) = figures.limit {
            metrics::gauge!(limit.name, self.scheduler_labels(key)).set(n as f64);
        }
        if let Some(g) = figures.gradient {
            metrics::gauge!(gradient.name, self.scheduler_labels(key)).set(g);
        }
        metrics::gauge!(in_flight.name, self.scheduler_labels(key)).set(figures.in_flight as f64);
        metrics::gauge!(held.name, self.scheduler_labels(key)).set(figures.held as f64);
    }
}

/// Gives the recorder every family's unit and help text (Prometheus' `# HELP` lines). Repeated
/// at every publish: the recorder may have changed since the last one.
fn describe() {
    let help = |text: &'static str| SharedString::const_str(text);
    for family in &POOL_GAUGES {
        metrics::describe_gauge!(family.name, Unit::Count, help(family.help));
    }
    for family in &POOL_COUNTERS {
        metrics::describe_counter!(family.name, Unit::Count, help(family.help));
    }
    metrics::describe_counter!(
        SCHEDULER_REJECTED.name,
        Unit::Count,
        help(SCHEDULER_REJECTED.help)
    );
    let [limit, gradient, in_flight, held] = &GATE_GAUGES;
    for family in [limit, in_flight, held] {
        metrics::describe_gauge!(family.name, Unit::Count, help(family.help));
    }
    // A ratio: no unit.
    metrics::describe_gauge!(gradient.name, help(gradient.help));
}

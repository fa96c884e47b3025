//! The adaptive-concurrency demo's parts, shared by `examples/adaptive_relay.rs` and
//! `tests/adaptive_relay.rs`: the relay's capacity model, the views compared, the sweep over
//! fixed limits, and the reading of a run's timeline (when the limit settled). The campaign
//! driver is in `driver.rs`, the SVG plot in `plot.rs`. A folder module, so it is no example
//! target of its own; it uses `crate::email` (the relay and the SMTP client).
// Each crate that includes this module uses a different part of it.
#![allow(dead_code)]

pub mod driver;
pub mod plot;

use std::time::Duration;

use uberpool::{AdaptiveConcurrency, Scheduler, SchedulerConfig, SchedulerService, TaskClass};

use crate::email::relay::{Capacity, Relay, RelayOptions};
use driver::{RunReport, Stop, Tick};

/// The fixed limits the sweep tries, as the manual advice goes.
pub const FIXED_LIMITS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// How often a run's timeline is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The relay's capacity model with knee `k`: `k` sessions answered in 20 ms, 5 ms more per
/// session beyond (so that going past the knee costs throughput: 9 sessions deliver 9 per
/// 25 ms, fewer than 8 per 20 ms), and `421` beyond one and a half times `k`.
pub fn capacity(k: usize) -> Capacity {
    Capacity {
        soft_limit: k,
        base_latency: Duration::from_millis(20),
        latency_per_excess: Duration::from_millis(5),
        hard_limit: k + k / 2,
    }
}

/// A relay with the capacity model of knee `k`.
pub fn relay(k: usize) -> Relay {
    relay_with(capacity(k))
}

/// A relay with the capacity model `capacity`.
pub fn relay_with(capacity: Capacity) -> Relay {
    Relay::start(RelayOptions {
        refuse_first_percent: 0,
        capacity: Some(capacity),
    })
    .expect("the relay starts")
}

/// The view with a fixed limit of `n`.
pub fn fixed_view(service: &SchedulerService, n: usize) -> Scheduler {
    service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name(format!("fixed-{n}"))
                .max_concurrent_tasks(n),
        )
        .expect("a throttled view")
}

/// The view with an adaptive limit with `options` (the demo uses the defaults: from 4, between
/// 1 and 200).
pub fn adaptive_view(service: &SchedulerService, options: AdaptiveConcurrency) -> Scheduler {
    service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("adaptive")
                .adaptive_concurrency(options),
        )
        .expect("an adaptive view")
}

/// One run of the sweep.
pub struct Row {
    /// The fixed limit, or `None` for the adaptive view.
    pub fixed: Option<usize>,
    pub report: RunReport,
}

impl Row {
    pub fn label(&self) -> String {
        match self.fixed {
            Some(n) => format!("fixed {n}"),
            None => "adaptive".to_owned(),
        }
    }
}

/// Sends the same campaign of `messages` to a fresh relay with knee `k`, once per fixed limit
/// in `limits` and once through the adaptive view; calls `each` after every run.
pub fn sweep(
    service: &SchedulerService,
    k: usize,
    messages: usize,
    limits: &[usize],
    mut each: impl FnMut(&Row),
) -> Vec<Row> {
    let mut rows = Vec::new();
    let runs = limits.iter().map(|n| Some(*n)).chain([None]);
    for fixed in runs {
        let view = match fixed {
            Some(n) => fixed_view(service, n),
            None => adaptive_view(service, AdaptiveConcurrency::new()),
        };
        let relay = relay(k);
        let run = fixed.map_or("adaptive".to_owned(), |n| format!("fixed-{n}"));
        let report = driver::send(
            &view,
            &relay,
            &run,
            Stop::Messages(messages),
            &[],
            SAMPLE_EVERY,
        );
        view.shutdown();
        let row = Row { fixed, report };
        each(&row);
        rows.push(row);
    }
    rows
}

/// What the sweep says against the bar.
pub struct Verdict {
    /// The best fixed limit and its messages per second.
    pub best: (usize, f64),
    /// The adaptive run's messages per second over the best fixed limit's.
    pub ratio: f64,
    /// The adaptive run's 421s, and the fewest of any fixed limit above `k`.
    pub adaptive_421: u64,
    pub fewest_421_above_k: Option<u64>,
}

pub fn verdict(rows: &[Row], k: usize) -> Verdict {
    let best = rows
        .iter()
        .filter_map(|r| r.fixed.map(|n| (n, r.report.per_second())))
        .fold((0, 0.0), |best, r| if r.1 > best.1 { r } else { best });
    let adaptive = rows
        .iter()
        .find(|r| r.fixed.is_none())
        .expect("the adaptive run");
    Verdict {
        best,
        ratio: adaptive.report.per_second() / best.1.max(1e-9),
        adaptive_421: adaptive.report.refused,
        fewest_421_above_k: rows
            .iter()
            .filter(|r| r.fixed.is_some_and(|n| n > k))
            .map(|r| r.report.refused)
            .min(),
    }
}

/// The band the limit should settle in for knee `k`: from `k - 1` to `k + max(2, k / 4)`.
pub fn band(k: usize) -> (usize, usize) {
    (k.saturating_sub(1).max(1), k + (k / 4).max(2))
}

/// How long after `change` the limit entered `band` for good, judged on the ticks from `change`
/// up to `end`; `None` if it was outside the band at the last tick.
pub fn settled_after(
    timeline: &[Tick],
    change: Duration,
    end: Duration,
    band: (usize, usize),
) -> Option<Duration> {
    let phase: Vec<&Tick> = timeline
        .iter()
        .filter(|t| t.at >= change && t.at < end)
        .collect();
    let inside = |t: &Tick| (band.0..=band.1).contains(&t.limit);
    if !phase.last().is_some_and(|t| inside(t)) {
        return None;
    }
    match phase.iter().rposition(|t| !inside(t)) {
        None => Some(Duration::ZERO),
        Some(i) => Some(phase[i + 1].at - change),
    }
}

/// The limit's lowest and highest value and the delivered messages per second between `from`
/// and `to`.
pub fn phase_figures(timeline: &[Tick], from: Duration, to: Duration) -> (usize, usize, f64) {
    let phase: Vec<&Tick> = timeline
        .iter()
        .filter(|t| t.at >= from && t.at < to)
        .collect();
    let lo = phase.iter().map(|t| t.limit).min().unwrap_or(0);
    let hi = phase.iter().map(|t| t.limit).max().unwrap_or(0);
    let rate = match (phase.first(), phase.last()) {
        (Some(a), Some(b)) if b.at > a.at => {
            (b.delivered - a.delivered) as f64 / (b.at - a.at).as_secs_f64()
        }
        _ => 0.0,
    };
    (lo, hi, rate)
}

//! An adaptive view against the real SMTP relay on loopback, through the demo's driver: the
//! limit rises from its start towards the relay's K, comes down when K is halved, and a limit
//! started far beyond the hard limit stops the `421`s.
//!
//! The relay, the client and the service share the machine's CPUs, so under load the latency a
//! task measures includes waiting for a CPU, and more sessions mean more of that wait: the
//! limit settles lower than K on a starved machine, which is what it should do there. These
//! tests therefore assert only what holds however busy the machine is — the direction the
//! limit moves, in a relay model with a strong latency signal (40 ms, and 20 ms more per
//! session beyond K), and the overload backoff, which does not depend on latency — with
//! generous bounds. The exact bands, the settling times and the absence of oscillation are
//! pinned by the simulated tests in virtual time (`src/adaptive/tests.rs`), and the example
//! (`examples/adaptive_relay.rs --check`) measures them on the real relay. No sleep sequences
//! anything: the driver waits on the view and on a channel, the sampler only measures.

#[path = "../examples/adaptive/mod.rs"]
mod adaptive;
#[path = "../examples/email/mod.rs"]
mod email;

use std::time::Duration;

use uberpool::{AdaptiveConcurrency, SchedulerService};

use adaptive::driver::{self, RunReport, Stop, Tick};
use adaptive::{SAMPLE_EVERY, adaptive_view, relay_with};
use email::relay::Capacity;

const K: usize = 8;

fn service() -> SchedulerService {
    SchedulerService::builder()
        .name("adaptive-relay-test")
        .build()
        .expect("the service starts")
}

/// K sessions in 40 ms, 20 ms more per session beyond K, `421` beyond 1.5 × K.
fn strong_signal(k: usize) -> Capacity {
    Capacity {
        soft_limit: k,
        base_latency: Duration::from_millis(40),
        latency_per_excess: Duration::from_millis(20),
        hard_limit: k + k / 2,
    }
}

fn ticks(report: &RunReport, from: Duration, to: Duration) -> Vec<Tick> {
    report
        .timeline
        .iter()
        .filter(|t| t.at >= from && t.at < to)
        .copied()
        .collect()
}

#[test]
fn the_limit_rises_from_its_start_towards_k_and_comes_down_when_k_halves() {
    let service = service();
    let relay = relay_with(strong_signal(K));
    let view = adaptive_view(&service, AdaptiveConcurrency::new());
    let phase = Duration::from_secs(4);
    let report = driver::send(
        &view,
        &relay,
        "phases",
        Stop::After(phase * 2),
        &[(phase, K / 2)],
        SAMPLE_EVERY,
    );
    assert_eq!(report.changes.len(), 1, "{:?}", report.changes);
    let halved = report.changes[0].0;
    let limits = |ticks: &[Tick]| ticks.iter().map(|t| t.limit).collect::<Vec<_>>();
    // From 4, towards K = 8.
    let before = ticks(&report, Duration::ZERO, halved);
    let highest = before.iter().map(|t| t.limit).max().unwrap();
    assert!(
        highest >= K - 1,
        "the limit never rose towards K: {:?}",
        limits(&before)
    );
    // K = 4: at 8 sessions a message takes three times the baseline; within the phase's last
    // second the limit is below the old K.
    let last_second = ticks(
        &report,
        halved + phase - Duration::from_secs(1),
        report.wall,
    );
    assert!(!last_second.is_empty());
    assert!(
        last_second.iter().all(|t| t.limit < K),
        "the limit did not come down: {:?}",
        limits(&ticks(&report, halved, report.wall))
    );
    let adaptive = view.throttle().unwrap().adaptive.unwrap();
    assert!(
        adaptive.windows >= 10 && adaptive.decreases > 0,
        "{adaptive:?}"
    );
    // Never far beyond the hard limit: a handful of 421s at most.
    assert!(report.refused <= 20, "{} 421s", report.refused);
    view.shutdown();
    let log = relay.stop();
    assert_eq!(log.duplicates, 0);
    assert_eq!(log.messages, report.delivered);
}

#[test]
fn a_limit_started_far_beyond_the_hard_limit_stops_the_421s_within_a_bounded_number_of_messages() {
    let service = service();
    let relay = relay_with(strong_signal(K));
    let view = adaptive_view(&service, AdaptiveConcurrency::new().initial_limit(60));
    let report = driver::send(
        &view,
        &relay,
        "overloaded",
        Stop::Messages(1000),
        &[],
        SAMPLE_EVERY,
    );
    // The first round alone meets 48 refusals (60 sessions, 12 allowed).
    assert!(report.refused >= 40, "{} 421s", report.refused);
    // From 60, ten backoffs of 0.8 bring the limit under the hard limit (12), one per round of
    // refusals; each round holds at most the limit's worth of sessions. The storm ends early:
    // by the time half the messages are delivered, all but a few 421s have been met. A few
    // may still come later, at a limit of 10-13: the relay counts a session until its
    // connection closes, a moment after the task gave its slot back, so a limit just below
    // the hard limit now and then meets a 421 (seen in 4 runs of 11 on a quiet machine).
    let by_half = report
        .timeline
        .iter()
        .find(|t| t.delivered >= 500)
        .map_or(report.refused, |t| t.refused);
    let later = report.refused - by_half;
    assert!(
        later <= 10,
        "{later} 421s after half the messages were delivered ({} in all, {by_half} before)",
        report.refused
    );
    assert!(report.refused <= 500, "{} 421s", report.refused);
    let adaptive = view.throttle().unwrap().adaptive.unwrap();
    assert!(adaptive.backoffs >= 5, "{adaptive:?}");
    assert!(adaptive.limit < 12, "{adaptive:?}");
    view.shutdown();
    let log = relay.stop();
    assert_eq!(log.messages, 1000);
    assert_eq!(log.refused_busy, report.refused);
}

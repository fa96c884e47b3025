//! The adaptive limit's rules, one step at a time with exact numbers, then in closed loop
//! against the simulated relay (`sim.rs`) in virtual time: deterministic, no clock read.

use std::time::Duration;

use super::config::{AdaptiveConcurrency, Params};
use super::limit::{AdaptiveLimit, LimitDecision, Outcome, Sample, Step};
use super::sim::{Service, Simulation};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

fn params(options: AdaptiveConcurrency) -> Params {
    options.params().expect("valid options")
}

/// A limit starting at 10 with the default rules.
fn at_ten() -> AdaptiveLimit {
    AdaptiveLimit::new(params(AdaptiveConcurrency::new().initial_limit(10)))
}

fn sample(started: Duration, latency: Duration, in_flight: usize, outcome: Outcome) -> Sample {
    Sample {
        started,
        ended: started + latency,
        in_flight,
        outcome,
    }
}

/// Feeds one full default window (10 tasks of `latency` each, 10 in flight, spread over 60 ms)
/// starting at `from`; returns the step that closed it.
fn window(limit: &mut AdaptiveLimit, from: Duration, latency: Duration) -> Step {
    let mut step = None;
    for i in 0..10 {
        let started = from + ms(6 * i);
        assert!(step.is_none(), "the window closed early");
        step = limit.on_sample(sample(started, latency, 10, Outcome::Completed));
    }
    step.expect("ten tasks over 60 ms close a 50 ms window")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn before_any_knee_a_flat_window_grows_the_limit_by_a_fifth() {
    let mut limit = at_ten();
    let step = window(&mut limit, ms(0), ms(20));
    assert_eq!(step.decision, LimitDecision::Increase);
    assert_eq!((step.before, step.after), (10, 12));
    assert_eq!(step.gradient, 1.0);
    assert_eq!(step.latency, Some(ms(20)));
    assert_eq!(step.baseline, Some(ms(20)));
    // A slow start: target = 10 × 1 + 10; limit = 0.8 × 10 + 0.2 × 20
    assert!(close(limit.figures().limit, 12.0));
    window(&mut limit, ms(100), ms(20));
    assert!(close(limit.figures().limit, 14.4));
}

#[test]
fn below_the_knee_the_limit_closes_the_gap_then_creeps_and_beyond_it_doubles_its_steps() {
    let options = AdaptiveConcurrency::new().initial_limit(10).backoff(0.75);
    let mut limit = AdaptiveLimit::new(params(options));
    // An overload: 7.5, and 10 is the knee.
    limit.on_sample(sample(ms(0), ms(1), 10, Outcome::Overloaded));
    let expected = [
        // Below the knee: allowances 1, 2, then capped at the gap (2.5 - ...): 1.52, 1.216;
        7.7, 8.1, 8.48, 8.784, 9.0272,
        // within 1 of the knee, the plain allowance: 0.2 a window, across it;
        9.2272, 9.4272, 9.6272, 9.8272, 10.0272,
        // beyond it, new ground: allowances 1, 2, 4, 8, then capped at the limit.
        10.2272, 10.6272, 11.4272, 13.0272, 15.63264,
    ];
    for (n, value) in expected.into_iter().enumerate() {
        window(&mut limit, ms(10 + 100 * n as u64), ms(20));
        let now = limit.figures().limit;
        assert!(close(now, value), "window {n}: {now} instead of {value}");
    }
}

#[test]
fn a_slower_window_shrinks_towards_the_gradient_target_and_marks_the_knee() {
    let mut limit = at_ten();
    window(&mut limit, ms(0), ms(20)); // 12, baseline 20 ms
    let step = window(&mut limit, ms(100), ms(40));
    // The baseline follows a higher window slowly: 20 + 20 / 600 ms.
    let baseline = 20.0 + 20.0 / 600.0;
    let gradient = baseline / 40.0;
    let target = 12.0 * gradient + 1.0;
    let expected = 0.8 * 12.0 + 0.2 * target;
    assert_eq!(step.decision, LimitDecision::Decrease);
    assert!((step.gradient - gradient).abs() < 1e-12);
    assert!(close(limit.figures().limit, expected), "{expected}");
    assert_eq!((step.before, step.after), (12, 11));
    // Back to a flat latency: below the knee (12) the growth is the plain allowance, and the
    // baseline went back down to 20 ms at once.
    let step = window(&mut limit, ms(200), ms(20));
    assert_eq!(step.baseline, Some(ms(20)));
    assert!(close(limit.figures().limit, expected + 0.2));
    let step = window(&mut limit, ms(300), ms(20));
    assert_eq!(step.decision, LimitDecision::Increase);
    assert!(close(limit.figures().limit, expected + 0.4));
}

#[test]
fn the_gradient_is_at_least_one_half() {
    let mut limit = at_ten();
    window(&mut limit, ms(0), ms(10));
    let step = window(&mut limit, ms(100), ms(1000));
    assert_eq!(step.gradient, 0.5);
    // target = 12 × 0.5 + 1
    assert!(close(limit.figures().limit, 0.8 * 12.0 + 0.2 * 7.0));
}

#[test]
fn an_overload_backs_off_once_per_round() {
    let mut limit = at_ten();
    let first = limit.on_sample(sample(ms(0), ms(5), 10, Outcome::Overloaded));
    let step = first.expect("an overload is a step");
    assert_eq!(step.decision, LimitDecision::Backoff);
    assert_eq!((step.before, step.after), (10, 8));
    // A task that started before that backoff: counted, but the limit has already answered.
    assert!(
        limit
            .on_sample(sample(ms(1), ms(10), 8, Outcome::Overloaded))
            .is_none()
    );
    assert_eq!(limit.whole(), 8);
    // One that started after it: a new round.
    let step = limit
        .on_sample(sample(ms(6), ms(5), 8, Outcome::Overloaded))
        .unwrap();
    assert_eq!((step.before, step.after), (8, 6)); // 6.4
    let figures = limit.figures();
    assert_eq!((figures.overloads, figures.backoffs), (3, 2));
    assert_eq!(figures.decision, LimitDecision::Backoff);
}

#[test]
fn a_task_past_the_overload_timeout_counts_as_an_overload() {
    let options = AdaptiveConcurrency::new()
        .initial_limit(10)
        .overload_timeout(ms(100));
    let mut limit = AdaptiveLimit::new(params(options));
    assert!(
        limit
            .on_sample(sample(ms(0), ms(99), 10, Outcome::Completed))
            .is_none()
    );
    let step = limit
        .on_sample(sample(ms(0), ms(100), 10, Outcome::Completed))
        .unwrap();
    assert_eq!(step.decision, LimitDecision::Backoff);
    assert_eq!(limit.figures().overloads, 1);
}

#[test]
fn ignored_tasks_change_nothing_but_their_count() {
    let mut limit = at_ten();
    for i in 0..100 {
        let ignored = sample(ms(i), ms(500), 10, Outcome::Ignored);
        assert!(limit.on_sample(ignored).is_none());
    }
    let figures = limit.figures();
    assert_eq!((figures.ignored, figures.windows), (100, 0));
    assert!(close(figures.limit, 10.0));
    // The window still needs ten latency samples of its own.
    let step = window(&mut limit, ms(1000), ms(20));
    assert_eq!(step.latency, Some(ms(20)));
}

#[test]
fn a_window_is_judged_after_its_duration_and_its_tasks() {
    let mut limit = at_ten();
    // Twenty tasks within 10 ms: enough tasks, not enough time.
    for i in 0..20 {
        let quick = sample(
            Duration::from_micros(500 * i),
            ms(1),
            10,
            Outcome::Completed,
        );
        assert!(limit.on_sample(quick).is_none());
    }
    assert!(
        limit
            .on_sample(sample(ms(49), ms(1), 10, Outcome::Completed))
            .is_some(),
        "the window opened when its first task started, 50 ms ago"
    );
    // Nine tasks over a second: enough time, not enough tasks.
    for i in 0..9 {
        let slow = sample(ms(100 + 100 * i), ms(1), 10, Outcome::Completed);
        assert!(limit.on_sample(slow).is_none());
    }
    assert!(
        limit
            .on_sample(sample(ms(1000), ms(1), 10, Outcome::Completed))
            .is_some()
    );
}

#[test]
fn a_window_with_fewer_than_half_the_limit_in_flight_keeps_the_limit() {
    let mut limit = at_ten();
    let mut step = None;
    for i in 0..10 {
        step = limit.on_sample(sample(ms(6 * i), ms(20), 4, Outcome::Completed));
    }
    let step = step.unwrap();
    assert_eq!(step.decision, LimitDecision::AppLimited);
    assert!(close(limit.figures().limit, 10.0));
    // The baseline is still learnt from it.
    assert_eq!(limit.figures().baseline, Some(ms(20)));
}

#[test]
fn samples_of_tasks_started_before_a_backoff_are_left_out_of_the_window() {
    let mut limit = at_ten();
    limit.on_sample(sample(ms(100), ms(1), 10, Outcome::Overloaded));
    // Slow tasks that started under the old limit would make the next window look congested.
    for i in 0..50 {
        let stale = sample(ms(i), ms(400), 10, Outcome::Completed);
        assert!(limit.on_sample(stale).is_none());
    }
    let step = window(&mut limit, ms(200), ms(20));
    assert_eq!(step.latency, Some(ms(20)));
}

// Closed loop against the simulated relay: 20 ms at up to K concurrent tasks, 5 ms more per
// task beyond K, overloaded beyond 1.5 × K, latencies with ±10 % noise.

/// Runs the default rules from a limit of 4 against a relay with knee `k` for `until`.
fn simulate(k: usize, seed: u64, until: f64) -> Simulation {
    let limit = AdaptiveLimit::new(params(AdaptiveConcurrency::new()));
    let mut sim = Simulation::new(limit, Service::relay(k), seed);
    sim.run_until(secs(until));
    sim
}

/// The lowest and highest whole limit over the tasks that ended from `from` on.
fn band(sim: &Simulation, from: Duration) -> (usize, usize) {
    let limits = sim.since(from).map(|e| e.limit);
    let (lo, hi) = limits.fold((usize::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
    assert!(hi > 0, "tasks ended after {from:?}");
    (lo, hi)
}

#[test]
fn the_limit_settles_at_the_knee_within_a_second_and_stays_within_k_to_k_plus_2() {
    for k in [8, 16] {
        for seed in 1..=3 {
            let sim = simulate(k, seed, 30.0);
            let (lo, hi) = band(&sim, secs(1.0));
            assert!(
                lo >= k && hi <= k + 2,
                "K = {k}, seed {seed}: limit within [{lo}, {hi}] after 1 s"
            );
            assert!(
                sim.since(secs(1.0)).all(|e| !e.overloaded),
                "K = {k}, seed {seed}: no overload once settled"
            );
            // Throughput against the best fixed limit (K tasks every 20 ms).
            let per_second = sim.since(secs(1.0)).count() as f64 / 29.0;
            let best = k as f64 / 0.020;
            assert!(
                per_second >= 0.9 * best,
                "K = {k}, seed {seed}: {per_second:.0}/s against {best:.0}/s"
            );
        }
    }
}

#[test]
fn the_limit_does_not_oscillate_by_more_than_two_once_settled() {
    for seed in 1..=5 {
        let sim = simulate(8, seed, 60.0);
        // Every ten-second stretch of the steady state stays within a band two tasks wide.
        for start in [10.0, 20.0, 30.0, 40.0, 50.0] {
            let stretch: Vec<usize> = sim
                .since(secs(start))
                .filter(|e| e.at < secs(start + 10.0))
                .map(|e| e.limit)
                .collect();
            let lo = stretch.iter().min().unwrap();
            let hi = stretch.iter().max().unwrap();
            assert!(hi - lo <= 2, "seed {seed}, from {start} s: [{lo}, {hi}]");
        }
    }
}

#[test]
fn overloads_stop_within_100_tasks_after_the_knee_halves() {
    for seed in 1..=3 {
        let mut sim = simulate(16, seed, 10.0);
        let change = sim.now();
        let before = sim.trace.len();
        sim.service = Service::relay(8); // the hard limit drops from 24 to 12 with it
        sim.run_until(change + secs(10.0));
        let after = &sim.trace[before..];
        let last_overload = after.iter().rposition(|e| e.overloaded);
        assert!(
            last_overload.is_some_and(|n| n < 100),
            "seed {seed}: last overload at task {last_overload:?} after the change"
        );
        let (lo, hi) = band(&sim, change + secs(1.0));
        assert!(lo >= 8 && hi <= 10, "seed {seed}: [{lo}, {hi}]");
    }
}

#[test]
fn the_limit_follows_a_halved_then_doubled_knee_within_a_second() {
    for seed in 1..=3 {
        let mut sim = simulate(8, seed, 10.0);
        sim.service = Service::relay(4);
        let halved = sim.now();
        sim.run_until(halved + secs(10.0));
        let (lo, hi) = band(&sim, halved + secs(1.0));
        assert!(lo >= 4 && hi <= 7, "seed {seed}: K = 4: [{lo}, {hi}]");
        sim.service = Service::relay(8);
        let doubled = sim.now();
        sim.run_until(doubled + secs(10.0));
        let (lo, hi) = band(&sim, doubled + secs(1.0));
        assert!(
            lo >= 8 && hi <= 10,
            "seed {seed}: K = 8 again: [{lo}, {hi}]"
        );
    }
}

#[test]
fn a_limit_started_far_beyond_the_hard_limit_backs_off_round_by_round() {
    for seed in 1..=3 {
        let options = AdaptiveConcurrency::new().initial_limit(100);
        let limit = AdaptiveLimit::new(params(options));
        let mut sim = Simulation::new(limit, Service::relay(8), seed);
        sim.run_until(secs(10.0));
        // From 100 to at most 12 takes 10 backoffs of 0.8, one per round of refusals (20 ms
        // each, one backoff per round): the overloads end within half a second, after fewer
        // than the 100 + 88 + 70 + ... tasks those rounds can hold.
        let overloaded: Vec<_> = sim.trace.iter().filter(|e| e.overloaded).collect();
        let last = overloaded.last().expect("it started overloaded").at;
        assert!(last < secs(0.5), "seed {seed}: last overload at {last:?}");
        assert!(overloaded.len() < 500, "seed {seed}: {}", overloaded.len());
        assert!(sim.limit.figures().backoffs <= 12);
        // Its baseline was first learnt above the knee (no window ever ran at 20 ms), so it
        // settles below the hard limit but may stay above the knee: see the README.
        let (lo, hi) = band(&sim, secs(2.0));
        assert!(lo >= 8 && hi < 12, "seed {seed}: [{lo}, {hi}]");
    }
}

#[test]
fn the_ceiling_and_the_floor_hold() {
    let options = AdaptiveConcurrency::new().ceiling(6);
    let mut sim = Simulation::new(AdaptiveLimit::new(params(options)), Service::relay(64), 1);
    sim.run_until(secs(5.0));
    assert!(sim.trace.iter().all(|e| e.limit <= 6));
    assert_eq!(sim.limit.whole(), 6, "reached the ceiling");
    assert_eq!(sim.limit.figures().limit, 6.0);

    // A service that refuses everything: the limit goes down to the floor and no further.
    let options = AdaptiveConcurrency::new().floor(3).initial_limit(50);
    let refusing = Service {
        hard: 0,
        ..Service::relay(8)
    };
    let mut sim = Simulation::new(AdaptiveLimit::new(params(options)), refusing, 1);
    sim.run_until(secs(5.0));
    assert!(sim.trace.iter().all(|e| e.limit >= 3));
    assert_eq!(sim.limit.whole(), 3, "reached the floor");
    assert!(sim.limit.figures().backoffs > 10);
}

#[test]
fn a_client_using_fewer_than_half_the_slots_leaves_the_limit_alone() {
    let options = AdaptiveConcurrency::new().initial_limit(20);
    let mut sim = Simulation::new(AdaptiveLimit::new(params(options)), Service::relay(2), 1);
    sim.demand = 3;
    sim.run_until(secs(10.0));
    let figures = sim.limit.figures();
    assert!(figures.windows > 50);
    assert_eq!(figures.decision, LimitDecision::AppLimited);
    assert_eq!(figures.limit, 20.0);
}

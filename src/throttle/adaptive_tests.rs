//! The gate with an adaptive limit: a lowered limit lets the tasks in flight
//! finish and admits none until fewer are in flight; a raised one starts held tasks and wakes
//! waiting callers; the status shows the limit. Samples carry instants the tests choose.

use std::time::{Duration, Instant};

use crate::adaptive::{AdaptiveConcurrency, LimitDecision, Outcome};
use crate::rejected::RejectKind;
use crate::task::{Job, PlainJob};

use super::{Entry, Throttle};

fn job() -> Job {
    PlainJob::job(|| {}, ())
}

fn never_shut() -> bool {
    false
}

fn gate(options: AdaptiveConcurrency, queue: usize) -> Throttle {
    Throttle::adaptive(options.params().expect("valid options"), None, queue)
}

fn starts(gate: &Throttle) -> bool {
    matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Start(_)
    )
}

#[test]
fn a_lowered_limit_lets_the_tasks_in_flight_finish_and_admits_none_until_below_it() {
    let gate = gate(AdaptiveConcurrency::new().initial_limit(4).backoff(0.5), 0);
    for _ in 0..4 {
        assert!(starts(&gate));
    }
    let now = Instant::now();
    // One task reports an overload: 4 × 0.5 = 2, with 3 still in flight.
    let pump = gate.release_sampled(now, now, Outcome::Overloaded);
    assert!(pump.start.is_empty());
    let step = pump.step.expect("the backoff is a step to log");
    assert_eq!(
        (step.decision, step.before, step.after),
        (LimitDecision::Backoff, 4, 2)
    );
    let status = gate.status();
    assert_eq!((status.limit, status.in_flight), (Some(2), 3));
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Refused(_, RejectKind::Throttled)
    ));
    assert_eq!(gate.free_slots(usize::MAX), 0);
    // The tasks in flight end (ignored: no further step); a slot frees only below 2.
    assert!(
        gate.release_sampled(now, now, Outcome::Ignored)
            .step
            .is_none()
    );
    assert!(!starts(&gate), "2 in flight, limit 2");
    gate.release_sampled(now, now, Outcome::Ignored);
    assert_eq!(gate.free_slots(usize::MAX), 1);
    assert!(starts(&gate));
    assert_eq!(gate.status().in_flight, 2);
}

/// Options whose first judged window (one task of 10 ms) raises the limit from 1 to 5:
/// target = 1 × 1 + 4, followed at once.
fn jumps_to_five() -> AdaptiveConcurrency {
    AdaptiveConcurrency::new()
        .initial_limit(1)
        .window(Duration::from_millis(1))
        .window_tasks(1)
        .smoothing(1.0)
        .queue_allowance(4.0)
}

#[test]
fn a_raised_limit_starts_held_tasks_in_order_and_wakes_a_waiting_caller() {
    let gate = std::sync::Arc::new(gate(jumps_to_five(), 3));
    assert!(starts(&gate));
    for _ in 0..3 {
        assert!(matches!(
            gate.enter(job(), false, None, &never_shut).0,
            Entry::Held
        ));
    }
    // The queue is full: a caller that may wait waits.
    let waiter = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            matches!(
                gate.enter(job(), true, None, &never_shut).0,
                Entry::Start(_)
            )
        })
    };
    while gate.waiters() == 0 {
        std::thread::yield_now();
    }
    let started = Instant::now();
    let pump = gate.release_sampled(
        started,
        started + Duration::from_millis(10),
        Outcome::Completed,
    );
    let step = pump.step.expect("the window was judged");
    assert_eq!(
        (step.decision, step.before, step.after),
        (LimitDecision::Increase, 1, 5)
    );
    assert_eq!(pump.start.len(), 3, "the held tasks start at once");
    assert!(
        waiter.join().unwrap(),
        "the waiting caller took the fifth slot"
    );
    let status = gate.status();
    assert_eq!(
        (status.limit, status.in_flight, status.held),
        (Some(5), 4, 0)
    );
}

#[test]
fn the_status_shows_the_adaptive_limit_and_a_fixed_gate_has_none() {
    let adaptive = gate(jumps_to_five(), 0);
    let status = adaptive.status();
    assert_eq!(status.limit, Some(1));
    let limit = status.adaptive.expect("an adaptive gate");
    assert_eq!((limit.limit, limit.floor, limit.ceiling), (1, 1, 200));
    assert_eq!(limit.decision, LimitDecision::Initial);
    assert!(starts(&adaptive));
    let now = Instant::now();
    adaptive.release_sampled(now, now + Duration::from_millis(10), Outcome::Completed);
    let limit = adaptive.status().adaptive.unwrap();
    assert_eq!((limit.limit, limit.windows, limit.increases), (5, 1, 1));
    assert_eq!(limit.latency, Some(Duration::from_millis(10)));
    assert_eq!(limit.baseline, Some(Duration::from_millis(10)));
    assert_eq!(limit.gradient, 1.0);
    assert!(adaptive.is_adaptive());

    let fixed = Throttle::new(Some(3), None, 0);
    assert!(!fixed.is_adaptive());
    assert_eq!(fixed.status().adaptive, None);
}

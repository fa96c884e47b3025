//! The gate's decisions, one per test: slots, the own queue, waiting callers, the rate.

use super::*;
use crate::task::PlainJob;

fn job() -> Job {
    PlainJob::job(|| {}, ())
}

fn never_shut() -> bool {
    false
}

#[test]
fn the_limit_holds_then_refuses_callers_that_may_not_wait() {
    let gate = Throttle::new(Some(2), None, 1);
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Start(_)
    ));
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Start(_)
    ));
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Held
    ));
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Refused(_, RejectKind::Throttled)
    ));
    let status = gate.status();
    assert_eq!((status.in_flight, status.held, status.throttled), (2, 1, 1));
    // A freed slot goes to the held task, not back to the pool of free slots.
    let pump = gate.release();
    assert_eq!(pump.start.len(), 1);
    assert_eq!((gate.status().in_flight, gate.status().held), (2, 0));
    assert!(gate.release().start.is_empty());
    assert!(gate.release().start.is_empty());
    assert_eq!(gate.status().in_flight, 0);
}

#[test]
fn a_waiting_caller_times_out_as_throttled() {
    let gate = Throttle::new(Some(1), None, 0);
    assert!(matches!(
        gate.enter(job(), true, None, &never_shut).0,
        Entry::Start(_)
    ));
    let deadline = Instant::now() + Duration::from_millis(20);
    assert!(matches!(
        gate.enter(job(), true, Some(deadline), &never_shut).0,
        Entry::Refused(_, RejectKind::Throttled)
    ));
    assert!(Instant::now() >= deadline);
}

#[test]
fn a_waiting_caller_sees_a_shutdown() {
    let gate = Throttle::new(Some(1), None, 0);
    assert!(matches!(
        gate.enter(job(), true, None, &never_shut).0,
        Entry::Start(_)
    ));
    assert!(matches!(
        gate.enter(job(), true, None, &|| true).0,
        Entry::Refused(_, RejectKind::Shutdown)
    ));
}

#[test]
fn a_waiting_caller_gets_the_freed_slot() {
    let gate = std::sync::Arc::new(Throttle::new(Some(1), None, 0));
    assert!(matches!(
        gate.enter(job(), true, None, &never_shut).0,
        Entry::Start(_)
    ));
    let waiter = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            matches!(
                gate.enter(job(), true, None, &never_shut).0,
                Entry::Start(_)
            )
        })
    };
    while gate.state.lock().waiters == 0 {
        std::thread::yield_now();
    }
    assert!(gate.release().start.is_empty());
    assert!(waiter.join().unwrap());
    assert_eq!(gate.status().in_flight, 1);
}

#[test]
fn a_rate_lets_a_burst_through_then_holds_and_arms_the_timer() {
    let gate = Throttle::new(None, Some((2, Duration::from_secs(3600))), 4);
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Start(_)
    ));
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Start(_)
    ));
    let (entry, pump) = gate.enter(job(), false, None, &never_shut);
    assert!(matches!(entry, Entry::Held));
    let at = pump.arm_at.expect("the timer is armed for the next token");
    assert!(at > Instant::now() + Duration::from_secs(1700));
    // Only one timer entry at a time.
    let (_, pump) = gate.enter(job(), false, None, &never_shut);
    assert!(pump.arm_at.is_none());
    // Slots freeing do not start tasks the rate holds.
    assert!(gate.release().start.is_empty());
    assert_eq!(gate.status().held, 2);
}

#[test]
fn a_fast_rate_releases_held_tasks_when_the_timer_fires() {
    let gate = Throttle::new(None, Some((1, Duration::from_millis(10))), 4);
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Start(_)
    ));
    let (entry, pump) = gate.enter(job(), false, None, &never_shut);
    assert!(matches!(entry, Entry::Held));
    let at = pump.arm_at.unwrap();
    while Instant::now() < at {
        std::thread::yield_now();
    }
    let pump = gate.timer_fired();
    assert_eq!(pump.start.len(), 1);
    assert!(pump.arm_at.is_none(), "nothing left to hold");
}

#[test]
fn drain_grants_a_slot_to_each_held_task() {
    let gate = Throttle::new(Some(1), None, 3);
    assert!(matches!(
        gate.enter(job(), false, None, &never_shut).0,
        Entry::Start(_)
    ));
    for _ in 0..3 {
        assert!(matches!(
            gate.enter(job(), false, None, &never_shut).0,
            Entry::Held
        ));
    }
    let drained = gate.drain();
    assert_eq!(drained.len(), 3);
    assert_eq!(gate.status().in_flight, 4);
    for _ in 0..4 {
        assert!(gate.release().start.is_empty());
    }
    assert_eq!(gate.status().in_flight, 0);
}

#[test]
fn rate_rejects_nonsense() {
    assert!(Rate::new(0, Duration::from_secs(1)).is_none());
    assert!(Rate::new(5, Duration::ZERO).is_none());
    let rate = Rate::new(5, Duration::from_secs(1)).unwrap();
    assert_eq!(rate.interval, Duration::from_millis(200));
    assert_eq!(rate.tolerance, Duration::from_millis(800));
}

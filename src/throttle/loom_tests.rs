//! Loom models of the gate's wake-up protocol: no caller waits on a free slot, no held task
//! is stranded.

use super::*;
use crate::loom::{Arc, thread};
use crate::task::PlainJob;

fn job() -> Job {
    PlainJob::job(|| {}, ())
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    crate::loom::model(3, f);
}

/// A caller waiting for a slot is woken by the release that frees it (waits are untimed
/// under loom, so a lost notification is a deadlock the model reports).
#[test]
fn loom_a_waiting_caller_gets_the_freed_slot() {
    model(|| {
        let gate = Arc::new(Throttle::new(Some(1), None, 0));
        assert!(matches!(
            gate.enter(job(), true, None, &|| false).0,
            Entry::Start(_)
        ));
        let waiter = {
            let gate = gate.clone();
            thread::spawn(move || {
                matches!(gate.enter(job(), true, None, &|| false).0, Entry::Start(_))
            })
        };
        assert!(gate.release().start.is_empty());
        assert!(waiter.join().unwrap());
        assert_eq!(gate.status().in_flight, 1);
    });
}

/// A task entering while the last slot is released either takes the slot or is held and
/// handed the slot by the release: never stranded in the queue with a free slot.
#[test]
fn loom_a_release_racing_an_entry_never_strands_a_held_task() {
    model(|| {
        let gate = Arc::new(Throttle::new(Some(1), None, 1));
        assert!(matches!(
            gate.enter(job(), false, None, &|| false).0,
            Entry::Start(_)
        ));
        let releaser = {
            let gate = gate.clone();
            thread::spawn(move || gate.release().start.len())
        };
        let started_at_once =
            matches!(gate.enter(job(), false, None, &|| false).0, Entry::Start(_));
        let started_by_release = releaser.join().unwrap();
        assert_eq!(usize::from(started_at_once) + started_by_release, 1);
        let status = gate.status();
        assert_eq!((status.in_flight, status.held), (1, 0));
    });
}

/// An adaptive gate at its limit of 1: a caller waiting for a slot is woken by the release
/// whose sample raises the limit (to 5), even while another task still holds the only slot
/// the old limit had. The raise and the notification happen under the lock the waiter checks
/// under.
#[test]
fn loom_a_raised_adaptive_limit_wakes_a_waiting_caller() {
    use crate::adaptive::{AdaptiveConcurrency, Outcome};
    use std::time::{Duration, Instant};

    model(|| {
        let params = AdaptiveConcurrency::new()
            .initial_limit(1)
            .window(Duration::from_millis(1))
            .window_tasks(1)
            .smoothing(1.0)
            .queue_allowance(4.0)
            .params()
            .unwrap();
        let gate = Arc::new(Throttle::adaptive(params, None, 0));
        assert!(matches!(
            gate.enter(job(), true, None, &|| false).0,
            Entry::Start(_)
        ));
        let waiter = {
            let gate = gate.clone();
            thread::spawn(move || {
                matches!(gate.enter(job(), true, None, &|| false).0, Entry::Start(_))
            })
        };
        // A lent slot (as for an inline run): the gate counts 2 in flight, the limit 1.
        gate.lend_slot();
        let started = Instant::now();
        let pump = gate.release_sampled(
            started,
            started + Duration::from_millis(10),
            Outcome::Completed,
        );
        assert_eq!(pump.step.map(|step| step.after), Some(5));
        assert!(waiter.join().unwrap());
        assert_eq!(gate.status().in_flight, 2);
    });
}

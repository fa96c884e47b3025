//! What the publisher keeps stays bounded: tallies by scheduler name, weak lists pruned.

use std::sync::Arc;
use std::time::Duration;

use super::*;

fn key(name: &str) -> SchedulerKey {
    SchedulerKey {
        scheduler: name.to_owned(),
        class: TaskClass::Io,
        pool: "uber".to_owned(),
    }
}

/// A gated view as the publisher sees it, with fixed figures (an adaptive one with `gradient`).
struct FakeGate {
    name: &'static str,
    in_flight: usize,
    gradient: Option<f64>,
}

impl Gated for FakeGate {
    fn key(&self) -> SchedulerKey {
        key(self.name)
    }

    fn gate_status(&self) -> Option<ThrottleStatus> {
        Some(ThrottleStatus {
            limit: Some(4),
            rate: None,
            queue_size: 8,
            in_flight: self.in_flight,
            held: 1,
            peak_in_flight: self.in_flight,
            throttled: 0,
            adaptive: self.gradient.map(|gradient| {
                let options = crate::AdaptiveConcurrency::new().initial_limit(4);
                let limit = crate::adaptive::AdaptiveLimit::new(options.params().unwrap());
                let mut status = limit.status();
                status.gradient = gradient;
                status
            }),
        })
    }
}

#[test]
fn views_of_one_name_share_one_tally_however_many_are_made() {
    let observed = Observed::new("svc".to_owned());
    for _ in 0..1_000 {
        let view_tally = RefusalTally::new(observed.clone());
        view_tally.count(RejectKind::Shutdown, || key("svc.io"));
    }
    RefusalTally::new(observed.clone()).count(RejectKind::Busy, || key("svc.io"));
    let refusals = observed.refusals.lock();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[&key("svc.io")].snapshot(), [1, 0, 1_000]);
}

#[test]
fn a_view_looks_its_tally_up_once() {
    let observed = Observed::new("svc".to_owned());
    let view_tally = RefusalTally::new(observed.clone());
    let mut lookups = 0;
    for _ in 0..10 {
        view_tally.count(RejectKind::Throttled, || {
            lookups += 1;
            key("svc.smtp")
        });
    }
    assert_eq!(lookups, 1);
    assert_eq!(
        observed.refusals.lock()[&key("svc.smtp")].snapshot(),
        [0, 10, 0]
    );
}

#[test]
fn dropped_gates_are_pruned_as_new_ones_come() {
    let observed = Observed::new("svc".to_owned());
    for _ in 0..1_000 {
        let gate = Arc::new(FakeGate {
            name: "svc.smtp",
            in_flight: 1,
            gradient: None,
        });
        observed.watch_gate(&gate);
    }
    assert!(observed.gates.lock().len() <= 1, "dead gates were kept");
    assert!(observed.gate_figures().is_empty());
    assert!(observed.gates.lock().is_empty(), "a publish prunes too");
}

#[test]
fn gates_sharing_a_name_are_added_up() {
    let observed = Observed::new("svc".to_owned());
    let one = Arc::new(FakeGate {
        name: "svc.smtp",
        in_flight: 2,
        gradient: None,
    });
    let two = Arc::new(FakeGate {
        name: "svc.smtp",
        in_flight: 3,
        gradient: None,
    });
    let other = Arc::new(FakeGate {
        name: "svc.relay",
        in_flight: 1,
        gradient: None,
    });
    observed.watch_gate(&one);
    observed.watch_gate(&two);
    observed.watch_gate(&other);
    let figures = observed.gate_figures();
    assert_eq!(figures.len(), 2);
    let smtp = figures[&key("svc.smtp")];
    assert_eq!((smtp.limit, smtp.in_flight, smtp.held), (Some(8), 5, 2));
    let relay = figures[&key("svc.relay")];
    assert_eq!((relay.limit, relay.in_flight, relay.held), (Some(4), 1, 1));
}

#[test]
fn a_periodic_publish_stops_with_its_timer_and_holds_nothing_after() {
    let observed = Observed::new("svc".to_owned());
    let timer = Timer::new("observe-test.timer".to_owned());
    observed.publish_every(&timer, Duration::from_secs(3600));
    assert_eq!(timer.pending(), 1);
    assert_eq!(Arc::strong_count(&observed), 2, "the armed entry holds one");
    assert_eq!(timer.shutdown(), 0, "a publish is no task");
    assert_eq!(Arc::strong_count(&observed), 1);
}

#[test]
fn an_interval_beyond_an_instant_arms_nothing() {
    let observed = Observed::new("svc".to_owned());
    let timer = Timer::new("observe-never.timer".to_owned());
    observed.publish_every(&timer, Duration::MAX);
    assert_eq!(timer.pending(), 0);
    assert!(
        observed.periodic.load(Ordering::Acquire),
        "shutdown still publishes"
    );
}

#[test]
fn adaptive_gates_sharing_a_name_publish_their_mean_gradient() {
    let observed = Observed::new("svc".to_owned());
    let gates = [(Some(1.0), 2), (Some(0.5), 3), (None, 1)].map(|(gradient, in_flight)| {
        Arc::new(FakeGate {
            name: "svc.smtp",
            in_flight,
            gradient,
        })
    });
    for gate in &gates {
        observed.watch_gate(gate);
    }
    let smtp = observed.gate_figures()[&key("svc.smtp")];
    assert_eq!(smtp.gradient, Some(0.75));
    assert_eq!((smtp.limit, smtp.adaptive_views), (Some(12), 2));
    let fixed = Arc::new(FakeGate {
        name: "svc.relay",
        in_flight: 1,
        gradient: None,
    });
    observed.watch_gate(&fixed);
    assert_eq!(observed.gate_figures()[&key("svc.relay")].gradient, None);
}

//! The consumer against a real beanstalkd started by each test: outcomes and what the queue
//! sees of them, back-off, dead letters, lease extension, back pressure, stop and drain,
//! flows, reconnection.

mod queue_common;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use queue_common::{Beanstalkd, jobs_in, tube, tube_stats, wait_drained, wait_until};
use uberpool::queue::beanstalkd::{BeanstalkdBackend, JobState, Producer, PutOptions};
use uberpool::queue::{Consumer, ConsumerBuilder, Delivery, Outcome};
use uberpool::{Flow, Scheduler, SchedulerConfig, SchedulerService, TaskClass};

/// A gate that blocked handlers wait on until the test opens it.
#[derive(Clone, Default)]
struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    fn wait(&self) {
        let (lock, signal) = &*self.0;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = signal.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
}

/// Handler calls per job body, with the attempt number of each call.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, Vec<u32>>>>);

impl Calls {
    fn record(&self, delivery: &Delivery) {
        let body = delivery.text().unwrap_or("?").to_owned();
        self.0
            .lock()
            .unwrap()
            .entry(body)
            .or_default()
            .push(delivery.attempt());
    }

    fn get(&self) -> HashMap<String, Vec<u32>> {
        self.0.lock().unwrap().clone()
    }
}

fn put_jobs(server: &Beanstalkd, tube: &str, n: usize, options: PutOptions) {
    let mut producer = Producer::connect(server.addr(), tube).unwrap();
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| format!("job-{i}").into_bytes()).collect();
    for result in producer.put_batch(bodies.iter().map(|b| (&b[..], options))) {
        result.unwrap();
    }
}

fn consumer(server: &Beanstalkd, tube: &str) -> ConsumerBuilder<BeanstalkdBackend> {
    Consumer::builder(BeanstalkdBackend::connect(server.addr(), tube).unwrap()).name("test")
}

fn service() -> SchedulerService {
    SchedulerService::builder()
        .name("queue-test")
        .build()
        .unwrap()
}

/// A throttled IO view of `limit` slots and no queue.
fn gate(service: &SchedulerService, limit: usize) -> Scheduler {
    service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("gate")
                .max_concurrent_tasks(limit),
        )
        .unwrap()
}

#[test]
fn done_jobs_are_deleted_and_each_runs_once() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("done");
    put_jobs(&server, &tube, 50, PutOptions::new());
    let service = service();
    let calls = Calls::default();
    let recorder = calls.clone();
    let consumer = consumer(&server, &tube)
        .start(&service.io(), move |delivery| {
            recorder.record(delivery);
            Outcome::Done
        })
        .unwrap();
    wait_until("50 deletes", || consumer.metrics().deleted == 50);
    wait_drained(&mut server.client(), &tube);
    let report = consumer.stop();
    let calls = calls.get();
    assert_eq!(calls.len(), 50);
    assert!(calls.values().all(|attempts| attempts == &[1]), "{calls:?}");
    let m = report.metrics;
    assert_eq!(
        (m.reserved, m.deleted, m.released, m.buried, m.in_flight),
        (50, 50, 0, 0, 0)
    );
}

#[test]
fn a_retry_is_released_with_the_back_off_and_delivered_again() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("retry");
    let mut client = server.client();
    client.use_tube(&tube).unwrap();
    let explicit = client
        .put(b"explicit", PutOptions::new().priority(3))
        .unwrap();
    let backed_off = client
        .put(b"backed-off", PutOptions::new().priority(4))
        .unwrap();
    let service = service();
    let calls = Calls::default();
    let recorder = calls.clone();
    let consumer = consumer(&server, &tube)
        .retry_backoff(Duration::from_secs(2), Duration::from_secs(2))
        .start(&service.io(), move |delivery| {
            recorder.record(delivery);
            match (delivery.attempt(), delivery.text()) {
                (1, Some("explicit")) => Outcome::retry_after(Duration::from_secs(3600), "later"),
                (1, _) => Outcome::retry("busy"),
                _ => Outcome::Done,
            }
        })
        .unwrap();
    wait_until("the explicit retry to be delayed", || {
        client.stats_job(explicit).unwrap().state == JobState::Delayed
    });
    let stats = client.stats_job(explicit).unwrap();
    assert_eq!(
        (stats.delay, stats.priority, stats.releases),
        (Duration::from_secs(3600), 3, 1)
    );
    // The consumer's own back-off: between half and all of 2 s, in whole seconds.
    let stats = client.stats_job(backed_off).unwrap();
    if stats.state == JobState::Delayed {
        assert!([1, 2].contains(&stats.delay.as_secs()), "{stats:?}");
        assert_eq!(stats.priority, 4);
    }
    client.kick_job(explicit).unwrap();
    wait_until("both jobs done", || consumer.metrics().deleted == 2);
    let report = consumer.stop();
    assert_eq!(calls.get()["explicit"], [1, 2]);
    assert_eq!(calls.get()["backed-off"], [1, 2]);
    assert_eq!((report.metrics.released, report.metrics.failures), (2, 2));
}

#[test]
fn a_permanent_failure_is_buried_at_once() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("fail");
    put_jobs(&server, &tube, 3, PutOptions::new());
    let service = service();
    let consumer = consumer(&server, &tube)
        .start(&service.io(), |_| Outcome::fail("malformed"))
        .unwrap();
    wait_until("3 burials", || consumer.metrics().buried == 3);
    let mut client = server.client();
    let stats = tube_stats(&mut client, &tube).unwrap();
    assert_eq!((stats.buried, stats.ready, stats.reserved), (3, 0, 0));
    assert_eq!(consumer.stop().metrics.deleted, 0);
}

#[test]
fn a_job_is_buried_after_its_last_attempt_and_a_panic_counts_as_one() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("attempts");
    let mut client = server.client();
    client.use_tube(&tube).unwrap();
    let doomed = client.put(b"doomed", PutOptions::new()).unwrap();
    client.put(b"panics-once", PutOptions::new()).unwrap();
    let service = service();
    let calls = Calls::default();
    let recorder = calls.clone();
    let consumer = consumer(&server, &tube)
        .max_attempts(3)
        .retry_backoff(Duration::ZERO, Duration::ZERO)
        .start(&service.io(), move |delivery| {
            recorder.record(delivery);
            match delivery.text() {
                Some("panics-once") if delivery.attempt() == 1 => panic!("a bug in the handler"),
                Some("panics-once") => Outcome::Done,
                _ => Outcome::retry("still failing"),
            }
        })
        .unwrap();
    wait_until("the burial and the delete", || {
        let m = consumer.metrics();
        m.buried == 1 && m.deleted == 1
    });
    assert_eq!(calls.get()["doomed"], [1, 2, 3]);
    assert_eq!(calls.get()["panics-once"], [1, 2]);
    let stats = client.stats_job(doomed).unwrap();
    assert_eq!(
        (stats.state, stats.reserves, stats.buries),
        (JobState::Buried, 3, 1)
    );
    assert_eq!(consumer.stop().metrics.failures, 4); // three of the doomed job, one panic
}

#[test]
fn a_job_delivered_too_often_without_an_outcome_is_buried_unrun() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("crashy");
    let mut client = server.client();
    client.use_tube(&tube).unwrap();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    let id = client.put(b"poison", PutOptions::new()).unwrap();
    // Two deliveries that ended without an outcome (as if their workers died).
    for _ in 0..2 {
        let job = client.reserve_with_timeout(Duration::from_secs(1)).unwrap();
        client.release(job.id, 1024, Duration::ZERO).unwrap();
    }
    let service = service();
    let calls = Calls::default();
    let recorder = calls.clone();
    let consumer = consumer(&server, &tube)
        .max_attempts(2)
        .start(&service.io(), move |delivery| {
            recorder.record(delivery);
            Outcome::Done
        })
        .unwrap();
    wait_until("the burial", || consumer.metrics().buried == 1);
    assert!(calls.get().is_empty());
    assert_eq!(client.stats_job(id).unwrap().state, JobState::Buried);
    consumer.stop();
}

#[test]
fn a_job_running_past_half_its_ttr_has_its_lease_extended() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("touch");
    let mut client = server.client();
    client.use_tube(&tube).unwrap();
    let id = client
        .put(b"long", PutOptions::new().ttr(Duration::from_secs(2)))
        .unwrap();
    let service = service();
    let latch = Latch::default();
    let gate_open = latch.clone();
    let consumer = consumer(&server, &tube)
        .start(&service.io(), move |_| {
            gate_open.wait();
            Outcome::Done
        })
        .unwrap();
    // Three extensions take the job past 1.5 times its TTR; it must still be this reservation.
    wait_until("three lease extensions", || consumer.metrics().touched >= 3);
    let stats = client.stats_job(id).unwrap();
    assert_eq!(
        (stats.state, stats.reserves, stats.timeouts),
        (JobState::Reserved, 1, 0)
    );
    latch.open();
    wait_until("the delete", || consumer.metrics().deleted == 1);
    consumer.stop();
}

#[test]
fn a_consumer_on_a_full_scheduler_holds_no_more_than_its_prefetch() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("pressure");
    let service = service();
    let gate = gate(&service, 2);
    let latch = Latch::default();
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let latch = latch.clone();
            gate.submit(move || latch.wait()).unwrap()
        })
        .collect();
    wait_until("the gate to fill", || gate.free_slots() == 0);
    put_jobs(&server, &tube, 20, PutOptions::new());
    let consumer = consumer(&server, &tube)
        .prefetch(3)
        .start(&gate, |_| Outcome::Done)
        .unwrap();
    wait_until("the prefetch to fill", || {
        let m = consumer.metrics();
        m.prefetched == 3 && m.reserve_waits >= 1
    });
    let mut client = server.client();
    for _ in 0..50 {
        let reserved = tube_stats(&mut client, &tube).unwrap().reserved;
        assert!(
            reserved <= 3,
            "{reserved} jobs reserved by a consumer with nowhere to run them"
        );
        assert!(consumer.metrics().in_flight <= 3);
    }
    assert_eq!(consumer.metrics().reserved, 3);
    latch.open();
    for blocker in blockers {
        blocker.join().unwrap();
    }
    wait_until("all 20 done", || consumer.metrics().deleted == 20);
    wait_drained(&mut client, &tube);
    consumer.stop();
}

#[test]
fn stop_returns_prefetched_jobs_and_lets_running_ones_finish() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("drain");
    put_jobs(&server, &tube, 10, PutOptions::new());
    let service = service();
    let gate = gate(&service, 2);
    let latch = Latch::default();
    let gate_open = latch.clone();
    let consumer = consumer(&server, &tube)
        .prefetch(2)
        .start(&gate, move |_| {
            gate_open.wait();
            Outcome::Done
        })
        .unwrap();
    wait_until("2 running and 2 prefetched", || {
        let m = consumer.metrics();
        m.running == 2 && m.prefetched == 2
    });
    consumer.shutdown();
    wait_until("the prefetched jobs to go back", || {
        consumer.metrics().released == 2
    });
    let mut client = server.client();
    let stats = tube_stats(&mut client, &tube).unwrap();
    assert_eq!((stats.ready, stats.reserved), (8, 2));
    latch.open();
    let report = consumer.stop();
    assert_eq!(
        (report.finished, report.returned, report.abandoned),
        (2, 2, 0)
    );
    assert_eq!(report.metrics.deleted, 2);
    let stats = tube_stats(&mut client, &tube).unwrap();
    assert_eq!((stats.ready, stats.reserved), (8, 0));
}

#[test]
fn jobs_still_running_after_the_grace_period_go_back_to_the_queue() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("grace");
    put_jobs(&server, &tube, 3, PutOptions::new());
    let service = service();
    let gate = gate(&service, 2);
    let latch = Latch::default();
    let gate_open = latch.clone();
    let consumer = consumer(&server, &tube)
        .prefetch(0)
        .start(&gate, move |_| {
            gate_open.wait();
            Outcome::Done
        })
        .unwrap();
    wait_until("2 running", || consumer.metrics().running == 2);
    let report = consumer.stop_within(Duration::from_millis(100));
    assert_eq!((report.abandoned, report.finished), (2, 0));
    let mut client = server.client();
    assert_eq!(jobs_in(&mut client, &tube), 3);
    let stats = tube_stats(&mut client, &tube).unwrap();
    assert_eq!((stats.ready, stats.reserved), (3, 0));
    latch.open();
}

#[test]
fn a_flow_can_be_the_target() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("flow");
    put_jobs(&server, &tube, 20, PutOptions::new());
    let service = service();
    let calls = Calls::default();
    let recorder = calls.clone();
    let flow = Flow::builder(&service)
        .name("handle")
        .io(|delivery: Delivery| delivery)
        .light(move |delivery: Delivery| {
            recorder.record(&delivery);
            Outcome::Done
        })
        .max_concurrency(4)
        .build();
    let consumer = consumer(&server, &tube).start_flow(&flow).unwrap();
    wait_until("20 deletes", || consumer.metrics().deleted == 20);
    assert_eq!(calls.get().len(), 20);
    consumer.stop();
}

#[test]
fn the_consumer_reconnects_after_the_server_restarts() {
    let Some(mut server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("reconnect");
    let service = service();
    let consumer = consumer(&server, &tube)
        .start(&service.io(), |_| Outcome::Done)
        .unwrap();
    wait_until("the consumer to wait on the empty tube", || {
        consumer.metrics().empty_waits >= 1
    });
    server.restart();
    put_jobs(&server, &tube, 5, PutOptions::new());
    wait_until("5 deletes after the restart", || {
        consumer.metrics().deleted == 5
    });
    assert!(consumer.metrics().reconnects >= 1);
    consumer.stop();
}

#[test]
fn a_target_that_shuts_down_stops_the_consumer_and_leaves_the_jobs_ready() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("closed");
    put_jobs(&server, &tube, 5, PutOptions::new());
    let service = service();
    let view = service.io();
    view.shutdown();
    let consumer = consumer(&server, &tube)
        .prefetch(2)
        .start(&view, |_| Outcome::Done)
        .unwrap();
    wait_until("the consumer to end", || consumer.is_finished());
    let report = consumer.stop();
    assert_eq!(report.metrics.deleted, 0);
    let mut client = server.client();
    let stats = tube_stats(&mut client, &tube).unwrap();
    assert_eq!((stats.ready, stats.reserved), (5, 0));
}

#[test]
fn a_grace_period_no_clock_can_honour_is_refused_up_front() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let service = service();
    let refused = consumer(&server, &tube("absurd"))
        .grace(Duration::MAX)
        .start(&service.io(), |_| Outcome::Done)
        .unwrap_err();
    assert!(
        matches!(
            refused,
            uberpool::queue::ConsumerError::Setting {
                setting: "grace",
                ..
            }
        ),
        "{refused}"
    );
}

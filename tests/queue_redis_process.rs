//! Processes dying, on a three-master Redis Cluster: a worker process killed with SIGKILL while
//! it holds entries (they are claimed after the lease and completed, each effect once at the
//! sink), and a cluster node (`appendonly yes`, `appendfsync always`) killed with SIGKILL and
//! restarted from its append-only file (no acknowledged put lost).
//!
//! The worker processes are copies of this test binary started with `UBERPOOL_QUEUE_TEST_ROLE`
//! set, which is why this file has its own `main` (`harness = false`). Run one test by giving
//! part of its name as an argument.

mod queue_redis_common;
#[allow(dead_code)] // the sink helpers the beanstalkd tests use too
#[path = "queue_common/sink.rs"]
mod sink;

use std::collections::HashSet;
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue_redis_common::{GUARD, RedisCluster, Workers, queue_name, wait_until};
use sink::Sink;
use uberpool::queue::redis::{Producer, RedisBackend, RedisQueue};
use uberpool::queue::{Backend, Consumer, Outcome, Settle, Settlement};
use uberpool::{SchedulerConfig, SchedulerService, TaskClass};

const ROLE: &str = "UBERPOOL_QUEUE_TEST_ROLE";

/// The lease of the workers' entries: short, so that a dead worker's entries come back soon.
const LEASE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    if std::env::var_os(ROLE).is_some() {
        return worker_main();
    }
    type Test = (&'static str, fn());
    let tests: [Test; 2] = [
        (
            "a_worker_killed_with_sigkill_while_holding_entries_loses_nothing_and_each_effect_happens_once",
            worker_killed_with_sigkill,
        ),
        (
            "acknowledged_puts_survive_a_sigkill_of_a_cluster_node_restarted_from_its_append_only_file",
            cluster_node_killed_and_restarted,
        ),
    ];
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let mut failed = 0;
    let mut ran = 0;
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        ran - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A worker process: consumes the queue until its stdin closes, delivering each entry's body
/// (its idempotency key) to the sink through a throttled IO view, then stops gracefully.
fn worker_main() -> ExitCode {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (urls, queue, sink_addr, worker) = (
        var("UBERPOOL_QUEUE_TEST_URLS"),
        var("UBERPOOL_QUEUE_TEST_QUEUE"),
        var("UBERPOOL_QUEUE_TEST_SINK"),
        var("UBERPOOL_QUEUE_TEST_WORKER"),
    );
    let service = SchedulerService::builder()
        .name(&worker)
        .build()
        .expect("service");
    let sink_view = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new().name("sink").max_concurrent_tasks(4),
        )
        .expect("throttled view");
    let backend = RedisBackend::builder(&urls, &RedisQueue::new(&queue))
        .consumer_name(&worker)
        .lease(LEASE)
        .connect()
        .expect("connect to redis");
    let name = worker.clone();
    let consumer = Consumer::builder(backend)
        .name(&worker)
        .prefetch(2)
        .reserve_wait(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .start(&sink_view, move |delivery| {
            let key = delivery.text().unwrap_or_default();
            match sink::deliver(&sink_addr, &name, key) {
                Ok(_) => Outcome::Done,
                Err(error) => Outcome::retry(error.to_string()),
            }
        })
        .expect("consumer");
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    let report = consumer.stop();
    eprintln!("worker {worker} stopped: {report:?}");
    ExitCode::SUCCESS
}

fn worker_killed_with_sigkill() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("sigkill")).shards(6);
    const JOBS: usize = 400;
    let keys: Vec<String> = (0..JOBS).map(|i| format!("key-{i}")).collect();
    let mut producer = Producer::connect(&cluster.urls(), &queue).unwrap();
    for result in producer.put_batch(keys.iter().map(|k| k.as_bytes())) {
        result.unwrap();
    }
    let sink = Sink::start();
    let mut workers = Workers::new(
        vec![
            (ROLE, "worker".to_owned()),
            ("UBERPOOL_QUEUE_TEST_URLS", cluster.urls()),
            ("UBERPOOL_QUEUE_TEST_QUEUE", queue.name().to_owned()),
            ("UBERPOOL_QUEUE_TEST_SINK", sink.addr()),
        ],
        GUARD,
    );
    for worker in ["w1", "w2", "w3"] {
        workers.spawn(worker);
    }
    wait_until("w1 to deliver some effects", || {
        sink.log().per_worker.get("w1").copied().unwrap_or(0) >= 10
    });
    // Hold w1's answers: its next effects are done at the sink, but it cannot acknowledge
    // those entries. Kill it in that state.
    sink.pause("w1");
    wait_until("w1 to hold an entry whose effect is done", || {
        sink.held("w1") >= 1
    });
    assert!(producer.stats().unwrap().pending() >= 1);
    workers.kill("w1");
    sink.resume_all();
    workers.spawn("w4"); // the supervisor's replacement
    wait_until("the queue to drain", || {
        producer.stats().unwrap().unfinished() == 0
    });
    workers.stop_all();

    let log = sink.log();
    let mut missing: Vec<&String> = keys
        .iter()
        .filter(|k| !log.accepted.contains_key(*k))
        .collect();
    missing.truncate(10);
    assert!(missing.is_empty(), "effects never delivered: {missing:?}");
    assert_eq!(log.accepted.len(), JOBS, "unexpected keys at the sink");
    assert!(
        log.duplicates >= 1,
        "w1's held entry was not delivered again"
    );
    let stats = producer.stats().unwrap();
    assert_eq!((stats.pending(), stats.dead()), (0, 0), "{stats:?}");
    println!(
        "    {JOBS} effects, {} duplicates dropped at the sink, per worker {:?}",
        log.duplicates, log.per_worker
    );
}

fn cluster_node_killed_and_restarted() {
    // `appendfsync always`: what an acknowledged write must survive a process kill needs (with
    // `everysec`, Redis may reply to writes it has not yet handed to the kernel).
    let Some(mut cluster) = RedisCluster::start_with(true) else {
        return;
    };
    let queue = RedisQueue::new(&queue_name("durable")).shards(6);
    let mut producer = Producer::connect(&cluster.urls(), &queue).unwrap();
    let victim = producer.node_of(0).unwrap().to_owned();
    // A producer adds one job at a time and records every acknowledged put, until a put fails
    // (the node it went to died under it).
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let putting = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let mut attempted = 0u64;
            loop {
                attempted += 1;
                let key = format!("put-{attempted}");
                match producer.put(key.as_bytes()) {
                    Ok(_) => acked.lock().unwrap().push(key),
                    Err(error) => return (attempted, error),
                }
            }
        })
    };
    wait_until("300 acknowledged puts", || {
        acked.lock().unwrap().len() >= 300
    });
    cluster.node_mut(&victim).kill(); // SIGKILL, mid-stream
    let (attempted, error) = putting.join().unwrap();
    assert!(error.is_transient(), "{error}");
    cluster.node_mut(&victim).restart();
    cluster.wait_ok();

    // Read every entry back (and acknowledge it), then check the acknowledged puts.
    let mut reader = RedisBackend::builder(&cluster.urls(), &queue)
        .consumer_name("reader")
        .connect()
        .unwrap();
    let mut checker = Producer::connect(&cluster.urls(), &queue).unwrap();
    let mut bodies = HashSet::new();
    // Until the queue says nothing is left: a read may come back empty while a node still
    // loads its file.
    wait_until("every entry to be read back", || {
        let exchange = reader.exchange(&[], 500, Duration::ZERO).unwrap();
        let acks: Vec<Settlement> = exchange
            .reserved
            .iter()
            .map(|r| Settlement {
                job: r.id.clone(),
                action: Settle::Ack,
            })
            .collect();
        for reserved in exchange.reserved {
            bodies.insert(String::from_utf8(reserved.body).unwrap());
        }
        reader.exchange(&acks, 0, Duration::ZERO).unwrap();
        checker.stats().unwrap().unfinished() == 0
    });
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<&String> = acked.iter().filter(|k| !bodies.contains(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged puts lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // At most the one put in flight at the kill is there without an acknowledgement.
    let extra = bodies.len() - acked.len();
    assert!(extra <= 1, "{extra} jobs nobody put");
    println!(
        "    {} acknowledged puts of {attempted} attempted all survived a SIGKILL of {victim}",
        acked.len()
    );
    // A consumer started now works the restarted cluster as before.
    let service = SchedulerService::builder().build().unwrap();
    let done = Arc::new(Mutex::new(0usize));
    let counted = done.clone();
    let consumer = Consumer::builder(RedisBackend::connect(&cluster.urls(), &queue).unwrap())
        .reserve_wait(Duration::from_millis(100))
        .start(&service.io(), move |_| {
            *counted.lock().unwrap() += 1;
            Outcome::Done
        })
        .unwrap();
    for result in checker.put_batch((0..60).map(|_| &b"after"[..])) {
        result.unwrap();
    }
    wait_until("the 60 new jobs to be done", || *done.lock().unwrap() == 60);
    consumer.stop();
    assert_eq!(checker.stats().unwrap().unfinished(), 0);
}

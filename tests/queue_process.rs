//! Processes dying: a worker process killed with SIGKILL while it holds jobs (every job still
//! completes, each effect once at the sink), and beanstalkd itself killed with SIGKILL and
//! restarted from its binlog (no acknowledged put or delete lost).
//!
//! The worker processes are copies of this test binary started with `UBERPOOL_QUEUE_TEST_ROLE`
//! set, which is why this file has its own `main` (`harness = false`). Run one test by giving
//! part of its name as an argument.

mod queue_common;

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue_common::sink::{self, Sink};
use queue_common::{Beanstalkd, GUARD, TempDir, Workers, jobs_in, tube, wait_drained, wait_until};
use uberpool::queue::beanstalkd::{
    Backoff, BeanstalkdBackend, Client, Error, Producer, PutOptions,
};
use uberpool::queue::{Consumer, Outcome};
use uberpool::{SchedulerConfig, SchedulerService, TaskClass};

const ROLE: &str = "UBERPOOL_QUEUE_TEST_ROLE";

fn main() -> ExitCode {
    if std::env::var_os(ROLE).is_some() {
        return worker_main();
    }
    type Test = (&'static str, fn());
    let tests: [Test; 2] = [
        (
            "a_worker_killed_with_sigkill_while_holding_jobs_loses_nothing_and_each_effect_happens_once",
            worker_killed_with_sigkill,
        ),
        (
            "acknowledged_puts_and_deletes_survive_a_sigkill_of_beanstalkd_with_a_binlog",
            beanstalkd_killed_and_restarted_from_its_binlog,
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

/// A worker process: consumes the tube until its stdin closes, delivering each job's body (its
/// idempotency key) to the sink through a throttled IO view, then stops gracefully.
fn worker_main() -> ExitCode {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (addr, tube, sink_addr, worker) = (
        var("UBERPOOL_QUEUE_TEST_ADDR"),
        var("UBERPOOL_QUEUE_TEST_TUBE"),
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
    let backend = BeanstalkdBackend::connect(addr, &tube).expect("connect to beanstalkd");
    let name = worker.clone();
    let consumer = Consumer::builder(backend)
        .name(&worker)
        .prefetch(2)
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(1))
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
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("sigkill");
    const JOBS: usize = 400;
    let keys: Vec<String> = (0..JOBS).map(|i| format!("key-{i}")).collect();
    let mut producer = Producer::connect(server.addr(), &tube).unwrap();
    for result in producer.put_batch(keys.iter().map(|k| (k.as_bytes(), PutOptions::new()))) {
        result.unwrap();
    }
    let sink = Sink::start();
    let mut workers = Workers::new(
        vec![
            (ROLE, "worker".to_owned()),
            ("UBERPOOL_QUEUE_TEST_ADDR", server.addr()),
            ("UBERPOOL_QUEUE_TEST_TUBE", tube.clone()),
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
    // those jobs. Kill it in that state.
    sink.pause("w1");
    wait_until("w1 to hold a job whose effect is done", || {
        sink.held("w1") >= 1
    });
    let mut client = server.client();
    assert!(
        queue_common::tube_stats(&mut client, &tube)
            .unwrap()
            .reserved
            >= 1
    );
    workers.kill("w1");
    sink.resume_all();
    workers.spawn("w4"); // the supervisor's replacement
    wait_drained(&mut client, &tube);
    workers.stop_all();

    let log = sink.log();
    let mut missing: Vec<&String> = keys
        .iter()
        .filter(|k| !log.accepted.contains_key(*k))
        .collect();
    missing.truncate(10);
    assert!(missing.is_empty(), "effects never delivered: {missing:?}");
    assert_eq!(log.accepted.len(), JOBS, "unexpected keys at the sink");
    assert!(log.duplicates >= 1, "w1's held job was not delivered again");
    println!(
        "    {JOBS} effects, {} duplicates dropped at the sink, per worker {:?}",
        log.duplicates, log.per_worker
    );
    assert_eq!(client.stats().unwrap().buried, 0);
}

fn beanstalkd_killed_and_restarted_from_its_binlog() {
    let binlog = TempDir::new("binlog");
    let Some(mut server) = Beanstalkd::start_with_binlog(binlog.path()) else {
        return;
    };
    let tube = tube("durable");
    let mut client = server.client();
    client.use_tube(&tube).unwrap();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    // 100 jobs put, 50 of them deleted: acknowledged deletes must survive too.
    let early: Vec<u64> = (0..100)
        .map(|i| {
            client
                .put(format!("early-{i}").as_bytes(), PutOptions::new())
                .unwrap()
        })
        .collect();
    for &id in &early[..50] {
        client.delete(id).unwrap();
    }
    // A producer puts one job at a time and records every acknowledged put, until the server
    // dies under it.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let producer = {
        let acked = acked.clone();
        let client = Client::builder(server.addr())
            .reconnect(Backoff {
                first: Duration::from_millis(1),
                max: Duration::from_millis(1),
                attempts: 1,
            })
            .connect()
            .unwrap();
        let mut producer = Producer::new(client, &tube).unwrap();
        std::thread::spawn(move || {
            let mut attempted = 0u64;
            loop {
                attempted += 1;
                let key = format!("late-{attempted}");
                match producer.put(key.as_bytes(), PutOptions::new()) {
                    Ok(_) => acked.lock().unwrap().push(key),
                    Err(error) => return (attempted, error),
                }
            }
        })
    };
    wait_until("300 acknowledged puts", || {
        acked.lock().unwrap().len() >= 300
    });
    server.kill(); // SIGKILL, mid-stream
    let (attempted, error) = producer.join().unwrap();
    assert!(error.is_connection_error(), "{error}");
    server.restart();

    let mut client = server.client();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    let mut bodies = std::collections::HashSet::new();
    loop {
        match client.reserve_with_timeout(Duration::ZERO) {
            Ok(job) => {
                bodies.insert(String::from_utf8(job.body).unwrap());
                client.delete(job.id).unwrap();
            }
            Err(Error::TimedOut) => break,
            Err(error) => panic!("reserve after restart: {error}"),
        }
    }
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<&String> = acked.iter().filter(|k| !bodies.contains(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged puts lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    for i in 0..100 {
        let key = format!("early-{i}");
        assert_eq!(
            bodies.contains(&key),
            i >= 50,
            "{key}: deleted before the crash, or lost"
        );
    }
    // At most the one put in flight at the kill is there without an acknowledgement.
    let extra = bodies.len() - 50 - acked.len();
    assert!(extra <= 1, "{extra} jobs nobody put");
    println!(
        "    {} acknowledged puts of {attempted} attempted all survived",
        acked.len()
    );
    assert_eq!(jobs_in(&mut client, &tube), 0);
}

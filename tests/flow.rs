//! Proactor flows: where steps run, how many hops they cost, and what happens under pressure.
//!
//! Sequencing uses channels and latches; time limits are only generous failure guards.

use std::sync::mpsc::channel;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use uberpool::{
    Flow, PoolsConfig, ProactorPolicy, RejectKind, Resources, SchedulerService, TaskClass,
    TaskError, current_class,
};

const GUARD: Duration = Duration::from_secs(20);

fn service(strategy: &str) -> SchedulerService {
    let text = format!("org.mule.runtime.scheduler.SchedulerPoolStrategy={strategy}\n");
    let config = PoolsConfig::parse(&text, &Resources::new(2, 1 << 20)).unwrap();
    SchedulerService::builder()
        .name("flowtest")
        .config(config)
        .build()
        .unwrap()
}

/// Where a step ran: the thread, its name (pool), and the class `current_class()` reported.
#[derive(Clone, Debug)]
struct Seen {
    thread: ThreadId,
    name: String,
    class: Option<TaskClass>,
}

fn seen() -> Seen {
    let current = std::thread::current();
    Seen {
        thread: current.id(),
        name: current.name().unwrap_or("").to_owned(),
        class: current_class(),
    }
}

type Trace = Vec<Seen>;

fn record(mut trace: Trace) -> Trace {
    trace.push(seen());
    trace
}

fn hops(service: &SchedulerService) -> (u64, u64) {
    let m = service.metrics();
    (m.hops_switched, m.hops_elided)
}

fn three_steps(service: &SchedulerService, policy: ProactorPolicy) -> Trace {
    let flow = Flow::builder(service)
        .policy(policy)
        .io(record)
        .light(record)
        .intensive(record)
        .build();
    flow.run(Vec::new()).unwrap().join().unwrap()
}

#[test]
fn mule_policy_runs_a_light_step_on_the_previous_io_thread() {
    for strategy in ["UBER", "DEDICATED"] {
        let service = service(strategy);
        let trace = three_steps(&service, ProactorPolicy::Mule);
        assert_eq!(
            trace[0].thread, trace[1].thread,
            "{strategy}: light ran in place"
        );
        assert_eq!(trace[0].class, Some(TaskClass::Io));
        assert_eq!(
            trace[1].class,
            Some(TaskClass::CpuLight),
            "the step's own class"
        );
        assert_eq!(trace[2].class, Some(TaskClass::CpuIntensive));
        if strategy == "DEDICATED" {
            assert!(trace[0].name.starts_with("flowtest.io."), "{:?}", trace[0]);
            assert!(
                trace[1].name.starts_with("flowtest.io."),
                "light in place on io"
            );
            assert!(trace[2].name.starts_with("flowtest.cpuIntensive."));
        }
        assert_eq!(
            hops(&service),
            (2, 1),
            "{strategy}: entry + intensive switched, light elided"
        );
    }
}

#[test]
fn always_policy_switches_at_every_step() {
    let service = service("DEDICATED");
    let trace = three_steps(&service, ProactorPolicy::Always);
    assert!(trace[0].name.starts_with("flowtest.io."));
    assert!(trace[1].name.starts_with("flowtest.cpuLight."));
    assert!(trace[2].name.starts_with("flowtest.cpuIntensive."));
    assert_eq!(hops(&service), (3, 0));
}

#[test]
fn pinned_policy_stays_on_one_thread() {
    for strategy in ["UBER", "DEDICATED"] {
        let service = service(strategy);
        let trace = three_steps(&service, ProactorPolicy::Pinned);
        assert!(
            trace.iter().all(|s| s.thread == trace[0].thread),
            "{strategy}"
        );
        assert_eq!(
            trace[2].class,
            Some(TaskClass::CpuIntensive),
            "classes still reported"
        );
        assert_eq!(hops(&service), (1, 2));
    }
}

#[test]
fn affinity_in_uber_never_switches_after_entry() {
    let service = service("UBER");
    let trace = three_steps(&service, ProactorPolicy::Affinity);
    assert!(trace.iter().all(|s| s.thread == trace[0].thread));
    assert_eq!(hops(&service), (1, 2));
}

#[test]
fn affinity_in_dedicated_switches_between_pools() {
    let service = service("DEDICATED");
    let flow = Flow::builder(&service)
        .policy(ProactorPolicy::Affinity)
        .io(record)
        .io(record)
        .intensive(record)
        .build();
    let trace = flow.run(Vec::new()).unwrap().join().unwrap();
    assert_eq!(
        trace[0].thread, trace[1].thread,
        "io after io stays on the io thread"
    );
    assert!(trace[2].name.starts_with("flowtest.cpuIntensive."));
    assert_eq!(hops(&service), (2, 1));
}

#[test]
fn a_mule_style_mixed_chain_uses_only_the_expected_hops() {
    let service = service("DEDICATED");
    // light, light, io, io, light, intensive, intensive, light
    let flow = Flow::builder(&service)
        .light(record)
        .light(record)
        .io(record)
        .io(record)
        .light(record)
        .intensive(record)
        .intensive(record)
        .light(record)
        .build();
    let trace = flow.run(Vec::new()).unwrap().join().unwrap();
    // entry + io + io + intensive + intensive switched; three light steps elided
    assert_eq!(hops(&service), (5, 3));
    let distinct: std::collections::HashSet<_> = trace.iter().map(|s| s.thread).collect();
    assert!(
        (3..=7).contains(&distinct.len()),
        "{} threads",
        distinct.len()
    );
    let classes: Vec<_> = trace.iter().map(|s| s.class.unwrap()).collect();
    use TaskClass::*;
    assert_eq!(
        classes,
        [
            CpuLight,
            CpuLight,
            Io,
            Io,
            CpuLight,
            CpuIntensive,
            CpuIntensive,
            CpuLight
        ]
    );
}

#[test]
fn a_panicking_step_names_itself() {
    let service = service("UBER");
    let flow = Flow::builder(&service)
        .name("campaign")
        .io(|n: u32| n + 1)
        .intensive(|_: u32| -> u32 { panic!("template missing") })
        .build();
    match flow.run(1).unwrap().join() {
        Err(TaskError::Panicked(message)) => {
            assert!(message.contains("campaign"), "{message}");
            assert!(message.contains("step 2"), "{message}");
            assert!(message.contains("CPU_INTENSIVE"), "{message}");
            assert!(message.contains("template missing"), "{message}");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

/// A DEDICATED service whose cpuIntensive pool has one thread and no queue.
fn tiny_intensive() -> SchedulerService {
    let text = "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n\
                org.mule.runtime.scheduler.cpuIntensive.threadPool.size=1\n\
                org.mule.runtime.scheduler.cpuIntensive.workQueue.size=0\n";
    let config = PoolsConfig::parse(text, &Resources::new(2, 1 << 20)).unwrap();
    SchedulerService::builder()
        .name("tiny")
        .config(config)
        .build()
        .unwrap()
}

#[test]
fn a_step_meeting_a_busy_pool_completes_after_a_slot_frees() {
    let service = tiny_intensive();
    // occupy the only cpuIntensive thread
    let (release, blocked) = channel::<()>();
    let (started_tx, started) = channel();
    let blocker = service
        .cpu_intensive()
        .submit(move || {
            started_tx.send(()).unwrap();
            blocked.recv_timeout(GUARD).unwrap();
        })
        .unwrap();
    started.recv_timeout(GUARD).unwrap();

    let flow = Flow::builder(&service)
        .io(|n: u32| n * 2)
        .intensive(|n: u32| n + 1)
        .build();
    let handle = flow.run(20).unwrap();
    // the io step ran and its hand-off met the full pool (refused, or waiting): wait until that
    // shows
    let start = Instant::now();
    while service
        .metrics()
        .pools
        .iter()
        .all(|p| p.rejected + p.waited == 0)
    {
        assert!(
            start.elapsed() < GUARD,
            "the hand-off never met the full pool"
        );
        std::thread::yield_now();
    }
    assert!(!handle.is_finished());
    // the io thread was not blocked meanwhile: the io pool still runs work
    assert_eq!(service.io().submit(|| 5).unwrap().join(), Ok(5));
    release.send(()).unwrap();
    blocker.join().unwrap();
    assert_eq!(handle.join_timeout(GUARD).ok(), Some(Ok(41)));
}

#[test]
fn try_run_on_a_saturated_flow_returns_the_input() {
    let service = service("UBER");
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let flow = Flow::builder(&service)
        .max_concurrency(1)
        .io(move |s: String| {
            g.wait();
            s
        })
        .build();
    let first = flow.run("first".to_owned()).unwrap();
    let refused = flow.try_run("second".to_owned()).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Throttled);
    assert_eq!(refused.into_inner(), "second");
    gate.wait();
    assert_eq!(first.join().unwrap(), "first");
}

#[test]
fn max_concurrency_bounds_flows_in_flight() {
    let service = service("UBER");
    let in_flight = Arc::new(Mutex::new((0usize, 0usize)));
    let counter = in_flight.clone();
    let flow = Flow::builder(&service)
        .max_concurrency(2)
        .io(move |n: u32| {
            {
                let mut c = counter.lock().unwrap();
                c.0 += 1;
                c.1 = c.1.max(c.0);
            }
            std::thread::yield_now();
            counter.lock().unwrap().0 -= 1;
            n
        })
        .build();
    let handles: Vec<_> = (0..200).map(|n| flow.run(n).unwrap()).collect();
    for (n, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join(), Ok(n as u32));
    }
    assert!(in_flight.lock().unwrap().1 <= 2);
}

#[test]
fn flows_are_cancelled_when_the_service_shuts_down() {
    let service = tiny_intensive();
    let (release, blocked) = channel::<()>();
    let (started_tx, started) = channel();
    service
        .cpu_intensive()
        .execute(move || {
            started_tx.send(()).unwrap();
            let _ = blocked.recv_timeout(GUARD);
        })
        .unwrap();
    started.recv_timeout(GUARD).unwrap();
    let flow = Flow::builder(&service)
        .io(|n: u32| n)
        .intensive(|n: u32| n)
        .build();
    let handle = flow.run(1).unwrap();
    let start = Instant::now();
    while service
        .metrics()
        .pools
        .iter()
        .all(|p| p.rejected + p.waited == 0)
    {
        assert!(start.elapsed() < GUARD);
        std::thread::yield_now();
    }
    // no grace period: the blocked task is reported still running and the flow's pending retry
    // finds the service shut down
    let report = service.shutdown_timeout(Duration::ZERO);
    assert!(report.still_running >= 1);
    assert_eq!(
        handle.join_timeout(GUARD).ok(),
        Some(Err(TaskError::Cancelled))
    );
    release.send(()).unwrap();
}

#[test]
fn an_empty_flow_returns_its_input() {
    let service = service("UBER");
    let flow = Flow::<u8, u8>::builder(&service).build();
    assert_eq!(flow.run(9).unwrap().join(), Ok(9));
}

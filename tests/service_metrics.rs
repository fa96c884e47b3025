//! What a service shows about itself: strategies chosen by configuration, thread names,
//! CPU_LIGHT overruns, metrics and Mule's usage report. One behaviour per test.

mod common;

use common::services::*;
use common::{GUARD, Gate, block, join, wait_until};
use std::sync::mpsc::channel;
use std::thread;
use std::time::Duration;

use uberpool::{PoolsConfig, SchedulerConfig, Strategy, TaskClass};

/// The same code, given only a different configuration.
fn topology_and_threads(config: PoolsConfig) -> (Strategy, Vec<String>, Vec<String>) {
    let svc = service("topo", config);
    let threads = TaskClass::ALL
        .iter()
        .map(|class| join(svc.scheduler(*class).submit(thread_name).unwrap()))
        .collect();
    let names = svc.metrics().pools.into_iter().map(|m| m.name).collect();
    (svc.strategy(), names, threads)
}

#[test]
fn strategies_switch_by_configuration_alone() {
    let (strategy, pools, threads) = topology_and_threads(uber(1, 1, 4));
    assert_eq!(strategy, Strategy::Uber);
    assert_eq!(pools, ["topo.uber"]);
    assert_eq!(threads, ["topo.uber.01"; 3]);

    let (strategy, pools, threads) = topology_and_threads(dedicated((1, 4), (1, 1, 4), (1, 4)));
    assert_eq!(strategy, Strategy::Dedicated);
    assert_eq!(pools, ["topo.cpuLight", "topo.io", "topo.cpuIntensive"]);
    // TaskClass::ALL order: CpuLight, CpuIntensive, Io.
    assert_eq!(
        threads,
        ["topo.cpuLight.01", "topo.cpuIntensive.01", "topo.io.01"]
    );
}

#[test]
fn thread_names_number_threads_per_pool_and_custom_threads_after_the_scheduler() {
    let svc = service("names", dedicated((2, 0), (1, 1, 0), (1, 0)));
    let gate = Gate::new();
    let light = svc.cpu_light();
    let (tx, rx) = channel();
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let tx = tx.clone();
            let gate = gate.clone();
            light
                .submit(move || {
                    tx.send(thread_name()).unwrap();
                    gate.wait();
                })
                .unwrap()
        })
        .collect();
    let mut seen: Vec<String> = (0..2).map(|_| rx.recv_timeout(GUARD).unwrap()).collect();
    seen.sort();
    assert_eq!(seen, ["names.cpuLight.01", "names.cpuLight.02"]);
    gate.open();
    for handle in blockers {
        join(handle);
    }
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("smtp-relay")
                .max_concurrent_tasks(1),
        )
        .unwrap();
    assert_eq!(join(custom.submit(thread_name).unwrap()), "smtp-relay.01");
    assert!(
        svc.metrics().pools.iter().any(|m| m.name == "smtp-relay"),
        "a live custom scheduler's pool is in the metrics"
    );
}

#[test]
fn cpu_light_task_over_the_budget_is_counted_as_an_overrun() {
    let svc = service("ov", dedicated((1, 4), (1, 1, 4), (1, 4)));
    join(
        svc.cpu_light()
            .submit(|| thread::sleep(Duration::from_millis(20)))
            .unwrap(),
    );
    join(
        svc.io()
            .submit(|| thread::sleep(Duration::from_millis(20)))
            .unwrap(),
    );
    assert_eq!(pool(&svc, "ov.cpuLight").light_overruns, 1);
    assert_eq!(pool(&svc, "ov.io").light_overruns, 0, "IO work may be long");
}

#[test]
fn cpu_light_overrun_is_counted_on_the_uber_pool_too() {
    let svc = service("ovu", uber(1, 1, 4));
    join(
        svc.cpu_light()
            .submit(|| thread::sleep(Duration::from_millis(20)))
            .unwrap(),
    );
    join(
        svc.cpu_intensive()
            .submit(|| thread::sleep(Duration::from_millis(20)))
            .unwrap(),
    );
    assert_eq!(pool(&svc, "ovu.uber").light_overruns, 1);
}

/// The row of `label` in the usage report, split into its columns.
fn usage_row(report: &str, label: &str) -> Vec<String> {
    report
        .lines()
        .map(|line| {
            line.split('|')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|cols| cols.first().map(String::as_str) == Some(label))
        .unwrap_or_else(|| panic!("no row {label} in\n{report}"))
}

#[test]
fn usage_report_shows_the_rejection_percentage() {
    let svc = service("ur", uber(1, 1, 0));
    // Each submission must find the thread idle: one that met a busy thread would wait and be
    // counted as a rejection.
    let idle = || pool(&svc, "ur.uber").idle == 1;
    for _ in 0..2 {
        wait_until("the thread to be idle", idle);
        join(svc.io().submit(|| ()).unwrap());
    }
    wait_until("the thread to be idle", idle);
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    assert!(svc.io().try_submit(|| ()).is_err());
    let report = svc.usage_report();
    let row = usage_row(&report, "uber");
    assert_eq!(row.last().map(String::as_str), Some("25.00"), "{report}");
    gate.open();
    join(blocker);
}

#[test]
fn usage_report_lists_each_dedicated_pool_with_its_schedulers() {
    let svc = service("ud", dedicated_ones());
    let _a = svc.io();
    let _b = svc.io();
    let _c = svc.cpu_light();
    let report = svc.usage_report();
    assert_eq!(usage_row(&report, "io")[1], "2", "{report}");
    assert_eq!(usage_row(&report, "cpuLight")[1], "1", "{report}");
    assert_eq!(usage_row(&report, "cpuIntensive")[1], "0", "{report}");
    assert_eq!(usage_row(&report, "io")[5], "0.00", "{report}");
}

#[test]
fn a_submission_that_waited_is_counted_as_at_most_one_rejection() {
    let svc = service("wr", uber(1, 1, 0));
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let opener = open_once_waiting(&svc, "wr.uber", &gate);
    let handle = svc.io().submit(|| ()).expect("waits, then accepted");
    assert!(opener.join().unwrap());
    join(handle);
    join(blocker);
    let m = pool(&svc, "wr.uber");
    assert_eq!((m.submitted, m.waited), (2, 1));
    assert!(
        m.rejected <= 1,
        "one submission that waited once was counted {} times in `rejected`",
        m.rejected
    );
}

#[test]
fn usage_report_counts_only_live_views() {
    let svc = service("ul", uber(1, 1, 0));
    let a = svc.io();
    let b = svc.cpu_light();
    let c = svc.io();
    assert_eq!(usage_row(&svc.usage_report(), "uber")[1], "3");
    a.shutdown();
    drop(b);
    let report = svc.usage_report();
    assert_eq!(usage_row(&report, "uber")[1], "1", "{report}");
    drop(c);
    assert_eq!(usage_row(&svc.usage_report(), "uber")[1], "0");
}

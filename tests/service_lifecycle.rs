//! The lifecycle of views and services: shutdown, shutdown_now, stop, drop, and the report that
//! accounts for every accepted task. One behaviour per test; sequencing with gates and channels.

mod common;

use common::services::*;
use common::{GUARD, Gate, block, join, outcome, poll_until, wait_until};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use uberpool::{RejectKind, SchedulerConfig, SchedulerService, Strategy, TaskClass, TaskError};

#[test]
fn submit_after_a_views_shutdown_is_refused_with_the_closure_back() {
    let svc = service("vs", uber(1, 1, 4));
    let io = svc.io();
    io.shutdown();
    assert!(io.is_shutdown());
    let refused = io.submit(|| "again").expect_err("view is shut down");
    assert_eq!(refused.kind(), RejectKind::Shutdown);
    assert_eq!(refused.into_inner()(), "again");
    let refused = io.execute(|| ()).expect_err("execute too");
    assert_eq!(refused.kind(), RejectKind::Shutdown);
}

#[test]
fn shutdown_of_one_view_leaves_other_views_of_the_same_pool_working() {
    let svc = service("vo", uber(1, 1, 4));
    let first = svc.io();
    let second = svc.io();
    let light = svc.cpu_light();
    first.shutdown();
    assert!(!second.is_shutdown());
    assert!(!light.is_shutdown());
    assert_eq!(join(second.submit(|| 1).unwrap()), 1);
    assert_eq!(join(light.submit(|| 2).unwrap()), 2);
}

#[test]
fn shutdown_now_cancels_only_that_views_queued_tasks_and_counts_them() {
    let svc = service("sn", uber(1, 1, 8));
    let mine = svc.io();
    let other = svc.io();
    let gate = Gate::new();
    let blocker = block(&mine, &gate);
    let ran = Arc::new(AtomicUsize::new(0));
    let queued_mine: Vec<_> = (0..2)
        .map(|_| {
            let ran = ran.clone();
            mine.submit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    let queued_other = other.submit(|| "other ran").unwrap();
    assert_eq!(mine.shutdown_now(), 2);
    assert!(mine.is_shutdown());
    assert!(!other.is_shutdown());
    gate.open();
    assert_eq!(outcome(blocker), Ok(()), "the running task runs to its end");
    assert_eq!(join(queued_other), "other ran");
    for handle in queued_mine {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(mine.is_terminated());
}

#[test]
fn stop_waits_for_running_and_queued_tasks_and_returns_true() {
    let svc = service("sw", uber(1, 1, 8));
    let view = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("sw-view")
                .shutdown_timeout(GUARD),
        )
        .unwrap();
    let gate = Gate::new();
    let blocker = block(&view, &gate);
    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let ran = ran.clone();
            view.submit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    let opener = {
        let view = view.clone();
        let gate = gate.clone();
        thread::spawn(move || {
            poll_until(|| view.is_shutdown());
            gate.open();
        })
    };
    assert!(view.stop(), "every task finished within the timeout");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        2,
        "queued tasks ran before stop returned"
    );
    assert!(view.is_terminated());
    opener.join().unwrap();
    join(blocker);
    for handle in queued {
        join(handle);
    }
}

#[test]
fn stop_with_a_short_timeout_on_a_blocked_task_returns_false_and_cancels_the_queued_ones() {
    let svc = service("sf", uber(1, 1, 8));
    let view = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("sf-view")
                .shutdown_timeout(Duration::from_millis(50)),
        )
        .unwrap();
    let gate = Gate::new();
    let blocker = block(&view, &gate);
    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let ran = ran.clone();
            view.submit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    assert!(!view.stop(), "the blocked task outlived the timeout");
    gate.open();
    assert_eq!(outcome(blocker), Ok(()));
    for handle in queued {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn stop_from_inside_the_views_own_task_does_not_wait_for_itself() {
    let svc = service("si", uber(2, 2, 4));
    let view = svc
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("si-view")
                .shutdown_timeout(GUARD),
        )
        .unwrap();
    let me = view.clone();
    let (stopped, terminated) = join(
        view.submit(move || {
            let stopped = me.stop();
            (stopped, me.is_terminated())
        })
        .unwrap(),
    );
    assert!(stopped, "stop ignores the calling task");
    assert!(terminated, "is_terminated ignores the calling task");
    let refused = view.submit(|| ()).expect_err("stopped");
    assert_eq!(refused.kind(), RejectKind::Shutdown);
}

#[test]
fn every_thread_stops_after_service_shutdown() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let svc = {
        let started = started.clone();
        let stopped = stopped.clone();
        SchedulerService::builder()
            .name("ts")
            .config(dedicated((2, 4), (1, 3, 0), (1, 4)))
            .on_thread_start(move || {
                started.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || {
                stopped.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("ts-custom")
                .max_concurrent_tasks(2),
        )
        .unwrap();
    // Grow the io pool to its maximum.
    let gate = Gate::new();
    let io = svc.io();
    let blockers: Vec<_> = (0..3).map(|_| block(&io, &gate)).collect();
    assert_eq!(pool(&svc, "ts.io").threads, 3);
    gate.open();
    for handle in blockers {
        join(handle);
    }
    join(custom.submit(|| ()).unwrap());
    join(svc.cpu_light().submit(|| ()).unwrap());
    // A thread counts as started once it runs its loop: a core thread may not have yet.
    let threads_started = || -> u64 { svc.metrics().pools.iter().map(|m| m.threads_started).sum() };
    assert!(
        poll_until(|| threads_started() == 2 + 3 + 1 + 2),
        "threads started: {}",
        threads_started()
    );

    let report = svc.shutdown();
    assert!(!report.timed_out);
    assert_eq!(started.load(Ordering::SeqCst), 8);
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        8,
        "every started thread stopped"
    );
    for m in svc.metrics().pools {
        assert_eq!(m.threads, 0, "{}", m.name);
    }
}

#[test]
fn shutdown_report_accounts_for_every_accepted_task_across_pools() {
    let svc = service("rp", dedicated((1, 4), (1, 1, 4), (1, 4)));
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("rp-custom")
                .max_concurrent_tasks(1),
        )
        .unwrap();
    let mut done = Vec::new();
    for _ in 0..2 {
        done.push(svc.cpu_light().submit(|| ()).unwrap());
    }
    for _ in 0..3 {
        done.push(svc.cpu_intensive().submit(|| ()).unwrap());
    }
    done.push(custom.submit(|| ()).unwrap());
    for handle in done {
        join(handle);
    }
    // A handle is served before the pool counts the task completed.
    wait_until("completions counted", || {
        pool(&svc, "rp.cpuLight").completed == 2
            && pool(&svc, "rp.cpuIntensive").completed == 3
            && pool(&svc, "rp-custom").completed == 1
    });
    let gate = Gate::new();
    let io = svc.io();
    let blocker = block(&io, &gate);
    let queued: Vec<_> = (0..3).map(|_| io.submit(|| ()).unwrap()).collect();

    let report = svc.shutdown_timeout(Duration::from_millis(100));
    gate.open();
    assert!(report.timed_out);
    assert_eq!(
        (report.completed, report.cancelled, report.still_running),
        (6, 3, 1)
    );
    assert_eq!(report.accepted(), 10);
    for handle in queued {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    assert_eq!(outcome(blocker), Ok(()));
}

#[test]
fn dropping_the_last_service_handle_shuts_the_pools_down() {
    let svc = service("dr", uber(1, 1, 4));
    let io = svc.io();
    let clone = svc.clone();
    drop(svc);
    assert_eq!(join(io.submit(|| 1).unwrap()), 1, "a clone keeps it alive");
    drop(clone);
    assert!(io.is_shutdown());
    let refused = io.submit(|| 2).expect_err("service gone");
    assert_eq!(refused.kind(), RejectKind::Shutdown);
    assert_eq!(refused.into_inner()(), 2);
}

#[test]
fn service_shutdown_from_inside_a_task_does_not_wait_for_that_task() {
    let svc = service("sd", dedicated_ones());
    let me = svc.clone();
    let report = join(svc.io().submit(move || me.shutdown_timeout(GUARD)).unwrap());
    assert!(!report.timed_out, "did not wait for itself: {report:?}");
    assert_eq!(report.still_running, 1, "the calling task is still running");
    assert!(svc.is_shutdown());
}

/// `shutdown_now` cannot interrupt the pool: a cancelled task is dropped unrun when a pool
/// thread reaches it, and its handle resolves then (documented on `Scheduler::shutdown_now`).
#[test]
fn shutdown_now_handles_resolve_as_cancelled_when_the_pool_reaches_them() {
    let svc = service("sr", uber(1, 1, 8));
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let view = svc.io();
    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let ran = ran.clone();
            view.submit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    assert_eq!(view.shutdown_now(), 2);
    gate.open();
    join(blocker);
    for handle in queued {
        assert_eq!(outcome(handle), Err(TaskError::Cancelled));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "cancelled tasks never ran");
    assert!(view.is_terminated());
}

#[test]
fn configured_keep_alive_retires_extra_io_threads_back_to_the_core() {
    let mut lines = vec![
        ("io.threadPool.coreSize", 1),
        ("io.threadPool.maxSize", 3),
        ("io.workQueue.size", 0),
        ("io.threadPool.threadKeepAlive", 20),
    ];
    lines.extend([
        ("cpuLight.threadPool.size", 1),
        ("cpuIntensive.threadPool.size", 1),
    ]);
    let svc = service("ka", config(&lines, Strategy::Dedicated));
    let gate = Gate::new();
    let io = svc.io();
    let blockers: Vec<_> = (0..3).map(|_| block(&io, &gate)).collect();
    assert_eq!(pool(&svc, "ka.io").threads, 3);
    gate.open();
    for handle in blockers {
        join(handle);
    }
    wait_until("extra io threads to retire", || {
        let m = pool(&svc, "ka.io");
        (m.threads, m.threads_retired) == (1, 2)
    });
    assert_eq!(
        join(io.submit(|| 5).unwrap()),
        5,
        "the core thread still works"
    );
}

#[test]
fn service_shutdown_uses_the_configured_graceful_timeout() {
    let mut lines = vec![
        ("uber.threadPool.coreSize", 1),
        ("uber.threadPool.maxSize", 1),
        ("uber.workQueue.size", 4),
    ];
    lines.push(("gracefulShutdownTimeout", 50));
    let svc = service("gt", config(&lines, Strategy::Uber));
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let queued = svc.io().submit(|| ()).unwrap();
    let report = svc.shutdown();
    gate.open();
    assert!(
        report.timed_out,
        "the blocked task outlived 50 ms: {report:?}"
    );
    assert_eq!(
        (report.completed, report.cancelled, report.still_running),
        (0, 1, 1)
    );
    assert_eq!(outcome(queued), Err(TaskError::Cancelled));
    assert_eq!(outcome(blocker), Ok(()));
}

#[test]
fn stop_and_shutdown_now_a_second_time_do_nothing() {
    let svc = service("tw", uber(1, 1, 4));
    let view = svc.io();
    join(view.submit(|| ()).unwrap());
    assert!(view.stop());
    assert!(view.stop(), "already stopped: returns at once");
    assert_eq!(view.shutdown_now(), 0);
    assert!(view.is_terminated());
}

//! Custom schedulers: their own fixed pool, their flags (`wait_allowed`,
//! `direct_run_cpu_light_when_target_busy`), their lifecycle and the options only they accept.
//! One behaviour per test; sequencing with gates and channels.

mod common;

use common::services::*;
use common::{GUARD, Gate, block, join, wait_until};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::channel;

use uberpool::{
    RejectKind, SchedulerConfig, SchedulerError, SchedulerService, TaskClass, current_class,
};

#[test]
fn custom_wait_allowed_thread_waits_for_full_io_pool() {
    let svc = service("cw", dedicated_ones());
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("cw-relay")
                .max_concurrent_tasks(1)
                .wait_allowed(true),
        )
        .unwrap();
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let io = svc.io();
    let (accepted_tx, accepted_rx) = channel();
    let outer = custom
        .submit(move || {
            let handle = io
                .submit(thread_name)
                .expect("a wait_allowed thread waits, it is never refused");
            accepted_tx.send(()).unwrap();
            join(handle)
        })
        .unwrap();
    wait_until("the custom thread to wait", || {
        pool(&svc, "cw.io").waited == 1
    });
    assert!(accepted_rx.try_recv().is_err(), "still blocked");
    gate.open();
    accepted_rx
        .recv_timeout(GUARD)
        .expect("accepted once freed");
    assert_eq!(join(outer), "cw.io.01");
    join(blocker);
}

#[test]
fn custom_without_flags_is_refused_by_full_io_pool() {
    let svc = service("cn", dedicated_ones());
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("cn-plain")
                .max_concurrent_tasks(1),
        )
        .unwrap();
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let io = svc.io();
    let kind = join(
        custom
            .submit(move || io.submit(|| 1).err().map(|r| r.kind()))
            .unwrap(),
    );
    assert_eq!(kind, Some(RejectKind::Busy));
    let m = pool(&svc, "cn.io");
    assert_eq!((m.waited, m.caller_ran), (0, 0));
    gate.open();
    join(blocker);
}

#[test]
fn custom_direct_run_thread_runs_cpu_light_inline_when_cpu_light_pool_is_full() {
    let svc = service("cd", dedicated_ones());
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("cd-direct")
                .max_concurrent_tasks(1)
                .direct_run_cpu_light_when_target_busy(true),
        )
        .unwrap();
    let gate = Gate::new();
    let blocker = block(&svc.cpu_light(), &gate);
    let light = svc.cpu_light();
    let (thread, class) = join(
        custom
            .submit(move || {
                join(
                    light
                        .submit(|| (thread_name(), current_class()))
                        .expect("runs inline"),
                )
            })
            .unwrap(),
    );
    assert_eq!(thread, "cd-direct.01", "ran on the custom thread");
    assert_eq!(class, Some(TaskClass::CpuLight));
    assert_eq!(pool(&svc, "cd.cpuLight").caller_ran, 1);
    gate.open();
    join(blocker);
}

#[test]
fn custom_thread_group_answers_follow_their_flags() {
    let svc = service("gc", uber(1, 1, 0));
    let custom = |name: &str, wait: bool, direct: bool| {
        svc.custom(
            SchedulerConfig::new()
                .name(name)
                .max_concurrent_tasks(1)
                .wait_allowed(wait)
                .direct_run_cpu_light_when_target_busy(direct),
        )
        .unwrap()
    };
    let waiting = custom("gc-wait", true, false);
    let plain = custom("gc-plain", false, false);
    let direct = custom("gc-direct", false, true);
    assert_eq!(join(waiting.submit(groups).unwrap()), (false, true));
    assert_eq!(join(plain.submit(groups).unwrap()), (false, false));
    assert_eq!(join(direct.submit(groups).unwrap()), (false, false));
}

#[test]
fn stop_from_inside_a_custom_schedulers_own_task_does_not_deadlock() {
    let svc = service("sc", uber(1, 1, 0));
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("sc-own")
                .max_concurrent_tasks(2)
                .shutdown_timeout(GUARD),
        )
        .unwrap();
    let me = custom.clone();
    let (stopped, terminated) = join(
        custom
            .submit(move || {
                let stopped = me.stop();
                (stopped, me.is_terminated())
            })
            .unwrap(),
    );
    assert!(stopped);
    assert!(terminated);
    assert_eq!(
        custom.submit(|| ()).expect_err("stopped").kind(),
        RejectKind::Shutdown
    );
}

#[test]
fn custom_scheduler_after_service_shutdown_is_refused() {
    let svc = service("cs", uber(1, 1, 0));
    svc.shutdown();
    assert!(svc.is_shutdown());
    let err = svc
        .custom(SchedulerConfig::new().name("late").max_concurrent_tasks(1))
        .unwrap_err();
    assert!(matches!(err, SchedulerError::ServiceShutdown(_)), "{err}");
    assert_eq!(
        svc.io().submit(|| ()).expect_err("shut down").kind(),
        RejectKind::Shutdown
    );
}

#[test]
fn scheduler_with_refuses_custom_only_options_with_mules_message() {
    let svc = service("co", uber(1, 1, 0));
    let err = svc
        .scheduler_with(TaskClass::Io, SchedulerConfig::new().wait_allowed(true))
        .unwrap_err();
    assert!(matches!(err, SchedulerError::CustomOnly { .. }));
    assert_eq!(
        err.to_string(),
        "Only custom schedulers may define 'waitAllowed' behaviour"
    );
    let err = svc
        .scheduler_with(
            TaskClass::CpuLight,
            SchedulerConfig::new().direct_run_cpu_light_when_target_busy(true),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Only custom schedulers may define 'directRunCpuLightWhenTargetBusy' behaviour"
    );
}

#[test]
fn custom_without_a_pool_size_is_missing_pool_size() {
    let svc = service("mp", uber(1, 1, 0));
    let err = svc
        .custom(SchedulerConfig::new().name("nameless-size"))
        .unwrap_err();
    assert!(matches!(err, SchedulerError::MissingPoolSize), "{err}");
}

#[test]
fn stopping_a_custom_scheduler_stops_its_threads() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let svc = {
        let stopped = stopped.clone();
        SchedulerService::builder()
            .name("cst")
            .config(uber(1, 1, 0))
            .on_thread_stop(move || {
                stopped.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("cst-own")
                .max_concurrent_tasks(3),
        )
        .unwrap();
    join(custom.submit(|| ()).unwrap());
    assert!(custom.stop());
    assert!(custom.is_terminated());
    assert_eq!(pool(&svc, "cst-own").threads, 0);
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        3,
        "its three threads, not uber's"
    );
    assert_eq!(pool(&svc, "cst.uber").threads, 1);
}

#[test]
fn a_dropped_custom_scheduler_leaves_the_metrics() {
    let svc = service("cdm", uber(1, 1, 0));
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("cdm-gone")
                .max_concurrent_tasks(1),
        )
        .unwrap();
    assert_eq!(svc.metrics().pools.len(), 2);
    drop(custom);
    let names: Vec<_> = svc.metrics().pools.into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["cdm.uber"]);
}

#[test]
fn a_custom_scheduler_queues_as_many_tasks_as_it_has_threads_by_default() {
    let svc = service("cq", uber(1, 1, 0));
    let custom = svc
        .custom(
            SchedulerConfig::new()
                .name("cq-own")
                .max_concurrent_tasks(1),
        )
        .unwrap();
    let gate = Gate::new();
    let blocker = block(&custom, &gate);
    let queued = custom.try_submit(|| 1).expect("one queue slot");
    let refused = custom.try_submit(|| 2).expect_err("queue full");
    assert_eq!(refused.kind(), RejectKind::Busy);
    gate.open();
    join(blocker);
    assert_eq!(join(queued), 1);
}

//! Behaviour of the scheduler service and its views on real pools, one behaviour per test.
//!
//! Saturation tests use pools of one thread with no queue, kept full by a task blocked on a
//! [`Gate`]. Sequencing uses channels and gates; "a caller is blocked waiting" is observed through
//! the pool's `waited` counter. The only time limits are generous failure guards.

mod common;

use common::{GUARD, Gate, block, join, outcome, poll_until, wait_until};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::thread;
use std::time::Duration;

use uberpool::PoolMetrics;
use uberpool::{
    PoolsConfig, RejectKind, Resources, SchedulerConfig, SchedulerError, SchedulerService,
    Strategy, TaskClass, TaskError, current_class, is_current_thread_for_cpu_work,
    is_current_thread_in_wait_group,
};

const PREFIX: &str = "org.mule.runtime.scheduler.";

/// A configuration from `key=value` lines (keys without the Mule prefix).
fn config(lines: &[(&str, usize)], strategy: Strategy) -> PoolsConfig {
    let mut text = format!("{PREFIX}SchedulerPoolStrategy={strategy}\n");
    for (key, value) in lines {
        text.push_str(&format!("{PREFIX}{key}={value}\n"));
    }
    PoolsConfig::parse(&text, &Resources::new(2, 1 << 20)).expect("valid configuration")
}

/// UBER with the given sizes.
fn uber(core: usize, max: usize, queue: usize) -> PoolsConfig {
    config(
        &[
            ("uber.threadPool.coreSize", core),
            ("uber.threadPool.maxSize", max),
            ("uber.workQueue.size", queue),
        ],
        Strategy::Uber,
    )
}

/// DEDICATED with `(size, queue)` for cpuLight, `(core, max, queue)` for io and `(size, queue)`
/// for cpuIntensive.
fn dedicated(
    light: (usize, usize),
    io: (usize, usize, usize),
    intensive: (usize, usize),
) -> PoolsConfig {
    config(
        &[
            ("cpuLight.threadPool.size", light.0),
            ("cpuLight.workQueue.size", light.1),
            ("io.threadPool.coreSize", io.0),
            ("io.threadPool.maxSize", io.1),
            ("io.workQueue.size", io.2),
            ("cpuIntensive.threadPool.size", intensive.0),
            ("cpuIntensive.workQueue.size", intensive.1),
        ],
        Strategy::Dedicated,
    )
}

/// Every DEDICATED pool: one thread, no queue.
fn dedicated_ones() -> PoolsConfig {
    dedicated((1, 0), (1, 1, 0), (1, 0))
}

fn service(name: &str, config: PoolsConfig) -> SchedulerService {
    SchedulerService::builder()
        .name(name)
        .config(config)
        .build()
        .expect("service starts")
}

/// The metrics of the pool named `name`.
fn pool(service: &SchedulerService, name: &str) -> PoolMetrics {
    service
        .metrics()
        .pools
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no pool named {name}"))
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

/// On another thread: waits until `pool` of `service` counts a waiting submission, then opens
/// `gate` whatever happened (so a failed check cannot hang the test). Joining the thread tells
/// whether the waiter was seen blocked.
fn open_once_waiting(
    service: &SchedulerService,
    pool_name: &str,
    gate: &Gate,
) -> thread::JoinHandle<bool> {
    let service = service.clone();
    let pool_name = pool_name.to_owned();
    let gate = gate.clone();
    thread::spawn(move || {
        let seen = poll_until(|| pool(&service, &pool_name).waited == 1);
        gate.open();
        seen
    })
}

// ---------------------------------------------------------------------------------------------
// The rejection decision carried out on real saturated pools
// ---------------------------------------------------------------------------------------------

#[test]
fn io_thread_runs_inline_when_io_pool_is_full() {
    let svc = service("ioio", dedicated_ones());
    let io = svc.io();
    let inner_io = svc.io();
    let (outer_thread, inline_thread, inline_class, finished_before_join) = join(
        io.submit(move || {
            let handle = inner_io
                .submit(|| (thread_name(), current_class()))
                .expect("an io thread is never refused by its own pool");
            let finished = handle.is_finished();
            let (name, class) = join(handle);
            (thread_name(), name, class, finished)
        })
        .unwrap(),
    );
    assert!(outer_thread.starts_with("ioio.io."), "{outer_thread}");
    assert_eq!(
        inline_thread, outer_thread,
        "ran on the submitting io thread"
    );
    assert_eq!(inline_class, Some(TaskClass::Io));
    assert!(
        finished_before_join,
        "run inline: finished when submit returned"
    );
    let m = pool(&svc, "ioio.io");
    assert_eq!((m.caller_ran, m.waited, m.threads), (1, 0, 1));
}

#[test]
fn cpu_light_thread_is_refused_by_full_io_pool_with_the_closure_intact() {
    let svc = service("lio", dedicated_ones());
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let io = svc.io();
    let got = join(
        svc.cpu_light()
            .submit(move || {
                let marker = String::from("intact");
                match io.submit(move || marker) {
                    Ok(_) => None,
                    Err(refused) => Some((refused.kind(), refused.into_inner()())),
                }
            })
            .unwrap(),
    );
    assert_eq!(got, Some((RejectKind::Busy, "intact".to_owned())));
    let m = pool(&svc, "lio.io");
    assert_eq!((m.caller_ran, m.waited), (0, 0));
    gate.open();
    join(blocker);
}

#[test]
fn cpu_light_thread_runs_inline_when_cpu_light_pool_is_full() {
    let svc = service("ll", dedicated_ones());
    let light = svc.cpu_light();
    let inner = svc.cpu_light();
    let (outer_thread, inline_thread) = join(
        light
            .submit(move || {
                let handle = inner
                    .submit(thread_name)
                    .expect("a cpuLight thread runs cpuLight work inline");
                (thread_name(), join(handle))
            })
            .unwrap(),
    );
    assert!(outer_thread.starts_with("ll.cpuLight."), "{outer_thread}");
    assert_eq!(inline_thread, outer_thread);
    assert_eq!(pool(&svc, "ll.cpuLight").caller_ran, 1);
}

#[test]
fn io_thread_waits_for_full_cpu_intensive_pool_and_proceeds_when_a_slot_frees() {
    let svc = service("iow", dedicated_ones());
    let gate = Gate::new();
    let blocker = block(&svc.cpu_intensive(), &gate);
    let intensive = svc.cpu_intensive();
    let (accepted_tx, accepted_rx) = channel();
    let outer = svc
        .io()
        .submit(move || {
            let handle = intensive
                .submit(thread_name)
                .expect("an io thread waits, it is never refused");
            accepted_tx.send(()).unwrap();
            join(handle)
        })
        .unwrap();
    wait_until("the io thread to wait", || {
        pool(&svc, "iow.cpuIntensive").waited == 1
    });
    assert!(
        accepted_rx.try_recv().is_err(),
        "still blocked while the slot is held"
    );
    gate.open();
    accepted_rx
        .recv_timeout(GUARD)
        .expect("accepted once freed");
    let ran_on = join(outer);
    assert!(ran_on.starts_with("iow.cpuIntensive."), "{ran_on}");
    join(blocker);
    assert_eq!(pool(&svc, "iow.cpuIntensive").caller_ran, 0);
}

#[test]
fn foreign_thread_waits_for_full_pool_and_proceeds_when_a_slot_frees() {
    let svc = service("fw", uber(1, 1, 0));
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let opener = open_once_waiting(&svc, "fw.uber", &gate);
    let handle = svc
        .io()
        .submit(thread_name)
        .expect("a foreign thread waits, it is never refused");
    assert!(opener.join().unwrap(), "the submitter was seen waiting");
    assert_eq!(join(handle), "fw.uber.01", "ran on the pool, not inline");
    join(blocker);
    let m = pool(&svc, "fw.uber");
    assert_eq!((m.waited, m.caller_ran), (1, 0));
}

#[test]
fn submit_timeout_gives_up_at_its_deadline_with_busy_and_the_closure_back() {
    let svc = service("st", uber(1, 1, 0));
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let refused = svc
        .io()
        .submit_timeout(|| "back", Duration::from_millis(50))
        .expect_err("the pool stays full past the deadline");
    assert_eq!(refused.kind(), RejectKind::Busy);
    assert_eq!(refused.into_inner()(), "back");
    assert_eq!(pool(&svc, "st.uber").caller_ran, 0);
    gate.open();
    join(blocker);
}

#[test]
fn try_submit_from_a_foreign_thread_refuses_a_full_pool_at_once() {
    let svc = service("ts", uber(1, 1, 0));
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let refused = svc.io().try_submit(|| 7).expect_err("full pool");
    assert_eq!(refused.kind(), RejectKind::Busy);
    assert_eq!(refused.into_inner()(), 7);
    let m = pool(&svc, "ts.uber");
    assert_eq!(
        (m.waited, m.caller_ran),
        (0, 0),
        "never waits, never runs inline"
    );
    gate.open();
    join(blocker);
}

#[test]
fn try_submit_from_a_pool_thread_never_runs_inline() {
    let svc = service("tsi", uber(1, 1, 0));
    let inner = svc.io();
    let kind = join(
        svc.io()
            .submit(move || inner.try_submit(|| ()).err().map(|r| r.kind()))
            .unwrap(),
    );
    assert_eq!(kind, Some(RejectKind::Busy));
    assert_eq!(pool(&svc, "tsi.uber").caller_ran, 0);
}

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
fn uber_thread_runs_inline_when_uber_pool_is_full() {
    let svc = service("ui", uber(1, 1, 0));
    let intensive = svc.cpu_intensive();
    let (outer, inline) = join(
        svc.io()
            .submit(move || {
                let handle = intensive.submit(thread_name).expect("runs inline");
                (thread_name(), join(handle))
            })
            .unwrap(),
    );
    assert_eq!(outer, "ui.uber.01");
    assert_eq!(inline, outer);
    let m = pool(&svc, "ui.uber");
    assert_eq!((m.caller_ran, m.waited), (1, 0));
}

#[test]
fn inline_task_sees_its_own_class_and_the_callers_class_is_restored() {
    let svc = service("cls", uber(1, 1, 0));
    let light = svc.cpu_light();
    let classes = join(
        svc.io()
            .submit(move || {
                let before = current_class();
                let inline = join(light.submit(current_class).expect("runs inline"));
                (before, inline, current_class())
            })
            .unwrap(),
    );
    assert_eq!(
        classes,
        (
            Some(TaskClass::Io),
            Some(TaskClass::CpuLight),
            Some(TaskClass::Io)
        )
    );
    assert_eq!(pool(&svc, "cls.uber").caller_ran, 1, "it did run inline");
    assert_eq!(current_class(), None);
}

// ---------------------------------------------------------------------------------------------
// Thread groups: is_current_thread_for_cpu_work / is_current_thread_in_wait_group
// ---------------------------------------------------------------------------------------------

fn groups() -> (bool, bool) {
    (
        is_current_thread_for_cpu_work(),
        is_current_thread_in_wait_group(),
    )
}

#[test]
fn uber_threads_are_for_cpu_work_and_in_the_wait_group_whatever_they_run() {
    let svc = service("gu", uber(2, 2, 4));
    for class in TaskClass::ALL {
        let answers = join(svc.scheduler(class).submit(groups).unwrap());
        assert_eq!(answers, (true, true), "{class}");
    }
}

#[test]
fn dedicated_thread_group_answers_follow_the_pool() {
    let svc = service("gd", dedicated((1, 4), (1, 1, 4), (1, 4)));
    assert_eq!(join(svc.cpu_light().submit(groups).unwrap()), (true, false));
    assert_eq!(join(svc.io().submit(groups).unwrap()), (false, true));
    assert_eq!(
        join(svc.cpu_intensive().submit(groups).unwrap()),
        (true, false)
    );
}

#[test]
fn foreign_threads_are_neither_for_cpu_work_nor_in_a_wait_group() {
    let _svc = service("gf", uber(1, 1, 0));
    assert_eq!(groups(), (false, false));
    assert_eq!(thread::spawn(groups).join().unwrap(), (false, false));
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

// ---------------------------------------------------------------------------------------------
// View lifecycle
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Service lifecycle
// ---------------------------------------------------------------------------------------------

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
    let threads_started: u64 = svc.metrics().pools.iter().map(|m| m.threads_started).sum();
    assert_eq!(threads_started, 2 + 3 + 1 + 2);

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

// ---------------------------------------------------------------------------------------------
// Strategies, names, metrics
// ---------------------------------------------------------------------------------------------

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
fn a_panicking_inline_task_reports_the_panic_and_restores_the_callers_class() {
    let svc = service("ip", uber(1, 1, 0));
    let light = svc.cpu_light();
    let (error, after, thread) = join(
        svc.io()
            .submit(move || {
                let handle = light
                    .submit(|| -> u8 { panic!("inline boom") })
                    .expect("runs inline");
                (outcome(handle), current_class(), thread_name())
            })
            .unwrap(),
    );
    assert_eq!(error, Err(TaskError::Panicked("inline boom".into())));
    assert_eq!(after, Some(TaskClass::Io));
    assert_eq!(thread, "ip.uber.01");
    assert_eq!(
        join(svc.io().submit(thread_name).unwrap()),
        "ip.uber.01",
        "the caller thread survived"
    );
}

#[test]
fn a_waiting_submitter_is_refused_with_shutdown_when_the_service_shuts_down() {
    let svc = service("ws", uber(1, 1, 0));
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let submitter = {
        let io = svc.io();
        thread::spawn(move || match io.submit(|| "mine") {
            Ok(_) => None,
            Err(refused) => Some((refused.kind(), refused.into_inner()())),
        })
    };
    wait_until("the submitter to wait", || {
        pool(&svc, "ws.uber").waited == 1
    });
    let report = svc.shutdown_timeout(Duration::ZERO);
    gate.open();
    assert_eq!(
        submitter.join().unwrap(),
        Some((RejectKind::Shutdown, "mine"))
    );
    assert_eq!(report.still_running, 1);
    assert_eq!(outcome(blocker), Ok(()));
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

/// UBER with core 1 and max 4 whose spawn handler lets only the core thread start; the counter
/// counts every spawn attempt.
fn core_thread_only(name: &str) -> (SchedulerService, Arc<AtomicUsize>) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let svc = {
        let attempts = attempts.clone();
        SchedulerService::builder()
            .name(name)
            .config(uber(1, 4, 0))
            .spawn_handler(move |spawn| {
                if attempts.fetch_add(1, Ordering::SeqCst) > 0 {
                    return Err(std::io::Error::other("no more threads"));
                }
                thread::Builder::new()
                    .name(spawn.name().to_owned())
                    .spawn(move || spawn.run())
                    .map(|_| ())
            })
            .build()
            .unwrap()
    };
    (svc, attempts)
}

#[test]
fn a_thread_the_spawn_handler_refuses_makes_the_submission_busy_not_a_hang() {
    let (svc, _spawn_attempts) = core_thread_only("sh");
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let refused = svc
        .io()
        .try_submit(|| 3)
        .expect_err("no thread to grow into");
    assert_eq!(refused.kind(), RejectKind::Busy);
    assert_eq!(refused.into_inner()(), 3);
    let refused = svc
        .io()
        .submit_timeout(|| 4, Duration::from_millis(50))
        .expect_err("still no thread");
    assert_eq!(refused.kind(), RejectKind::Busy);
    assert!(pool(&svc, "sh.uber").spawn_failures >= 2);
    gate.open();
    join(blocker);
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

#[test]
fn execute_runs_inline_from_an_io_thread_on_the_full_io_pool() {
    let svc = service("ex", dedicated_ones());
    let inner = svc.io();
    let (tx, rx) = channel();
    join(
        svc.io()
            .submit(move || {
                let me = thread_name();
                inner
                    .execute(move || tx.send(thread_name() == me).unwrap())
                    .expect("runs inline");
            })
            .unwrap(),
    );
    assert_eq!(rx.recv_timeout(GUARD), Ok(true));
    assert_eq!(pool(&svc, "ex.io").caller_ran, 1);
}

#[test]
fn a_waiting_submitter_does_not_retry_a_refused_thread_in_a_busy_loop() {
    let (svc, attempts) = core_thread_only("bl");
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let before = attempts.load(Ordering::SeqCst);
    let refused = svc
        .io()
        .submit_timeout(|| (), Duration::from_millis(50))
        .expect_err("no thread frees up and none can be started");
    assert_eq!(refused.kind(), RejectKind::Busy);
    let retries = attempts.load(Ordering::SeqCst) - before;
    gate.open();
    join(blocker);
    // Nothing changed in the pool during the wait but the caller's own failed spawns: a waiter
    // should sleep until real capacity appears, not be woken by its own refusal.
    assert!(
        retries <= 5,
        "{retries} thread spawns attempted by one submission during a 50 ms wait"
    );
}

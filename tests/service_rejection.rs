//! Who waits, who runs inline, who is refused: the caller-aware policy carried out on real
//! saturated pools, and the thread-group queries. One behaviour per test.
//!
//! Saturation tests use pools of one thread with no queue, kept full by a task blocked on a
//! [`Gate`]. Sequencing uses channels and gates; "a caller is blocked waiting" is observed through
//! the pool's `waited` counter. The only time limits are generous failure guards.

mod common;

use common::services::*;
use common::{GUARD, Gate, block, join, outcome, wait_until};
use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;
use std::thread;
use std::time::Duration;

use uberpool::{RejectKind, TaskClass, TaskError, current_class};

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

//! Scoped tasks: tasks that borrow from the caller, and a scope that returns only once every one
//! of them has run or been dropped.

mod common;

use common::{GUARD, Gate, service};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use uberpool::{RejectKind, TaskError};

#[test]
fn tasks_borrow_from_the_caller_and_write_into_its_data() {
    let svc = service("scoped-borrow");
    let mut recipients = vec![
        String::from("ada"),
        String::from("grace"),
        String::from("alan"),
    ];
    let domain = String::from("example.com");
    svc.cpu_intensive().scope(|scope| {
        for recipient in recipients.iter_mut() {
            let domain = &domain;
            scope
                .submit(move || {
                    recipient.push('@');
                    recipient.push_str(domain);
                })
                .expect("accepted");
        }
    });
    assert_eq!(
        recipients,
        ["ada@example.com", "grace@example.com", "alan@example.com"]
    );
}

#[test]
fn the_scope_waits_for_tasks_nobody_joined() {
    let svc = service("scoped-wait");
    let (started, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let gate = Gate::new();
    thread::scope(|threads| {
        // Opens the gate once all eight tasks are blocked on it: by then the scope's body has
        // returned, so only the scope's own wait can make `done` reach eight below.
        threads.spawn(|| {
            assert!(common::poll_until(|| started.load(Ordering::SeqCst) == 8));
            gate.open();
        });
        svc.io().scope(|scope| {
            for _ in 0..8 {
                let (started, done, gate) = (&started, &done, &gate);
                let _detached = scope.submit(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    gate.wait();
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(
            done.load(Ordering::SeqCst),
            8,
            "every task ran before scope returned"
        );
    });
}

#[test]
fn a_panicking_body_still_waits_for_its_tasks_then_panics() {
    let svc = service("scoped-panic");
    let done = AtomicUsize::new(0);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        svc.io().scope(|scope| {
            for _ in 0..4 {
                let done = &done;
                let _ = scope.submit(move || {
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
            panic!("the body panicked");
        })
    }));
    assert!(outcome.is_err());
    assert_eq!(done.load(Ordering::SeqCst), 4);
}

#[test]
fn a_cancelled_task_is_dropped_before_the_scope_returns() {
    let svc = service("scoped-cancel");
    let view = svc
        .scheduler_with(
            uberpool::TaskClass::Io,
            uberpool::SchedulerConfig::new()
                .max_concurrent_tasks(1)
                .queue_size(4),
        )
        .unwrap();
    let dropped = AtomicUsize::new(0);
    struct Counted<'a>(&'a AtomicUsize);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let gate = Gate::new();
    view.scope(|scope| {
        let blocker = {
            let gate = &gate;
            scope.submit(move || gate.wait()).unwrap()
        };
        let counted = Counted(&dropped);
        let queued = scope
            .submit(move || {
                let _counted = counted;
                unreachable!("cancelled before it started")
            })
            .unwrap();
        assert!(queued.cancel());
        gate.open();
        blocker.join().unwrap();
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "dropped unrun, within the scope"
    );
}

#[test]
fn a_refused_task_comes_back_to_the_caller() {
    let svc = service("scoped-refused");
    let io = svc.io();
    io.shutdown();
    let mut ran_here = false;
    io.scope(|scope| {
        let ran_here = &mut ran_here;
        let refused = scope.submit(move || *ran_here = true).unwrap_err();
        assert_eq!(refused.kind(), RejectKind::Shutdown);
        refused.into_inner()(); // run it ourselves
    });
    assert!(ran_here);
}

#[test]
fn a_task_submitted_from_its_own_pool_runs_on_that_thread() {
    let svc = service("scoped-own-pool");
    let io = svc.io();
    let inner = io.clone();
    let same_thread = io
        .submit(move || {
            let here = thread::current().id();
            let data = [1u32, 2, 3];
            inner.scope(|scope| {
                let data = &data;
                let handle = scope
                    .submit(move || (thread::current().id(), data.iter().sum::<u32>()))
                    .unwrap();
                let (there, sum) = handle.join().unwrap();
                assert_eq!(sum, 6);
                there == here
            })
        })
        .unwrap()
        .join_timeout(GUARD)
        .ok()
        .unwrap()
        .unwrap();
    assert!(same_thread);
}

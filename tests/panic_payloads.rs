//! A task's panic payload comes back through its handle, whatever ran it: a submitted task, a
//! flow step, an async task, a delayed task — so the caller can inspect it or carry the panic on
//! with `resume_unwind`.

mod common;

use common::{GUARD, service};
use std::panic::{catch_unwind, panic_any};
use std::time::Duration;

use uberpool::{Flow, TaskError};

/// A payload that is not a string, so that only the original payload carries it.
#[derive(Debug, PartialEq)]
struct SmtpFailure(u16);

fn payload_of(error: TaskError) -> SmtpFailure {
    let payload = error.try_into_panic().expect("a panic");
    *payload
        .downcast::<SmtpFailure>()
        .expect("the task's own payload")
}

#[test]
fn a_submitted_tasks_payload_comes_back() {
    let svc = service("payload-submit");
    let handle = svc
        .io()
        .submit(|| -> u32 { panic_any(SmtpFailure(421)) })
        .unwrap();
    let error = handle.join_timeout(GUARD).ok().unwrap().unwrap_err();
    assert!(error.is_panic() && !error.is_cancelled());
    assert_eq!(payload_of(error), SmtpFailure(421));
}

#[test]
fn a_flow_steps_payload_comes_back_with_the_step_named() {
    let svc = service("payload-flow");
    let flow = Flow::builder(&svc)
        .name("send")
        .io(|n: u32| n)
        .intensive(|_: u32| -> u32 { panic_any(SmtpFailure(451)) })
        .build();
    let error = flow
        .run(1)
        .unwrap()
        .join_timeout(GUARD)
        .ok()
        .unwrap()
        .unwrap_err();
    match &error {
        TaskError::Panicked(panic) => assert!(panic.contains("flow 'send' step 2"), "{panic}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(payload_of(error), SmtpFailure(451));
}

#[test]
fn an_async_tasks_payload_comes_back() {
    let svc = service("payload-async");
    let handle = svc
        .cpu_light()
        .spawn_async(async {
            if true {
                panic_any(SmtpFailure(550));
            }
            7u32
        })
        .unwrap();
    let error = handle.join_timeout(GUARD).ok().unwrap().unwrap_err();
    assert_eq!(payload_of(error), SmtpFailure(550));
}

#[test]
fn a_delayed_tasks_payload_comes_back_and_the_pool_counts_the_panic() {
    let svc = service("payload-delayed");
    let handle = svc
        .io()
        .schedule(Duration::ZERO, || -> u32 { panic_any(SmtpFailure(554)) })
        .unwrap();
    let error = handle.join_timeout(GUARD).ok().unwrap().unwrap_err();
    assert_eq!(payload_of(error), SmtpFailure(554));
    assert!(common::poll_until(|| svc.metrics().pools[0].panicked == 1));
}

#[test]
fn a_panic_carried_on_with_resume_unwind_has_the_original_payload() {
    let svc = service("payload-resume");
    let handle = svc.io().submit(|| panic_any(SmtpFailure(421))).unwrap();
    let error = handle.join_timeout(GUARD).ok().unwrap().unwrap_err();
    let caught = catch_unwind(move || match error {
        TaskError::Panicked(panic) => panic.resume(),
        other => panic!("{other:?}"),
    })
    .unwrap_err();
    assert_eq!(
        caught.downcast_ref::<SmtpFailure>(),
        Some(&SmtpFailure(421))
    );
}

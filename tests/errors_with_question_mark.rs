//! Errors work with `?` in application code: `anyhow::Result` and `Box<dyn Error + Send + Sync>`
//! take a refusal whatever its closure captures (a `Cell` is not `Sync`), and a refusal that went
//! through `?` still gives its closure back.

use std::cell::Cell;
use std::error::Error;

use uberpool::{RejectKind, SchedulerService};

/// The function a new user writes first, exactly as the crate page shows it.
fn send(service: &uberpool::SchedulerService) -> anyhow::Result<u32> {
    let c = std::cell::Cell::new(7);
    let handle = service.io().submit(move || c.get())?;
    Ok(handle.join()?)
}

#[test]
fn a_submit_and_a_join_go_through_question_mark_into_anyhow() {
    let service = SchedulerService::builder()
        .name("first-hour")
        .build()
        .unwrap();
    assert_eq!(send(&service).unwrap(), 7);
    service.shutdown();
}

#[test]
fn a_refusal_goes_through_question_mark_and_still_gives_its_closure_back() {
    let service = SchedulerService::builder()
        .name("refusing")
        .build()
        .unwrap();
    let io = service.io();
    service.shutdown();

    fn submit_after_shutdown(
        io: &uberpool::Scheduler,
    ) -> Result<(), Box<dyn Error + Send + Sync + 'static>> {
        let c = Cell::new(3);
        io.execute(move || {
            c.set(c.get() + 1);
        })?;
        Ok(())
    }
    let error = submit_after_shutdown(&io).expect_err("a shut-down service refuses");
    assert!(error.to_string().contains("shut"), "{error}");

    // Without `?`, the refusal hands the closure back to run it elsewhere.
    let c = Cell::new(3);
    let refused = io.submit(move || c.get() * 2).expect_err("refused");
    assert_eq!(refused.kind(), RejectKind::Shutdown);
    let task = refused.into_inner();
    assert_eq!(task(), 6);
}

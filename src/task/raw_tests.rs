//! Unit tests of the job and cell memory (`raw.rs`), run under Miri too.

use super::*;

#[test]
fn a_job_is_one_pointer_wide() {
    assert_eq!(size_of::<Job>(), size_of::<usize>());
    assert_eq!(size_of::<Option<Job>>(), size_of::<usize>());
}

#[test]
fn dropping_an_unrun_job_drops_its_closure_once() {
    let witness = std::sync::Arc::new(());
    let held = witness.clone();
    let job = Job::new(super::super::PlainJob(move || drop(held), ()));
    assert_eq!(std::sync::Arc::strong_count(&witness), 2);
    drop(job);
    assert_eq!(std::sync::Arc::strong_count(&witness), 1);

    let held = witness.clone();
    let (job, cell) = Job::with_cell(move || drop(held), ());
    drop(job);
    assert_eq!(std::sync::Arc::strong_count(&witness), 1);
    assert!(cell.state.load().is_cancelled() && cell.state.load().is_complete());
}

#[test]
fn the_block_outlives_whichever_side_lets_go_first() {
    let (job, cell) = Job::with_cell(|| String::from("kept"), ());
    drop(cell);
    assert!(matches!(job.run(), RunOutcome::Completed));

    let (job, cell) = Job::with_cell(|| String::from("kept"), ());
    assert!(matches!(job.run(), RunOutcome::Completed));
    assert_eq!(
        cell.slot.lock().outcome.take(),
        Some(Ok(String::from("kept")))
    );
}

#[test]
fn an_erased_closure_borrows_the_stack_and_the_scope_waits_for_it() {
    let mut counts = [0u32; 4];
    let result = ScopeEraser::with_scope(|eraser| {
        let workers: Vec<_> = counts
            .iter_mut()
            .enumerate()
            .map(|(n, slot)| {
                let work = eraser.erase(move || {
                    *slot += n as u32 + 1;
                });
                std::thread::spawn(work)
            })
            .collect();
        drop(workers); // not joined: `with_scope` waits for the closures themselves
        "done"
    });
    assert_eq!(result.unwrap(), "done");
    assert_eq!(counts, [1, 2, 3, 4]);
}

#[test]
fn an_erased_closure_dropped_unrun_releases_the_scope() {
    let value = String::from("borrowed");
    let result = ScopeEraser::with_scope(|eraser| {
        let work = eraser.erase(|| value.len());
        std::thread::spawn(move || drop(work)).join().unwrap();
    });
    assert!(result.is_ok());
}

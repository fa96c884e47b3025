//! loom models of the admission/wake protocol and of shutdown.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`. Pools here are tiny (one
//! or two threads) so the models stay exhaustive within loom's default preemption bound.

use std::time::Duration;

use super::ThreadPool;
use crate::loom::{Arc, AtomicUsize, Ordering};

fn model(f: impl Fn() + Sync + Send + 'static) {
    crate::loom::model(2, f);
}

/// A task admitted to an idle (possibly asleep) worker is run: no lost wake-up.
#[test]
fn loom_hand_off_wakes_the_idle_worker() {
    model(|| {
        let pool = ThreadPool::builder().core_size(1).build().unwrap();
        let handle = pool.submit(|| 7).unwrap();
        assert_eq!(handle.join(), Ok(7));
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!((report.completed, report.cancelled), (1, 0));
    });
}

/// Two queued tasks on one worker both run, and shutdown waits for them.
#[test]
fn loom_queued_tasks_all_run_before_shutdown_completes() {
    model(|| {
        let pool = ThreadPool::builder()
            .core_size(1)
            .queue_size(2)
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let ran = ran.clone();
            pool.execute(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        assert_eq!(report.completed, 2);
        assert!(pool.is_terminated());
    });
}

/// A submission racing with shutdown is either refused or accounted for, never lost.
#[test]
fn loom_submit_racing_shutdown_is_refused_or_accounted() {
    model(|| {
        let pool = Arc::new(
            ThreadPool::builder()
                .core_size(1)
                .queue_size(1)
                .build()
                .unwrap(),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let pool = pool.clone();
            let ran = ran.clone();
            crate::loom::thread::spawn(move || {
                pool.execute(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .is_ok()
            })
        };
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        let accepted = submitter.join().unwrap();
        // the worker may still be finishing when the submitter was late; wait for the end
        let after = pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!(after.accepted(), u64::from(accepted));
        assert_eq!(after.completed, ran.load(Ordering::SeqCst) as u64);
        assert!(report.accepted() <= after.accepted());
    });
}

/// A task submitted from a pool thread to its own pool goes to the local deque and is run.
#[test]
fn loom_local_submission_is_run() {
    model(|| {
        let pool = Arc::new(
            ThreadPool::builder()
                .core_size(1)
                .queue_size(1)
                .build()
                .unwrap(),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        let (p, r) = (pool.clone(), ran.clone());
        let outer = pool
            .submit(move || {
                let r2 = r.clone();
                p.execute(move || {
                    r2.fetch_add(1, Ordering::SeqCst);
                })
                .is_ok()
            })
            .unwrap();
        assert_eq!(outer.join(), Ok(true));
        pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    });
}

/// A caller blocked on a full hand-off pool is woken when the worker frees up: no lost signal.
#[test]
fn loom_waiting_submitter_is_admitted_when_a_worker_frees() {
    model(|| {
        let pool = ThreadPool::builder().core_size(1).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let first = {
            let ran = ran.clone();
            pool.execute(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        assert!(first.is_ok(), "the prestarted worker is counted idle");
        let second = {
            let ran = ran.clone();
            crate::task::PlainJob::job(
                move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                },
                (),
            )
        };
        assert!(super::Shared::admit_waiting(pool.shared(), second, None, false).is_ok());
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!(report.completed, 2);
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    });
}

/// A task handed off as a worker's tail (`admit_as_tail`: the worker counts itself idle for it)
/// is run although the hand-off pool has no other thread, and shutdown, racing with it, accounts
/// for both tasks. (With two workers the model exceeds loom's branch limit: the second worker
/// spins on the pending count while the push is in flight.)
#[test]
fn loom_tail_hand_off_is_run() {
    model(|| {
        let pool = ThreadPool::builder().core_size(1).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let (shared, r) = (pool.shared().clone(), ran.clone());
        let outer = pool
            .submit(move || {
                let r2 = r.clone();
                let tail = crate::task::PlainJob::job(
                    move || {
                        r2.fetch_add(1, Ordering::SeqCst);
                    },
                    (),
                );
                super::Shared::admit_as_tail(&shared, tail).is_ok()
            })
            .unwrap();
        assert_eq!(outer.join(), Ok(true));
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!((report.completed, report.cancelled), (2, 0));
        // the worker counted itself idle once, and left idle once
        let state = pool.shared().state.load();
        assert_eq!((state.idle(), state.pending()), (0, 0));
    });
}

/// A sleeper whose keep-alive elapses races a waker that may already have popped it off the sleep
/// list: the wake counts for exactly that sleeper (it reports `Notified`, not `TimedOut`, so it
/// neither retires on a wake meant for it nor leaves the list twice), and `sleeping` ends at 0.
/// The zero keep-alive times out at once under loom (releasing and re-taking the lock). Fails when
/// a timed-out sleeper reports `TimedOut` although a waker already took it off the list.
#[test]
fn loom_timed_out_sleeper_racing_a_waker() {
    use super::sleep::{Sleep, Sleeper, Wake};
    use super::state::State;
    model(|| {
        let state = Arc::new(State::new());
        state.add_idle(1);
        let sleep = Arc::new(Sleep::new());
        let sleeper = {
            let (state, sleep) = (state.clone(), sleep.clone());
            crate::loom::thread::spawn(move || {
                let me = Arc::new(Sleeper::default());
                sleep.sleep(&state, &me, Duration::ZERO)
            })
        };
        let woke = state.try_enqueue(0).unwrap().needs_wake() && sleep.wake_one(&state);
        let wake = sleeper.join().unwrap();
        assert_eq!(
            woke,
            wake == Wake::Notified,
            "woke {woke}, sleeper {wake:?}"
        );
        let end = state.load();
        assert_eq!((end.sleeping(), end.idle(), end.pending()), (0, 1, 1));
    });
}

/// A spawn handler accepts two threads and never runs them: the core thread's spawn is dropped
/// later by the test, the growth thread's by another thread, racing the handler's return. Each
/// loss gives its slot back exactly once; the task admitted on the strength of the lost core
/// thread, and the growth thread's own task, are cancelled (at the loss, or by the shutdown that
/// finds no thread left); the report adds up. Fails when a spawn dropped after the handler
/// returned keeps its slot (shutdown then waits forever: loom reports the deadlock).
#[test]
fn loom_spawns_dropped_unrun_give_their_slots_back() {
    use crate::loom::Mutex;
    use crate::task::TaskError;
    model(|| {
        let kept: Arc<Mutex<Vec<super::ThreadSpawn>>> = Arc::new(Mutex::new(Vec::new()));
        let droppers = Arc::new(Mutex::new(Vec::new()));
        let (k, d) = (kept.clone(), droppers.clone());
        let calls = AtomicUsize::new(0);
        let pool = ThreadPool::builder()
            .core_size(1)
            .max_size(2)
            .spawn_handler(move |spawn| {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    k.lock().push(spawn); // the core thread: promised, never run
                } else {
                    // the growth thread: dropped on another thread, maybe before we return
                    d.lock()
                        .push(crate::loom::thread::spawn(move || drop(spawn)));
                }
                Ok(())
            })
            .build()
            .unwrap();
        // admitted on the strength of the (phantom) idle core thread
        let queued = pool.submit(|| 1).unwrap();
        // no idle thread left: the pool grows, and the handler hands the spawn away
        let grown = pool.submit(|| 2);
        for dropper in droppers.lock().drain(..) {
            dropper.join().unwrap();
        }
        drop(kept.lock().pop());
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        assert!(!report.timed_out);
        assert_eq!(pool.shared().threads.load(Ordering::SeqCst), 0);
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        let accepted = match grown {
            Ok(handle) => {
                assert_eq!(handle.join(), Err(TaskError::Cancelled));
                2
            }
            Err(refused) => {
                assert_eq!(refused.kind(), crate::rejected::RejectKind::Busy);
                1
            }
        };
        assert_eq!(
            (report.completed, report.cancelled, report.still_running),
            (0, accepted, 0)
        );
        assert_eq!(pool.metrics().spawn_failures, 2);
    });
}

/// A task of pool A shuts down pool B while a task of B shuts down A: neither waits for the
/// other (a shutdown called from a pool thread does not wait for threads that wait inside a
/// shutdown). Fails without that rule: both waits are untimed under loom, which reports the
/// deadlock.
#[test]
fn loom_tasks_shutting_down_each_others_pools_do_not_deadlock() {
    model(|| {
        let a = Arc::new(ThreadPool::builder().core_size(1).build().unwrap());
        let b = Arc::new(ThreadPool::builder().core_size(1).build().unwrap());
        let on_a = {
            let b = b.clone();
            a.submit(move || b.shutdown_timeout(Duration::from_secs(60)).timed_out)
        };
        let on_b = {
            let a = a.clone();
            b.submit(move || a.shutdown_timeout(Duration::from_secs(60)).timed_out)
        };
        for handle in [on_a.ok(), on_b.ok()].into_iter().flatten() {
            assert_eq!(handle.join(), Ok(false));
        }
        let (ra, rb) = (
            a.shutdown_timeout(Duration::from_secs(60)),
            b.shutdown_timeout(Duration::from_secs(60)),
        );
        assert_eq!((ra.still_running, rb.still_running), (0, 0));
    });
}

/// A pool with a CPU limit of one: CPU work admitted while the one worker computes is queued
/// behind it, without a wake and without a new thread (`cpu.rs`), and is run when the worker is
/// done — whatever the interleaving of the admission with the worker finishing its task,
/// clearing its CPU mark and going to sleep. The second task's handle is joined before any
/// shutdown (which would wake every sleeper and hide a lost wake): a lost wake leaves the join
/// blocked forever, which loom reports as a deadlock.
#[test]
fn loom_cpu_work_queued_behind_the_computing_worker_is_run() {
    model(|| {
        let pool = ThreadPool::builder()
            .core_size(1)
            .max_size(2)
            .cpu_limit(1)
            .build()
            .unwrap();
        let (first, first_done) = crate::task::HandleJob::job(|| 1);
        assert!(super::Shared::admit_cpu(pool.shared(), first).is_ok());
        let (second, second_done) = crate::task::HandleJob::job(|| 2);
        assert!(super::Shared::admit_cpu(pool.shared(), second).is_ok());
        assert_eq!(second_done.join(), Ok(2));
        assert_eq!(first_done.join(), Ok(1));
        assert!(
            pool.shared().cpu.running() <= 2,
            "at most one mark per thread"
        );
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!((report.completed, report.cancelled), (2, 0));
    });
}

/// A submitter waiting for room in a full pool with a CPU limit (one thread, no queue, so no
/// room behind the computing worker either) is admitted once the worker frees: the claim and
/// idle signals still reach it. Fails as a deadlock when a signal is lost.
#[test]
fn loom_cpu_submitter_waiting_for_room_is_admitted() {
    model(|| {
        let pool = ThreadPool::builder()
            .core_size(1)
            .cpu_limit(1)
            .build()
            .unwrap();
        let (first, first_done) = crate::task::HandleJob::job(|| 1);
        assert!(super::Shared::admit_cpu(pool.shared(), first).is_ok());
        let (second, second_done) = crate::task::HandleJob::job(|| 2);
        assert!(super::Shared::admit_waiting(pool.shared(), second, None, true).is_ok());
        assert_eq!(second_done.join(), Ok(2));
        assert_eq!(first_done.join(), Ok(1));
        let report = pool.shutdown_timeout(Duration::from_secs(60));
        assert_eq!(report.completed, 2);
    });
}

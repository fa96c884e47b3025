//! Delayed, periodic and cron tasks on scheduler views, after Mule's
//! `DefaultSchedulerScheduleTestCase`, `DefaultSchedulerFixedDelayRepeatsTestCase` and
//! `DefaultSchedulerQuartzTestCase`, one behaviour per test.
//!
//! Sequencing uses channels and gates. "The closure was released" is observed as the
//! disconnection of a channel whose only sender the closure owns. Time appears only as loose
//! lower bounds and generous failure guards.

mod common;

use common::{GUARD, Gate, HighWater, PREFIX, block, service, wait_until};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use uberpool::chrono::Utc;
use uberpool::{
    MAX_DELAY, PoolsConfig, Resources, ScheduleErrorKind, SchedulerService, Strategy, TaskError,
};

/// DEDICATED, every pool one thread with no queue: one blocked task makes a pool full.
fn dedicated_ones(name: &str) -> SchedulerService {
    let mut text = format!("{PREFIX}SchedulerPoolStrategy={}\n", Strategy::Dedicated);
    for key in [
        "cpuLight.threadPool.size",
        "io.threadPool.coreSize",
        "io.threadPool.maxSize",
        "cpuIntensive.threadPool.size",
    ] {
        text.push_str(&format!("{PREFIX}{key}=1\n"));
    }
    for key in [
        "cpuLight.workQueue.size",
        "io.workQueue.size",
        "cpuIntensive.workQueue.size",
    ] {
        text.push_str(&format!("{PREFIX}{key}=0\n"));
    }
    let config = PoolsConfig::parse(&text, &Resources::new(2, 1 << 20)).expect("valid");
    SchedulerService::builder()
        .name(name)
        .config(config)
        .build()
        .expect("service starts")
}

/// `true` once every sender of `rx` is gone (the closure owning it was dropped), draining
/// messages on the way; panics after the guard.
fn released<T>(rx: &Receiver<T>) -> bool {
    let start = Instant::now();
    loop {
        match rx.recv_timeout(GUARD) {
            Ok(_) => assert!(start.elapsed() < GUARD, "still sending after the guard"),
            Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => return false,
        }
    }
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

// ---- one-shot delayed tasks --------------------------------------------------------------------

#[test]
fn a_delayed_task_runs_once_after_its_delay_on_a_pool_thread() {
    let svc = service("delay");
    let (tx, rx) = channel();
    let start = Instant::now();
    let handle = svc
        .io()
        .schedule(Duration::from_millis(50), move || {
            tx.send((start.elapsed(), thread_name())).unwrap()
        })
        .unwrap();
    let (elapsed, thread) = rx.recv_timeout(GUARD).expect("it runs");
    assert!(
        elapsed >= Duration::from_millis(50),
        "ran after {elapsed:?}"
    );
    assert!(
        thread.starts_with("delay.uber."),
        "ran on {thread}, not the timer"
    );
    assert!(
        released(&rx),
        "a one-shot closure is released after its run"
    );
    wait_until("the handle to report done", || handle.is_done());
    assert_eq!(handle.runs(), 1);
    assert!(!handle.is_cancelled());
    assert!(!handle.cancel(), "a finished task cannot be cancelled");
}

#[test]
fn a_zero_delay_is_offered_to_the_pool_before_schedule_returns() {
    let svc = service("zero");
    let submitted = |svc: &SchedulerService| svc.metrics().pools[0].submitted;
    let before = submitted(&svc);
    let (tx, rx) = channel();
    let _once = svc
        .cpu_light()
        .schedule(Duration::ZERO, move || tx.send(()).unwrap())
        .unwrap();
    assert_eq!(submitted(&svc), before + 1, "not left for the timer");
    rx.recv_timeout(GUARD).expect("it runs");
}

#[test]
fn an_absurd_delay_is_refused_and_the_closure_comes_back() {
    let svc = service("huge");
    let io = svc.io();
    let (tx, rx) = channel();
    for delay in [Duration::MAX, MAX_DELAY + Duration::from_secs(1)] {
        let tx = tx.clone();
        let refused = io
            .schedule(delay, move || tx.send(()).unwrap())
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            &ScheduleErrorKind::DelayTooLarge {
                delay,
                max: MAX_DELAY
            }
        );
        assert!(refused.to_string().contains("huge.io"), "{refused}");
        refused.into_inner()();
        rx.recv_timeout(GUARD).unwrap();
    }
    let refused = io
        .schedule_at_fixed_rate(Duration::ZERO, Duration::MAX, || ())
        .unwrap_err();
    assert!(matches!(
        refused.kind(),
        ScheduleErrorKind::DelayTooLarge { .. }
    ));
    let refused = io
        .schedule_with_fixed_delay(Duration::ZERO, Duration::ZERO, || ())
        .unwrap_err();
    assert_eq!(refused.kind(), &ScheduleErrorKind::ZeroPeriod);
    io.shutdown();
    assert!(io.is_terminated(), "nothing was left counted on the view");
}

#[test]
fn cancel_before_a_delayed_task_fires_releases_it_unrun() {
    let svc = service("cancel-before");
    let io = svc.io();
    let (tx, rx) = channel::<()>();
    let handle = io
        .schedule(Duration::from_secs(3600), move || tx.send(()).unwrap())
        .unwrap();
    assert!(handle.cancel());
    assert!(!handle.cancel(), "a second cancel does nothing");
    assert!(handle.is_cancelled() && handle.is_done());
    assert_eq!(handle.runs(), 0);
    assert!(
        released(&rx),
        "the closure is dropped, not kept until the hour is up"
    );
    io.shutdown();
    assert!(io.is_terminated());
}

#[test]
fn cancel_while_a_delayed_task_runs_returns_false_and_the_run_finishes() {
    let svc = service("cancel-during");
    let gate = Gate::new();
    let (started_tx, started_rx) = channel();
    let (done_tx, done_rx) = channel();
    let handle = {
        let gate = gate.clone();
        svc.io()
            .schedule(Duration::from_millis(1), move || {
                started_tx.send(()).unwrap();
                gate.wait();
                done_tx.send(()).unwrap();
            })
            .unwrap()
    };
    started_rx.recv_timeout(GUARD).unwrap();
    assert!(!handle.cancel(), "a running task cannot be cancelled");
    assert!(!handle.is_cancelled());
    gate.open();
    done_rx.recv_timeout(GUARD).expect("the run finishes");
    wait_until("done", || handle.is_done());
}

#[test]
fn shutdown_before_a_delayed_task_fires_still_runs_it() {
    let svc = service("shut-pending");
    let io = svc.io();
    let (tx, rx) = channel();
    let handle = io
        .schedule(Duration::from_millis(30), move || tx.send(()).unwrap())
        .unwrap();
    io.shutdown();
    assert!(
        !io.is_terminated(),
        "the pending delayed task is still counted"
    );
    assert!(
        io.schedule(Duration::ZERO, || ()).is_err(),
        "no new task after shutdown"
    );
    rx.recv_timeout(GUARD)
        .expect("accepted before shutdown, so it runs");
    wait_until("the view to terminate", || io.is_terminated());
    assert!(!handle.is_cancelled());
}

#[test]
fn shutdown_now_before_a_delayed_task_fires_cancels_and_reports_it() {
    let svc = service("shut-now-pending");
    let io = svc.io();
    let (tx, rx) = channel::<()>();
    let handle = io
        .schedule(Duration::from_secs(3600), move || tx.send(()).unwrap())
        .unwrap();
    assert_eq!(io.shutdown_now(), 1, "the pending delayed task is reported");
    assert!(handle.is_cancelled());
    assert!(released(&rx));
    assert!(io.is_terminated());
}

#[test]
fn shutdown_now_after_cancel_reports_nothing() {
    let svc = service("shut-now-cancelled");
    let io = svc.io();
    let handle = io.schedule(Duration::from_secs(3600), || ()).unwrap();
    assert!(handle.cancel());
    assert_eq!(io.shutdown_now(), 0);
}

#[test]
fn stop_waits_for_a_pending_delayed_task_then_terminates() {
    let svc = service("stop-pending");
    let io = svc.io();
    let (tx, rx) = channel();
    let _later = io
        .schedule(Duration::from_millis(20), move || tx.send(()).unwrap())
        .unwrap();
    assert!(io.stop(), "it ran within the stop timeout");
    rx.try_recv().expect("it ran before stop returned");
    assert!(io.is_terminated());
}

#[test]
fn service_shutdown_cancels_pending_delayed_tasks_and_reports_them() {
    let svc = service("svc-shut-pending");
    let (tx, rx) = channel::<()>();
    let delayed = svc
        .io()
        .schedule(Duration::from_secs(3600), move || tx.send(()).unwrap())
        .unwrap();
    let periodic = svc
        .cpu_light()
        .schedule_at_fixed_rate(Duration::from_secs(3600), Duration::from_secs(1), || ())
        .unwrap();
    let report = svc.shutdown();
    assert_eq!(
        report.cancelled, 1,
        "the delayed task; periodic ones are not tasks yet"
    );
    assert_eq!(report.accepted(), 1);
    assert!(delayed.is_cancelled() && periodic.is_cancelled());
    assert!(released(&rx));
    let refused = svc.io().schedule(Duration::ZERO, || ()).unwrap_err();
    assert_eq!(refused.kind(), &ScheduleErrorKind::Shutdown);
}

#[test]
fn a_delayed_task_meeting_a_busy_pool_is_retried_until_accepted() {
    let svc = dedicated_ones("busy-once");
    let io = svc.io();
    let gate = Gate::new();
    let blocker = block(&io, &gate);
    let (tx, rx) = channel();
    let handle = io
        .schedule(Duration::from_millis(1), move || {
            tx.send(thread_name()).unwrap()
        })
        .unwrap();
    // Refused at least twice: the first offer and a retry 10 ms later.
    wait_until("two refusals of the full io pool", || {
        svc.metrics()
            .pools
            .iter()
            .find(|m| m.name == "busy-once.io")
            .unwrap()
            .rejected
            >= 2
    });
    assert!(rx.try_recv().is_err(), "it cannot have run");
    assert!(!handle.is_done());
    gate.open();
    assert_eq!(rx.recv_timeout(GUARD).unwrap(), "busy-once.io.01");
    blocker.join().unwrap();
}

#[test]
fn the_timer_is_not_held_up_by_one_busy_pool() {
    // MULE-19943: a cron job stalled behind one busy pool.
    let svc = dedicated_ones("not-blocked");
    let gate = Gate::new();
    let blocker = block(&svc.io(), &gate);
    let stuck = svc.io().schedule(Duration::ZERO, || ()).unwrap();
    let (tx, rx) = channel();
    let ticker = svc
        .cpu_light()
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(5), move || {
            let _ = tx.send(());
        })
        .unwrap();
    for _ in 0..3 {
        rx.recv_timeout(GUARD)
            .expect("light ticks go on while io is full");
    }
    assert!(!stuck.is_done());
    ticker.cancel();
    gate.open();
    wait_until("the io task to run", || stuck.is_done());
    blocker.join().unwrap();
}

// ---- fixed rate ------------------------------------------------------------------------------

#[test]
fn fixed_rate_runs_repeatedly_no_faster_than_its_period() {
    let svc = service("rate");
    let (tx, rx) = channel();
    let start = Instant::now();
    let handle = svc
        .cpu_light()
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(20), move || {
            let _ = tx.send(Instant::now());
        })
        .unwrap();
    let mut fifth = start;
    for _ in 0..5 {
        fifth = rx.recv_timeout(GUARD).unwrap();
    }
    assert!(
        fifth - start >= Duration::from_millis(80),
        "{:?}",
        fifth - start
    );
    assert!(handle.cancel());
    assert!(handle.is_cancelled());
    drop(handle);
    assert!(released(&rx), "no run after cancel, nothing retained");
}

#[test]
fn a_fixed_rate_task_slower_than_its_period_neither_overlaps_nor_piles_up() {
    let svc = service("slow-rate");
    let period = Duration::from_millis(10);
    let high_water = HighWater::default();
    let (tx, rx) = channel();
    let start = Instant::now();
    let handle = {
        let high_water = high_water.clone();
        let mut first = true;
        svc.io()
            .schedule_at_fixed_rate(Duration::ZERO, period, move || {
                high_water.enter();
                if first {
                    first = false;
                    // The workload: one run covering several periods.
                    thread::sleep(period * 6);
                }
                high_water.leave();
                let _ = tx.send(());
            })
            .unwrap()
    };
    for _ in 0..4 {
        rx.recv_timeout(GUARD).unwrap();
    }
    let (runs, skipped) = (handle.runs(), handle.skipped_ticks());
    let ticks_so_far = (start.elapsed().as_nanos() / period.as_nanos()) as u64 + 1;
    handle.cancel();
    assert_eq!(high_water.peak(), 1, "runs never overlap");
    assert!(
        skipped >= 4,
        "the ticks during the slow run were skipped: {skipped}"
    );
    assert!(
        runs + skipped <= ticks_so_far,
        "no catch-up burst: {runs} runs + {skipped} skipped > {ticks_so_far} ticks"
    );
}

#[test]
fn fixed_rate_ticks_are_skipped_while_the_pool_is_busy_and_resume_after() {
    let svc = dedicated_ones("rate-busy");
    let light = svc.cpu_light();
    let gate = Gate::new();
    let blocker = block(&light, &gate);
    let (tx, rx) = channel();
    let handle = light
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(5), move || {
            let _ = tx.send(());
        })
        .unwrap();
    wait_until("skipped ticks", || handle.skipped_ticks() >= 3);
    assert_eq!(handle.runs(), 0);
    gate.open();
    rx.recv_timeout(GUARD).expect("the schedule resumes");
    rx.recv_timeout(GUARD).expect("and goes on");
    handle.cancel();
    blocker.join().unwrap();
}

#[test]
fn a_panicking_periodic_run_is_counted_and_the_schedule_continues() {
    let svc = service("panicky");
    let (tx, rx) = channel();
    let mut run = 0;
    let handle = svc
        .cpu_light()
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(5), move || {
            run += 1;
            if run == 1 {
                panic!("bad template");
            }
            let _ = tx.send(run);
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(GUARD).unwrap(),
        2,
        "the run after the panic"
    );
    assert_eq!(handle.panics(), 1);
    assert!(!handle.is_cancelled());
    handle.cancel();
    wait_until("the pool to count it too", || {
        svc.metrics().pools[0].panicked == 1
    });
}

#[test]
fn cancel_between_fixed_rate_runs_stops_further_runs() {
    let svc = service("cancel-between");
    let (tx, rx) = channel();
    let handle = svc
        .io()
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(50), move || {
            let _ = tx.send(());
        })
        .unwrap();
    rx.recv_timeout(GUARD).unwrap();
    assert!(handle.cancel());
    drop(handle);
    assert!(
        released(&rx),
        "the closure is dropped: no run is armed any more"
    );
}

#[test]
fn cancel_during_a_fixed_rate_run_lets_it_finish_and_stops_the_schedule() {
    let svc = service("cancel-rate-during");
    let gate = Gate::new();
    let (started_tx, started_rx) = channel();
    let handle = {
        let gate = gate.clone();
        svc.io()
            .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(1), move || {
                let _ = started_tx.send(());
                gate.wait();
            })
            .unwrap()
    };
    started_rx.recv_timeout(GUARD).unwrap();
    wait_until("ticks during the run", || handle.skipped_ticks() >= 2);
    assert_eq!(
        handle.runs(),
        1,
        "ticks during a run are skipped, never run alongside it"
    );
    assert!(handle.cancel());
    gate.open();
    drop(handle);
    assert!(released(&started_rx), "no run after the one in progress");
}

// ---- fixed delay -----------------------------------------------------------------------------

#[test]
fn fixed_delay_counts_from_the_end_of_the_previous_run() {
    let svc = service("fixed-delay");
    let delay = Duration::from_millis(30);
    let (tx, rx) = channel();
    let handle = svc
        .io()
        .schedule_with_fixed_delay(Duration::ZERO, delay, move || {
            let started = Instant::now();
            thread::sleep(Duration::from_millis(20)); // the workload
            let _ = tx.send((started, Instant::now()));
        })
        .unwrap();
    let runs: Vec<(Instant, Instant)> = (0..3).map(|_| rx.recv_timeout(GUARD).unwrap()).collect();
    handle.cancel();
    for pair in runs.windows(2) {
        let gap = pair[1].0 - pair[0].1;
        assert!(
            gap >= delay,
            "the next run started {gap:?} after the previous ended"
        );
    }
}

#[test]
fn cancel_during_a_fixed_delay_run_lets_it_finish_and_stops_the_schedule() {
    let svc = service("cancel-delay-during");
    let gate = Gate::new();
    let (started_tx, started_rx) = channel();
    let handle = {
        let gate = gate.clone();
        svc.io()
            .schedule_with_fixed_delay(Duration::ZERO, Duration::from_millis(1), move || {
                let _ = started_tx.send(());
                gate.wait();
            })
            .unwrap()
    };
    started_rx.recv_timeout(GUARD).unwrap();
    assert!(handle.cancel());
    gate.open();
    drop(handle);
    assert!(released(&started_rx), "no run after the one in progress");
}

#[test]
fn fixed_delay_is_re_armed_while_the_pool_is_busy() {
    let svc = dedicated_ones("delay-busy");
    let io = svc.io();
    let gate = Gate::new();
    let blocker = block(&io, &gate);
    let (tx, rx) = channel();
    let handle = io
        .schedule_with_fixed_delay(Duration::ZERO, Duration::from_millis(5), move || {
            let _ = tx.send(());
        })
        .unwrap();
    wait_until("refused attempts", || handle.skipped_ticks() >= 2);
    assert_eq!(handle.runs(), 0);
    gate.open();
    rx.recv_timeout(GUARD)
        .expect("re-armed, it runs once the pool frees");
    handle.cancel();
    blocker.join().unwrap();
}

#[test]
fn cancel_between_fixed_delay_runs_stops_further_runs() {
    let svc = service("cancel-delay-between");
    let (tx, rx) = channel();
    let handle = svc
        .io()
        .schedule_with_fixed_delay(Duration::ZERO, Duration::from_millis(50), move || {
            let _ = tx.send(());
        })
        .unwrap();
    rx.recv_timeout(GUARD).unwrap();
    assert!(handle.cancel());
    drop(handle);
    assert!(
        released(&rx),
        "the closure is dropped: no run is armed any more"
    );
}

// ---- view lifecycle --------------------------------------------------------------------------

#[test]
fn view_shutdown_and_stop_cancel_periodic_tasks() {
    let svc = service("view-periodic");
    for stop in [false, true] {
        let view = svc.io();
        let (tx, rx) = channel();
        let handle = view
            .schedule_with_fixed_delay(Duration::ZERO, Duration::from_millis(2), move || {
                let _ = tx.send(());
            })
            .unwrap();
        rx.recv_timeout(GUARD).unwrap();
        if stop {
            assert!(view.stop());
        } else {
            view.shutdown();
        }
        assert!(handle.is_cancelled());
        drop(handle);
        assert!(released(&rx), "no re-arming after shutdown");
        wait_until("the view to terminate", || view.is_terminated());
    }
}

#[test]
fn another_view_over_the_same_pool_keeps_its_schedules() {
    let svc = service("other-view");
    let (tx, rx) = channel();
    let kept = svc
        .io()
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(2), move || {
            let _ = tx.send(());
        })
        .unwrap();
    let other = svc.io();
    let gone = other
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(2), || ())
        .unwrap();
    other.shutdown_now();
    assert!(gone.is_cancelled());
    assert!(!kept.is_cancelled());
    rx.recv_timeout(GUARD).unwrap();
    rx.recv_timeout(GUARD).unwrap();
    kept.cancel();
}

#[test]
fn schedule_on_a_shut_down_view_is_refused_with_the_closure() {
    let svc = service("refused");
    let io = svc.io();
    io.shutdown();
    let (tx, rx) = channel();
    let refused = io
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_secs(1), move || {
            tx.send(1).unwrap()
        })
        .unwrap_err();
    assert_eq!(refused.kind(), &ScheduleErrorKind::Shutdown);
    let mut f = refused.into_inner();
    f();
    assert_eq!(rx.recv().unwrap(), 1);
}

// ---- cron ------------------------------------------------------------------------------------

#[test]
fn a_cron_task_repeats_on_its_seconds_field() {
    let svc = service("cron");
    let (tx, rx) = channel();
    let scheduled_at = Utc::now();
    let handle = svc
        .io()
        .schedule_cron_in("* * * * * *", Utc, move || {
            let _ = tx.send(Utc::now());
        })
        .unwrap();
    let first = rx.recv_timeout(GUARD).unwrap();
    let second = rx.recv_timeout(GUARD).unwrap();
    handle.cancel();
    // The first tick is the next whole second after scheduling, the second one a second later.
    assert!(first > scheduled_at);
    assert!(second - scheduled_at > uberpool::chrono::Duration::seconds(1));
    assert!(handle.runs() >= 2);
}

#[test]
fn cancel_before_a_cron_task_fires_releases_it_unrun() {
    let svc = service("cron-cancel");
    let (tx, rx) = channel::<()>();
    let handle = svc
        .cpu_light()
        .schedule_cron("0 0 2 * * *", move || tx.send(()).unwrap())
        .unwrap();
    assert!(handle.cancel());
    assert!(handle.is_cancelled());
    drop(handle);
    assert!(released(&rx));
}

#[test]
fn cancel_during_a_cron_run_lets_it_finish_and_stops_the_schedule() {
    let svc = service("cron-during");
    let gate = Gate::new();
    let (tx, rx) = channel();
    let handle = {
        let gate = gate.clone();
        svc.io()
            .schedule_cron_in("* * * * * *", Utc, move || {
                let _ = tx.send(());
                gate.wait();
            })
            .unwrap()
    };
    rx.recv_timeout(GUARD).unwrap();
    assert!(handle.cancel());
    gate.open();
    drop(handle);
    assert!(released(&rx));
}

#[test]
fn a_cron_run_longer_than_its_interval_never_overlaps_and_the_next_starts_after_it() {
    let svc = service("cron-overrun");
    let high_water = HighWater::default();
    let (tx, rx) = channel();
    let handle = {
        let high_water = high_water.clone();
        let mut first = true;
        svc.io()
            .schedule_cron_in("* * * * * *", Utc, move || {
                let started = Instant::now();
                high_water.enter();
                if std::mem::take(&mut first) {
                    thread::sleep(Duration::from_millis(1500)); // the workload: over a tick
                }
                high_water.leave();
                let _ = tx.send((started, Instant::now()));
            })
            .unwrap()
    };
    let (_, first_end) = rx.recv_timeout(GUARD).unwrap();
    let (second_start, _) = rx.recv_timeout(GUARD).unwrap();
    handle.cancel();
    assert!(
        second_start >= first_end,
        "the next run starts after the long one ends"
    );
    assert_eq!(high_water.peak(), 1);
    assert!(
        handle.skipped_ticks() >= 1,
        "the tick during the long run was skipped"
    );
}

#[test]
fn invalid_and_never_firing_cron_expressions_are_refused_with_the_closure() {
    let svc = service("cron-bad");
    let io = svc.io();
    let refused = io.schedule_cron("61 * * * * *", || ()).unwrap_err();
    match refused.kind() {
        ScheduleErrorKind::InvalidCron { expression, .. } => assert_eq!(expression, "61 * * * * *"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(refused.to_string().contains("'61 * * * * *'"), "{refused}");
    let refused = io.schedule_cron("0 0 0 1 1 * 2001", || ()).unwrap_err();
    assert!(matches!(
        refused.kind(),
        ScheduleErrorKind::NeverFires { .. }
    ));
    io.shutdown();
    assert!(io.is_terminated());
}

#[test]
fn a_cron_tick_on_a_busy_pool_is_skipped_and_counted() {
    let svc = dedicated_ones("cron-busy");
    let light = svc.cpu_light();
    let gate = Gate::new();
    let blocker = block(&light, &gate);
    let handle = light.schedule_cron_in("* * * * * *", Utc, || ()).unwrap();
    wait_until("a skipped cron tick", || handle.skipped_ticks() >= 1);
    assert_eq!(handle.runs(), 0);
    handle.cancel();
    gate.open();
    blocker.join().unwrap();
}

#[test]
fn the_timer_thread_is_named_after_the_service() {
    let svc = service("named");
    let (tx, rx) = channel();
    // The first tick is dispatched by the timer thread; the run happens on a pool thread.
    let handle = svc
        .cpu_light()
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_secs(3600), move || {
            tx.send(thread_name()).unwrap()
        })
        .unwrap();
    let ran_on = rx.recv_timeout(GUARD).unwrap();
    assert!(
        ran_on.starts_with("named.uber."),
        "user code never runs on the timer: {ran_on}"
    );
    handle.cancel();
    if let Some(names) = thread_names() {
        assert!(names.iter().any(|n| n == "named.timer"), "{names:?}");
    }
}

/// The names of this process's threads, where the OS shows them (Linux).
fn thread_names() -> Option<Vec<String>> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        dir.filter_map(|entry| {
            std::fs::read_to_string(entry.ok()?.path().join("comm"))
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .collect(),
    )
}

// ---- values and ends -------------------------------------------------------------------------

#[test]
fn a_delayed_task_yields_its_value_to_its_handle() {
    let svc = service("delayed-value");
    let io = svc.io();
    let later = io.schedule(Duration::from_millis(2), || "250 OK").unwrap();
    assert_eq!(later.join_timeout(GUARD).ok(), Some(Ok("250 OK")));
    let now = io.schedule(Duration::ZERO, || 7).unwrap();
    assert_eq!(now.join_timeout(GUARD).ok(), Some(Ok(7)));
}

#[test]
fn a_delayed_task_that_panics_or_is_cancelled_says_so_through_its_handle() {
    let svc = service("delayed-errors");
    let io = svc.io();
    let panicking = io
        .schedule(Duration::ZERO, || -> u32 { panic!("bounce") })
        .unwrap();
    match panicking.join_timeout(GUARD).ok() {
        Some(Err(TaskError::Panicked(message))) => assert!(message.contains("bounce")),
        other => panic!("expected a panic, got {other:?}"),
    }
    let cancelled = io.schedule(Duration::from_secs(3600), || 1).unwrap();
    assert!(cancelled.cancel());
    assert_eq!(
        cancelled.join_timeout(GUARD).ok(),
        Some(Err(TaskError::Cancelled))
    );
    let shut_down = io.schedule(Duration::from_secs(3600), || 1).unwrap();
    svc.shutdown();
    assert_eq!(
        shut_down.join_timeout(GUARD).ok(),
        Some(Err(TaskError::Cancelled))
    );
}

#[test]
fn a_delayed_value_can_be_awaited_from_an_async_task() {
    let svc = service("delayed-await");
    let io = svc.io();
    let awaited = svc
        .cpu_light()
        .spawn_async(async move {
            let first = io.schedule(Duration::from_millis(1), || 20).unwrap().await;
            let second = io.schedule(Duration::ZERO, || 22).unwrap().await;
            first.unwrap() + second.unwrap()
        })
        .unwrap();
    assert_eq!(awaited.join_timeout(GUARD).ok(), Some(Ok(42)));
}

#[test]
fn a_periodic_tasks_handle_resolves_when_the_schedule_ends() {
    let svc = service("periodic-end");
    let light = svc.cpu_light();
    let (tx, ticks) = channel();
    let ticker = light
        .schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(1), move || {
            let _ = tx.send(());
        })
        .unwrap();
    ticks.recv_timeout(GUARD).unwrap();
    let ticker = ticker
        .join_timeout(Duration::ZERO)
        .expect_err("a running schedule has not ended");
    assert!(ticker.cancel());
    assert_eq!(ticker.join_timeout(GUARD).ok(), Some(Ok(())));
    let poller = light
        .schedule_with_fixed_delay(Duration::from_secs(3600), Duration::from_secs(1), || ())
        .unwrap();
    svc.shutdown();
    assert_eq!(
        poller.join_timeout(GUARD).ok(),
        Some(Ok(())),
        "ended by the shutdown"
    );
}

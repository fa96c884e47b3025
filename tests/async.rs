//! `TaskHandle` as a future and `Scheduler::spawn_async`.

use std::time::Duration;

use uberpool::{
    PoolsConfig, RejectKind, Resources, SchedulerService, TaskClass, TaskError, current_class,
};

const GUARD: Duration = Duration::from_secs(20);

fn dedicated() -> SchedulerService {
    let config = PoolsConfig::parse(
        "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n",
        &Resources::new(2, 1 << 20),
    )
    .unwrap();
    SchedulerService::builder()
        .name("async")
        .config(config)
        .build()
        .unwrap()
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

#[test]
fn a_spawned_future_awaits_io_work_and_continues_on_its_own_scheduler() {
    let service = dedicated();
    let (light, io) = (service.cpu_light(), service.io());
    let handle = light
        .spawn_async(async move {
            let before = (current_class(), thread_name());
            let fetched = io
                .submit(|| (current_class(), thread_name()))
                .unwrap()
                .await
                .unwrap();
            let after = (current_class(), thread_name());
            (before, fetched, after)
        })
        .unwrap();
    let (before, fetched, after) = handle.join_timeout(GUARD).ok().unwrap().unwrap();
    assert_eq!(before.0, Some(TaskClass::CpuLight));
    assert!(before.1.starts_with("async.cpuLight."), "{}", before.1);
    assert_eq!(fetched.0, Some(TaskClass::Io));
    assert!(fetched.1.starts_with("async.io."), "{}", fetched.1);
    assert_eq!(
        after.0,
        Some(TaskClass::CpuLight),
        "the continuation is CPU_LIGHT"
    );
    assert!(after.1.starts_with("async.cpuLight."), "{}", after.1);
}

#[test]
fn a_future_woken_many_times_completes() {
    let service = dedicated();
    let (light, io) = (service.cpu_light(), service.io());
    let handle = light
        .spawn_async(async move {
            let mut sum = 0u64;
            for i in 0..200u64 {
                sum += io.submit(move || i).unwrap().await.unwrap();
            }
            sum
        })
        .unwrap();
    assert_eq!(handle.join_timeout(GUARD).ok(), Some(Ok(199 * 200 / 2)));
}

#[test]
fn a_panicking_future_reports_the_panic() {
    let service = dedicated();
    let handle = service
        .cpu_light()
        .spawn_async(async { panic!("bad continuation") })
        .unwrap();
    let outcome: Result<(), TaskError> = handle.join_timeout(GUARD).ok().unwrap();
    assert_eq!(outcome, Err(TaskError::Panicked("bad continuation".into())));
}

#[test]
fn spawning_on_a_shut_down_scheduler_gives_the_future_back() {
    let service = dedicated();
    let light = service.cpu_light();
    light.shutdown();
    let refused = light.spawn_async(async { 5 }).unwrap_err();
    assert_eq!(refused.kind(), RejectKind::Shutdown);
    // the future is intact: run it on another scheduler
    let again = service
        .cpu_light()
        .spawn_async(refused.into_inner())
        .unwrap();
    assert_eq!(again.join_timeout(GUARD).ok(), Some(Ok(5)));
}

#[test]
fn a_pending_future_is_cancelled_when_the_service_shuts_down() {
    let service = dedicated();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let io = service.io();
    let blocked = io
        .submit(move || {
            started_tx.send(()).unwrap();
            let _ = rx.recv_timeout(GUARD);
        })
        .unwrap();
    started.recv_timeout(GUARD).unwrap();
    let handle = service.cpu_light().spawn_async(blocked).unwrap();
    // the future is parked on the blocked IO task; the service goes away meanwhile
    let report = service.shutdown_timeout(Duration::ZERO);
    assert!(report.still_running >= 1);
    tx.send(()).unwrap();
    // the IO task finishes and wakes the future, whose poll the shut-down pool refuses
    assert_eq!(
        handle.join_timeout(GUARD).ok(),
        Some(Err(TaskError::Cancelled))
    );
}

/// A future that is pending until its flag is set, and hands its waker out.
struct Parked {
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    waker: std::sync::mpsc::Sender<std::task::Waker>,
}

impl std::future::Future for Parked {
    type Output = &'static str;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<&'static str> {
        if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
            return std::task::Poll::Ready("woken");
        }
        let _ = self.waker.send(cx.waker().clone());
        std::task::Poll::Pending
    }
}

#[test]
fn a_wake_never_waits_for_room_on_the_waking_thread() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};

    let service = SchedulerService::builder().name("wake").build().unwrap();
    let gated = service
        .scheduler_with(
            TaskClass::Io,
            uberpool::SchedulerConfig::new().max_concurrent_tasks(1),
        )
        .unwrap();
    // The future polls once (taking and giving back the gate's one slot) and hands its waker out.
    let ready = Arc::new(AtomicBool::new(false));
    let (waker_tx, waker_rx) = mpsc::channel();
    let handle = gated
        .spawn_async(Parked {
            ready: ready.clone(),
            waker: waker_tx,
        })
        .unwrap();
    let waker = waker_rx.recv_timeout(GUARD).expect("first poll");
    // A task fills the gate until released.
    let (release, released) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let blocker = gated
        .submit(move || {
            started_tx.send(()).unwrap();
            let _ = released.recv();
        })
        .unwrap();
    started.recv_timeout(GUARD).expect("the blocker runs");

    // Wake from a thread outside the service while the gate is full: the wake must return at
    // once (the next poll is retried from the timer), not wait for the slot.
    ready.store(true, Ordering::SeqCst);
    let (woke_tx, woke) = mpsc::channel();
    std::thread::spawn(move || {
        waker.wake();
        woke_tx.send(()).unwrap();
    });
    let returned = woke.recv_timeout(GUARD);
    release.send(()).unwrap();
    assert!(
        returned.is_ok(),
        "the waking thread waited for the gate's slot"
    );
    blocker.join().unwrap();
    assert_eq!(handle.join(), Ok("woken"));
    service.shutdown();
}

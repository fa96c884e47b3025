//! The service's own unit tests: what a service does when a part it relies on fails.

use std::time::Duration;

use crate::schedule::ScheduleErrorKind;
use crate::timer::REFUSE_START;

#[test]
#[cfg_attr(
    miri,
    ignore = "a service detects the machine's resources in /proc, which Miri's isolation forbids"
)]
fn a_delayed_task_the_timer_cannot_take_comes_back_as_timer_unavailable() {
    let service = super::SchedulerService::builder()
        .name("no-timer")
        .build()
        .unwrap();
    REFUSE_START.with(|r| r.set(true));
    let refused = service.io().schedule(Duration::from_millis(1), || 5);
    REFUSE_START.with(|r| r.set(false));
    let refused = refused.expect_err("no timer thread, no delayed task");
    assert_eq!(*refused.kind(), ScheduleErrorKind::TimerUnavailable);
    assert_eq!(refused.into_inner()(), 5, "the closure comes back");
    let later = service.io().schedule(Duration::ZERO, || 6).unwrap();
    assert_eq!(later.join().unwrap(), 6);
    service.shutdown();
}

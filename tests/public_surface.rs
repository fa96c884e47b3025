//! The public surface: every type that appears in a public signature is reachable from the crate
//! root, and the service's constructors share one error type.

use uberpool::{
    BuildError, PoolKind, PoolMetrics, ScheduleError, ScheduleErrorKind, ScheduledHandle,
    SchedulerError, SchedulerService, ServiceError, ServiceMetrics, ShutdownReport, ThreadSpawn,
    ThrottleStatus,
};

/// Names a type, so that the test fails to compile when it is not reachable.
fn reachable<T: ?Sized>() -> &'static str {
    std::any::type_name::<T>()
}

#[test]
fn types_in_public_signatures_are_reachable_from_the_root() {
    let names = [
        reachable::<BuildError>(),
        reachable::<PoolKind>(),
        reachable::<PoolMetrics>(),
        reachable::<ScheduleError<fn()>>(),
        reachable::<ScheduleErrorKind>(),
        reachable::<ScheduledHandle>(),
        reachable::<SchedulerError>(),
        reachable::<ServiceError>(),
        reachable::<ServiceMetrics>(),
        reachable::<ShutdownReport>(),
        reachable::<ThreadSpawn>(),
        reachable::<ThrottleStatus>(),
    ];
    assert!(names.iter().all(|name| name.starts_with("uberpool::")));
}

#[test]
fn every_service_constructor_fails_with_service_error() {
    let from_file: fn(&str) -> Result<SchedulerService, ServiceError> =
        |path| SchedulerService::from_conf_file(path);
    let built: fn() -> Result<SchedulerService, ServiceError> =
        || SchedulerService::builder().build();
    let missing = from_file("/nonexistent/scheduler-pools.conf").unwrap_err();
    assert!(matches!(missing, ServiceError::Config(_)), "{missing}");
    built().expect("the defaults build").shutdown();
}

#[test]
fn pool_metrics_are_found_by_kind_and_class_without_names() {
    let service = SchedulerService::builder().build().unwrap();
    let metrics = service.metrics();
    assert_eq!(
        metrics.pool(PoolKind::Uber).map(|p| p.kind),
        Some(PoolKind::Uber)
    );
    assert!(metrics.pool(PoolKind::Io).is_none(), "UBER has no io pool");
    for class in uberpool::TaskClass::ALL {
        assert_eq!(metrics.for_class(class).kind, PoolKind::Uber);
    }
    service.shutdown();
}

//! Services for the service tests: configurations written as Mule files, a service per test,
//! the metrics of one pool, and a watcher that opens a gate once a submitter is seen waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use uberpool::{
    PoolMetrics, PoolsConfig, Resources, SchedulerService, Strategy,
    is_current_thread_for_cpu_work, is_current_thread_in_wait_group,
};

use super::{Gate, PREFIX, poll_until};

/// A configuration from `key=value` lines (keys without the Mule prefix).
pub fn config(lines: &[(&str, usize)], strategy: Strategy) -> PoolsConfig {
    let mut text = format!("{PREFIX}SchedulerPoolStrategy={strategy}\n");
    for (key, value) in lines {
        text.push_str(&format!("{PREFIX}{key}={value}\n"));
    }
    PoolsConfig::parse(&text, &Resources::new(2, 1 << 20)).expect("valid configuration")
}

/// UBER with the given sizes.
pub fn uber(core: usize, max: usize, queue: usize) -> PoolsConfig {
    config(
        &[
            ("uber.threadPool.coreSize", core),
            ("uber.threadPool.maxSize", max),
            ("uber.workQueue.size", queue),
        ],
        Strategy::Uber,
    )
}

/// DEDICATED with `(size, queue)` for cpuLight, `(core, max, queue)` for io and `(size, queue)`
/// for cpuIntensive.
pub fn dedicated(
    light: (usize, usize),
    io: (usize, usize, usize),
    intensive: (usize, usize),
) -> PoolsConfig {
    config(
        &[
            ("cpuLight.threadPool.size", light.0),
            ("cpuLight.workQueue.size", light.1),
            ("io.threadPool.coreSize", io.0),
            ("io.threadPool.maxSize", io.1),
            ("io.workQueue.size", io.2),
            ("cpuIntensive.threadPool.size", intensive.0),
            ("cpuIntensive.workQueue.size", intensive.1),
        ],
        Strategy::Dedicated,
    )
}

/// Every DEDICATED pool: one thread, no queue.
pub fn dedicated_ones() -> PoolsConfig {
    dedicated((1, 0), (1, 1, 0), (1, 0))
}

pub fn service(name: &str, config: PoolsConfig) -> SchedulerService {
    SchedulerService::builder()
        .name(name)
        .config(config)
        .build()
        .expect("service starts")
}

/// The metrics of the pool named `name`.
pub fn pool(service: &SchedulerService, name: &str) -> PoolMetrics {
    service
        .metrics()
        .pools
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no pool named {name}"))
}

pub fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

/// On another thread: waits until `pool` of `service` counts a waiting submission, then opens
/// `gate` whatever happened (so a failed check cannot hang the test). Joining the thread tells
/// whether the waiter was seen blocked.
pub fn open_once_waiting(
    service: &SchedulerService,
    pool_name: &str,
    gate: &Gate,
) -> thread::JoinHandle<bool> {
    let service = service.clone();
    let pool_name = pool_name.to_owned();
    let gate = gate.clone();
    thread::spawn(move || {
        let seen = poll_until(|| pool(&service, &pool_name).waited == 1);
        gate.open();
        seen
    })
}

/// UBER with core 1 and max 4 whose spawn handler lets only the core thread start; the counter
/// counts every spawn attempt.
pub fn core_thread_only(name: &str) -> (SchedulerService, Arc<AtomicUsize>) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let svc = {
        let attempts = attempts.clone();
        SchedulerService::builder()
            .name(name)
            .config(uber(1, 4, 0))
            .spawn_handler(move |spawn| {
                if attempts.fetch_add(1, Ordering::SeqCst) > 0 {
                    return Err(std::io::Error::other("no more threads"));
                }
                thread::Builder::new()
                    .name(spawn.name().to_owned())
                    .spawn(move || spawn.run())
                    .map(|_| ())
            })
            .build()
            .unwrap()
    };
    (svc, attempts)
}

pub fn groups() -> (bool, bool) {
    (
        is_current_thread_for_cpu_work(),
        is_current_thread_in_wait_group(),
    )
}

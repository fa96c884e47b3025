//! A first look at uberpool: a scheduler service built from `scheduler-pools.conf`, work of the
//! three classes, back pressure handing refused work back, and a shutdown that accounts for
//! every task.
//!
//! Run: `cargo run --release --example quickstart` (defaults: UBER), or
//! `cargo run --release --example quickstart -- --conf my-pools.conf` (e.g. a DEDICATED file).

use std::time::{Duration, Instant};

use uberpool::{PoolsConfig, Resources, SchedulerConfig, SchedulerService, current_class};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conf = std::env::args()
        .skip_while(|a| a != "--conf")
        .nth(1)
        .map(std::path::PathBuf::from);
    let config = PoolsConfig::discover(conf.as_deref(), &Resources::detect())?;
    let service = SchedulerService::builder()
        .name("quickstart")
        .config(config)
        .build()?;
    println!("{}\n", service.splash());

    // 48 "SMTP sends": blocking IO. In UBER the pool grows a thread per blocked task.
    let io = service.io();
    let render = service.cpu_intensive();
    let log = service.cpu_light();
    let started = Instant::now();
    let sends: Vec<_> = (0..48)
        .map(|i| {
            let (render, log) = (render.clone(), log.clone());
            io.submit(move || {
                std::thread::sleep(Duration::from_millis(20)); // the blocking call
                let body = render.submit(move || format!("Dear subscriber {i}").repeat(50))?;
                let len = body.join()?.len();
                log.execute(move || {
                    assert_eq!(current_class(), Some(uberpool::TaskClass::CpuLight))
                })
                .map_err(|_| "log refused")?;
                Ok::<usize, Box<dyn std::error::Error + Send + Sync>>(len)
            })
        })
        .collect::<Result<_, _>>()?;
    let bytes: usize = sends
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    println!(
        "48 sends of 20 ms in {:?}, {bytes} bytes rendered",
        started.elapsed()
    );

    // Back pressure: a full custom pool refuses and hands the closure back.
    let relay = service.custom(
        SchedulerConfig::new()
            .name("relay")
            .max_concurrent_tasks(1)
            .queue_size(0),
    )?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    relay.execute(move || {
        let _ = rx.recv();
    })?;
    match relay.try_submit(|| "late work") {
        Ok(_) => println!("unexpected: the full relay accepted the task"),
        Err(refused) => println!(
            "relay refused ({}): running it here: {}",
            refused.kind(),
            (refused.into_inner())()
        ),
    }
    drop(tx);
    relay.stop();

    println!("\n{}", service.usage_report());
    for pool in service.metrics().pools {
        println!(
            "{:<26} peak {:>3} threads, {:>4} completed, {} rejected, {} ran on the caller",
            pool.name, pool.peak_threads, pool.completed, pool.rejected, pool.caller_ran
        );
    }
    let report = service.shutdown();
    println!(
        "\nshutdown: {} completed, {} cancelled, {} still running",
        report.completed, report.cancelled, report.still_running
    );
    Ok(())
}

//! A first look at the elastic pool: blocking "IO" tasks grow it, it shrinks back after the
//! burst, a full pool hands the work back, and shutdown accounts for every task.
//!
//! Run: `cargo run --release --example quickstart`

use std::time::{Duration, Instant};

use uberpool::pool::ThreadPool;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder()
        .name("quickstart.io")
        .core_size(2)
        .max_size(64)
        .keep_alive(Duration::from_millis(200))
        .build()?;

    // A burst of blocking tasks: with a hand-off queue the pool grows a thread per task.
    let started = Instant::now();
    let handles: Vec<_> = (0..48)
        .map(|i| {
            pool.submit(move || {
                std::thread::sleep(Duration::from_millis(20)); // a blocking call
                i * 2
            })
        })
        .collect::<Result<_, _>>()?;
    let sum: usize = handles
        .into_iter()
        .map(|h| h.join())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    let m = pool.metrics();
    println!(
        "48 blocking tasks of 20 ms in {:?}: sum {sum}, peak {} threads",
        started.elapsed(),
        m.peak_threads
    );

    // A full pool refuses and hands the closure back.
    let small = ThreadPool::builder()
        .name("quickstart.small")
        .core_size(1)
        .build()?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    small.execute(move || {
        let _ = rx.recv();
    })?;
    match small.submit(|| "late work") {
        Ok(_) => println!("unexpected: the full pool accepted the task"),
        Err(refused) => {
            println!(
                "refused ({}), running it here: {}",
                refused.kind(),
                (refused.into_inner())()
            )
        }
    }
    drop(tx);

    // Back to core after the keep-alive.
    let wait = Instant::now();
    while pool.metrics().threads > 2 && wait.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "after the burst: {} threads ({} retired)",
        pool.metrics().threads,
        pool.metrics().threads_retired
    );

    let report = pool.shutdown();
    println!(
        "shutdown: {} completed, {} cancelled, {} still running",
        report.completed, report.cancelled, report.still_running
    );
    Ok(())
}

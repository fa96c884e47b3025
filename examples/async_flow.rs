//! An async flow: a CPU_LIGHT future that awaits IO work and CPU work on their pools, and
//! continues on CPU_LIGHT after each await — Mule's "the response continues on CPU_LIGHT".
//!
//! Run: `cargo run --release --example async_flow`

use std::time::{Duration, Instant};

use uberpool::{SchedulerService, TaskClass, current_class};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = SchedulerService::builder().name("async").build()?;
    let (light, io, cpu) = (service.cpu_light(), service.io(), service.cpu_intensive());

    let started = Instant::now();
    let handles: Vec<_> = (0..20u32)
        .map(|n| {
            let (io, cpu) = (io.clone(), cpu.clone());
            light.spawn_async(async move {
                // blocking IO: fetch the subscriber (20 ms of waiting, on an IO thread)
                let who = io
                    .submit(move || {
                        std::thread::sleep(Duration::from_millis(20));
                        format!("subscriber-{n}@example.com")
                    })?
                    .await?;
                assert_eq!(current_class(), Some(TaskClass::CpuLight));
                // CPU work: render the message on a CPU_INTENSIVE thread
                let body = cpu
                    .submit(move || format!("To: {who}\n\n{}", "Hello! ".repeat(200)))?
                    .await?;
                // back on CPU_LIGHT: log the delivery
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((n, body.len(), current_class()))
            })
        })
        .collect::<Result<_, _>>()?;
    for handle in handles {
        let (n, len, class) = handle.join()?.map_err(|e| e.to_string())?;
        println!("message {n:>2}: {len} bytes, logged on {class:?}");
    }
    println!(
        "20 async sends, each awaiting 20 ms of IO, in {:?}",
        started.elapsed()
    );
    service.shutdown();
    Ok(())
}

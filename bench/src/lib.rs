//! uberpool's benchmarks and comparison harness, in a workspace member of their own so that
//! neither library users nor `cargo test` compile criterion, tokio, rayon, threadpool, plotters or
//! hdrhistogram. This library holds what the benches and the harness share: a latch that signals
//! once when the last of `n` tasks ran, and the mixed email workload's steps.
//!
//! ```text
//! cargo bench -p uberpool-bench --bench pool          (also: spawn_ratio, flow)
//! cargo run --release -p uberpool-bench --example compare [-- --quick]
//! cargo run --release -p uberpool-bench --example mixed_probe
//! ```

pub mod spawn;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// Counts tasks down and signals once when the last one ran. Every contender's tasks use it, so
/// its cost is the same on every side of a comparison.
#[derive(Clone)]
pub struct Latch(Arc<(AtomicUsize, Mutex<Option<Sender<()>>>)>);

impl Latch {
    pub fn new(n: usize) -> (Self, Receiver<()>) {
        let (tx, rx) = channel();
        (
            Latch(Arc::new((AtomicUsize::new(n), Mutex::new(Some(tx))))),
            rx,
        )
    }

    pub fn count_down(&self) {
        if self.0.0.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(tx) = self.0.1.lock().unwrap().take()
        {
            tx.send(()).unwrap();
        }
    }
}

/// The mixed email workload's steps (DESIGN §9): 50 µs of real CPU work and a log line.
pub mod mixed {
    use std::hint::black_box;
    use std::thread::sleep;
    use std::time::{Duration, Instant};

    use uberpool::{Flow, ProactorPolicy, SchedulerService};

    use super::Latch;

    /// CPU work per item.
    pub const CPU: Duration = Duration::from_micros(50);
    /// Blocking IO per item.
    pub const IO: Duration = Duration::from_millis(2);

    /// One item as uberpool says it: a flow io (sleep) → intensive (burn) → light (log, then
    /// count the latch down).
    pub fn email_flow(
        svc: &SchedulerService,
        policy: ProactorPolicy,
        iters: u64,
        latch: Latch,
    ) -> Flow<usize, ()> {
        Flow::builder(svc)
            .name("email")
            .policy(policy)
            .io(|i: usize| {
                sleep(IO);
                i
            })
            .intensive(move |i: usize| (i, burn(iters, i as u64)))
            .light(move |(i, h): (usize, u64)| {
                log_line(i, h);
                latch.count_down();
            })
            .build()
    }

    /// Real CPU work: `iters` rounds of a mixing function the optimizer cannot remove.
    pub fn burn(iters: u64, seed: u64) -> u64 {
        let mut x = seed | 1;
        for _ in 0..iters {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x ^= x >> 33;
        }
        black_box(x)
    }

    /// Iterations of [`burn`] that take [`CPU`] on one core of this machine (fastest of 50
    /// trials).
    pub fn calibrate() -> u64 {
        let probe = 100_000u64;
        let best = (0..50)
            .map(|i| {
                let t = Instant::now();
                burn(probe, i);
                t.elapsed()
            })
            .min()
            .unwrap();
        (probe as f64 * CPU.as_secs_f64() / best.as_secs_f64()).max(1.0) as u64
    }

    /// The light step: what a log line costs.
    pub fn log_line(i: usize, h: u64) {
        black_box(format!("sent message {i} ({h:x})"));
    }
}

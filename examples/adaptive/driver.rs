//! The campaign driver of the adaptive-concurrency demo: sends messages through a scheduler view
//! to the relay, one SMTP session per message, retrying the ones the relay refused with `421`,
//! and samples the view's limit and the deliveries over time. What lives elsewhere: the relay
//! (`../email/relay/`), the SMTP client (`../email/client.rs`), the plot (`plot.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

use uberpool::Scheduler;

use crate::email::client::{Mailer, SendError};
use crate::email::relay::Relay;

/// How long a sender waits after a `421` before the message goes back to the queue (the slot
/// stays taken meanwhile, as a worker that backs off holds its thread): a sender that retried
/// at once would spend the machine's CPUs on refused connections.
pub const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The longest any wait of the driver may take: a failure guard, never a sequencing device.
const GUARD: Duration = Duration::from_secs(60);

/// When a run ends.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// Once this many messages were delivered.
    Messages(usize),
    /// New messages stop being sent after this long; the run ends when the ones sent are in.
    After(Duration),
}

/// One sample of a run's timeline.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    /// Since the run began.
    pub at: Duration,
    /// The view's concurrency limit then.
    pub limit: usize,
    /// The relay's K then.
    pub soft_limit: usize,
    /// Messages delivered and `421`s met so far.
    pub delivered: u64,
    pub refused: u64,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub delivered: u64,
    /// Sessions refused with `421`.
    pub refused: u64,
    /// Sends that failed otherwise (connection errors): retried too.
    pub failed: u64,
    /// From the first submission to the last delivery.
    pub wall: Duration,
    pub timeline: Vec<Tick>,
    /// When each change of K was applied, since the run began, and the new K.
    pub changes: Vec<(Duration, usize)>,
}

impl RunReport {
    /// Messages delivered per second of wall time.
    pub fn per_second(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// What a task tells the driver.
enum Done {
    Sent,
    Retry(u64),
}

/// Counters the tasks and the sampler share.
#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// Sends through `view` to `relay` until `stop`, applying each `(at, k)` of `changes` to the
/// relay at `at` after the start, sampling the timeline every `every`. `run` tells the messages
/// of different runs apart (their idempotency keys).
pub fn send(
    view: &Scheduler,
    relay: &Relay,
    run: &str,
    stop: Stop,
    changes: &[(Duration, usize)],
    every: Duration,
) -> RunReport {
    let mailer = Arc::new(Mailer::new(relay.addr(), 0, Duration::from_secs(10)));
    let counts = Arc::new(Counts::default());
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    thread::scope(|scope| {
        let sampler =
            scope.spawn(|| sample(view, relay, &counts, &finished, changes, start, every));
        let wall = drive(view, run, stop, &mailer, &counts, start);
        finished.store(true, Ordering::SeqCst);
        let (timeline, changes) = sampler.join().expect("the sampler did not panic");
        RunReport {
            delivered: counts.delivered.load(Ordering::SeqCst),
            refused: counts.refused.load(Ordering::SeqCst),
            failed: counts.failed.load(Ordering::SeqCst),
            wall,
            timeline,
            changes,
        }
    })
}

/// Submits messages (new ones while `stop` allows, and the ones to retry) until every one sent
/// is in; returns the time from `start` to the last delivery.
fn drive(
    view: &Scheduler,
    run: &str,
    stop: Stop,
    mailer: &Arc<Mailer>,
    counts: &Arc<Counts>,
    start: Instant,
) -> Duration {
    let (done_tx, done_rx) = channel();
    let mut pending: VecDeque<u64> = VecDeque::new();
    let mut next_id = 0u64;
    let mut outstanding = 0u64;
    loop {
        collect(&done_rx, &mut pending, &mut outstanding, None);
        let fresh = match stop {
            Stop::Messages(n) => next_id < n as u64,
            Stop::After(limit) => start.elapsed() < limit,
        };
        let id = match pending.pop_front() {
            Some(id) => Some(id),
            None if fresh => {
                next_id += 1;
                Some(next_id - 1)
            }
            None => None,
        };
        match id {
            Some(id) => {
                let task = message_task(id, run, mailer, counts, done_tx.clone());
                // This thread may wait: at the limit it sleeps until a slot frees.
                view.execute(task)
                    .unwrap_or_else(|refused| panic!("the view refused a message: {refused}"));
                outstanding += 1;
            }
            None if outstanding == 0 => return start.elapsed(),
            None => collect(&done_rx, &mut pending, &mut outstanding, Some(GUARD)),
        }
    }
}

/// Takes what the tasks reported; with `wait`, blocks for the first report up to it.
fn collect(
    done: &Receiver<Done>,
    pending: &mut VecDeque<u64>,
    outstanding: &mut u64,
    wait: Option<Duration>,
) {
    let mut first = wait.map(|guard| {
        done.recv_timeout(guard)
            .expect("a message task reports within the guard")
    });
    while let Some(report) = first.take().or_else(|| done.try_recv().ok()) {
        *outstanding -= 1;
        if let Done::Retry(id) = report {
            pending.push_back(id);
        }
    }
}

/// The task that sends message `id`.
fn message_task(
    id: u64,
    run: &str,
    mailer: &Arc<Mailer>,
    counts: &Arc<Counts>,
    done: Sender<Done>,
) -> impl FnOnce() + Send + 'static {
    let (mailer, counts) = (mailer.clone(), counts.clone());
    let to = format!("subscriber-{id}@example.com");
    let message = format!(
        "From: news@example.com\nTo: {to}\nSubject: Issue {id}\nX-Idempotency-Key: {run}-{id}\n\nHello from uberpool's adaptive view.\n"
    );
    move || {
        let report = match mailer.send("news@example.com", &to, &message) {
            Ok(()) => {
                counts.delivered.fetch_add(1, Ordering::SeqCst);
                Done::Sent
            }
            Err(SendError::Refused { code: 421, .. }) => {
                // The relay is over its session limit: the limit backs off.
                uberpool::report_overload();
                counts.refused.fetch_add(1, Ordering::SeqCst);
                thread::sleep(RETRY_PAUSE);
                Done::Retry(id)
            }
            Err(_) => {
                // Not the relay's load: its time says nothing about it.
                uberpool::ignore_sample();
                counts.failed.fetch_add(1, Ordering::SeqCst);
                Done::Retry(id)
            }
        };
        // The driver outlives every task of its run.
        let _ = done.send(report);
    }
}

/// The sampler: every `every` it applies the changes of K that are due and records a tick,
/// until `finished`; returns the timeline and when each change was applied.
fn sample(
    view: &Scheduler,
    relay: &Relay,
    counts: &Counts,
    finished: &AtomicBool,
    changes: &[(Duration, usize)],
    start: Instant,
    every: Duration,
) -> (Vec<Tick>, Vec<(Duration, usize)>) {
    let mut due: VecDeque<(Duration, usize)> = changes.iter().copied().collect();
    let mut timeline = Vec::new();
    let mut applied = Vec::new();
    loop {
        let at = start.elapsed();
        while let Some(&(_, k)) = due.front().filter(|(when, _)| *when <= at) {
            due.pop_front();
            relay.set_soft_limit(k);
            applied.push((at, k));
        }
        timeline.push(Tick {
            at,
            limit: view.throttle().and_then(|s| s.limit).unwrap_or(usize::MAX),
            soft_limit: relay.capacity().map_or(0, |c| c.soft_limit),
            delivered: counts.delivered.load(Ordering::SeqCst),
            refused: counts.refused.load(Ordering::SeqCst),
        });
        if finished.load(Ordering::SeqCst) {
            return (timeline, applied);
        }
        // The sampling cadence (a measurement interval, not a synchronization).
        thread::sleep(every);
    }
}

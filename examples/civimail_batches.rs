//! CiviMail's mailer settings mapped onto uberpool. CiviMail sends from cron: every cron run
//! takes at most "batch limit" recipients, splits them into jobs of "job size" recipients, runs
//! at most "concurrent job limit" jobs at once, and each job sleeps "throttle time" between two
//! messages; then nothing is sent until the next cron run. With uberpool the same limits become
//! one throttled view: `max_concurrent_tasks` = the concurrent job limit (connections to the
//! relay), `rate_limit` = one message per throttle time per job, and the messages are pumped
//! continuously, with no dead time between runs and no thread sleeping for its turn.
//!
//! Both schedules send every recipient to the same simulated relay (a sleep of `--relay-ms`
//! per message, counting connections in use). The cron schedule's batches run for real; the
//! dead time between cron runs is computed (`interval - run time`, never slept).
//!
//! Run: `cargo run --release --example civimail_batches`, with options
//! `-- --recipients 2000 --job-size 100 --batch-limit 500 --concurrent-jobs 4 --throttle-us 1000
//! --cron-interval-s 60 --relay-ms 2`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use uberpool::{SchedulerConfig, SchedulerService, TaskClass};

const USAGE: &str = "usage: civimail_batches [--recipients N] [--job-size N] [--batch-limit N]
                        [--concurrent-jobs N] [--throttle-us N] [--cron-interval-s N] [--relay-ms N]";

/// CiviMail's settings (Administer » CiviMail » Mailer Settings) and the run's size.
#[derive(Clone, Copy, Debug)]
struct Settings {
    recipients: u64,
    /// "Mailer Job Size": recipients per job.
    job_size: u64,
    /// "Mailer Batch Limit": recipients per cron run.
    batch_limit: u64,
    /// "Mailer Cron Job Limit": jobs running at once.
    concurrent_jobs: u64,
    /// "Mailer Throttle Time": microseconds a job waits between two messages.
    throttle_us: u64,
    /// How often cron starts the mailer.
    cron_interval: Duration,
    /// The simulated relay's time per message.
    relay_time: Duration,
}

fn parse_args() -> Result<Settings, String> {
    let mut settings = Settings {
        recipients: 2_000,
        job_size: 100,
        batch_limit: 500,
        concurrent_jobs: 4,
        throttle_us: 1_000,
        cron_interval: Duration::from_secs(60),
        relay_time: Duration::from_millis(2),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value: u64 = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?
            .parse()
            .map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--recipients" => settings.recipients = value,
            "--job-size" => settings.job_size = value.max(1),
            "--batch-limit" => settings.batch_limit = value.max(1),
            "--concurrent-jobs" => settings.concurrent_jobs = value.max(1),
            "--throttle-us" => settings.throttle_us = value,
            "--cron-interval-s" => settings.cron_interval = Duration::from_secs(value),
            "--relay-ms" => settings.relay_time = Duration::from_millis(value),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(settings)
}

/// A relay that takes `per_message` for every message and counts messages and connections.
struct SimulatedRelay {
    per_message: Duration,
    received: AtomicU64,
    connections: AtomicUsize,
    peak_connections: AtomicUsize,
}

impl SimulatedRelay {
    fn new(per_message: Duration) -> Arc<Self> {
        Arc::new(SimulatedRelay {
            per_message,
            received: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            peak_connections: AtomicUsize::new(0),
        })
    }

    fn send(&self) {
        let now = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_connections.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.per_message);
        self.received.fetch_add(1, Ordering::SeqCst);
        self.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The cron schedule: the time each run took, sending for real (jobs on a throttled view that
/// plays the concurrent job limit; each job sends in sequence and sleeps the throttle time).
fn cron_runs(
    service: &SchedulerService,
    settings: &Settings,
    relay: &Arc<SimulatedRelay>,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let jobs_per_run = settings.batch_limit.div_ceil(settings.job_size);
    let job_slots = service.scheduler_with(
        TaskClass::Io,
        SchedulerConfig::new()
            .name("civimail-cron-jobs")
            .max_concurrent_tasks(usize::try_from(settings.concurrent_jobs)?)
            .queue_size(usize::try_from(jobs_per_run)?),
    )?;
    let throttle = Duration::from_micros(settings.throttle_us);
    let mut runs = Vec::new();
    let mut left = settings.recipients;
    while left > 0 {
        let this_run = left.min(settings.batch_limit);
        left -= this_run;
        let started = Instant::now();
        let mut jobs = Vec::new();
        let mut to_assign = this_run;
        while to_assign > 0 {
            let job = to_assign.min(settings.job_size);
            to_assign -= job;
            let relay = relay.clone();
            jobs.push(job_slots.submit(move || {
                for n in 0..job {
                    relay.send();
                    if n + 1 < job && !throttle.is_zero() {
                        std::thread::sleep(throttle); // what the CiviMail job does
                    }
                }
            })?);
        }
        for job in jobs {
            job.join()?;
        }
        runs.push(started.elapsed());
    }
    job_slots.shutdown();
    Ok(runs)
}

/// Continuous pumping: every message is a task on one throttled view holding the same limits.
fn pump(
    service: &SchedulerService,
    settings: &Settings,
    relay: &Arc<SimulatedRelay>,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let jobs = usize::try_from(settings.concurrent_jobs)?;
    let mut config = SchedulerConfig::new()
        .name("civimail-relay")
        .max_concurrent_tasks(jobs)
        .queue_size(usize::try_from(settings.recipients.max(1))?);
    if settings.throttle_us > 0 {
        // Each of the `jobs` connections sends at most one message per throttle time.
        config = config.rate_limit(jobs, Duration::from_micros(settings.throttle_us));
    }
    let relay_view = service.scheduler_with(TaskClass::Io, config)?;
    let started = Instant::now();
    let mut sent = Vec::with_capacity(usize::try_from(settings.recipients)?);
    for _ in 0..settings.recipients {
        let relay = relay.clone();
        sent.push(relay_view.submit(move || relay.send())?);
    }
    for message in sent {
        message.join()?;
    }
    let elapsed = started.elapsed();
    relay_view.shutdown();
    Ok(elapsed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = match parse_args() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let service = SchedulerService::builder().name("civimail").build()?;
    println!(
        "{} recipients; job size {}, batch limit {}, {} concurrent jobs, throttle {} µs, \
         cron every {} s; relay {:?} per message",
        settings.recipients,
        settings.job_size,
        settings.batch_limit,
        settings.concurrent_jobs,
        settings.throttle_us,
        settings.cron_interval.as_secs(),
        settings.relay_time
    );

    let cron_relay = SimulatedRelay::new(settings.relay_time);
    let runs = cron_runs(&service, &settings, &cron_relay)?;
    let sending: Duration = runs.iter().sum();
    // Cron starts run k at k * interval, or when run k-1 ends if it overran the interval.
    let mut cron_total = Duration::ZERO;
    let mut dead = Duration::ZERO;
    for (k, run) in runs.iter().enumerate() {
        if k + 1 < runs.len() {
            let gap = settings.cron_interval.saturating_sub(*run);
            dead += gap;
            cron_total += *run + gap;
        } else {
            cron_total += *run;
        }
    }

    let pump_relay = SimulatedRelay::new(settings.relay_time);
    let pumped = pump(&service, &settings, &pump_relay)?;
    service.shutdown();

    let check = |name: &str, relay: &SimulatedRelay| -> Result<(), String> {
        let received = relay.received.load(Ordering::SeqCst);
        let peak = relay.peak_connections.load(Ordering::SeqCst);
        println!(
            "  {name}: relay received {received} messages, at most {peak} connections at once"
        );
        if received != settings.recipients {
            return Err(format!(
                "{name}: {received} of {} messages",
                settings.recipients
            ));
        }
        if peak as u64 > settings.concurrent_jobs {
            return Err(format!(
                "{name}: {peak} connections, limit {}",
                settings.concurrent_jobs
            ));
        }
        Ok(())
    };
    println!();
    println!(
        "cron batches        {:>10.1} s  ({} runs, {:.2} s sending measured, {:.1} s dead time between runs computed)",
        cron_total.as_secs_f64(),
        runs.len(),
        sending.as_secs_f64(),
        dead.as_secs_f64()
    );
    println!(
        "continuous pumping  {:>10.2} s  (measured: one throttled view, {} connections{})",
        pumped.as_secs_f64(),
        settings.concurrent_jobs,
        if settings.throttle_us > 0 {
            format!(
                ", {} messages per {} µs",
                settings.concurrent_jobs, settings.throttle_us
            )
        } else {
            String::new()
        }
    );
    println!(
        "speed-up            {:>10.1} x",
        cron_total.as_secs_f64() / pumped.as_secs_f64().max(1e-9)
    );
    check("cron batches", &cron_relay)?;
    check("continuous pumping", &pump_relay)?;
    Ok(())
}

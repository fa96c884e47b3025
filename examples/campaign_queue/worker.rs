//! The worker process: a consumer of the campaign's queue that renders each job's message and
//! sends it over SMTP through a throttled IO view holding the relay's connection limit (and
//! rate, if any). It prints its counters as `progress` lines, and a `final` line when it stops.

use std::error::Error;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use std::net::ToSocketAddrs;

use uberpool::queue::{ConsumerMetrics, Delivery, Outcome};
use uberpool::{SchedulerConfig, SchedulerService, TaskClass};

use crate::email::client::{Mailer, SendError};
use crate::engine::{ConsumerSettings, Engine};
use crate::job::{CampaignJob, FROM_ADDRESS};

/// What `worker` was asked to do.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub engine: Engine,
    pub queue: String,
    /// The SMTP relay, `host:port`.
    pub smtp: String,
    pub name: String,
    /// SMTP sessions at once: the throttled view's limit and the transport's pool size.
    pub smtp_connections: usize,
    /// Messages per second, if the relay limits them.
    pub rate: Option<usize>,
    pub prefetch: usize,
    /// How long a job stays this worker's without an extension (Redis).
    pub lease: Duration,
    /// Print a `progress` line this often.
    pub report_every: Option<Duration>,
    /// Stop (gracefully) when stdin closes; otherwise run until killed.
    pub stop_on_eof: bool,
}

/// Sends one job's message: `Done` once the relay accepted it, `Retry` on a transient refusal
/// or a connection problem, `Fail` on a permanent refusal or a job that cannot be read.
pub fn send(mailer: &Mailer, delivery: &Delivery) -> Outcome {
    let job = match CampaignJob::decode(delivery.body()) {
        Ok(job) => job,
        Err(error) => return Outcome::fail(error),
    };
    let message = match job.render() {
        Ok(message) => message,
        Err(error) => return Outcome::fail(error),
    };
    match mailer.send(FROM_ADDRESS, &job.subscriber.email, &message) {
        Ok(()) => Outcome::Done,
        Err(error @ SendError::Refused { .. }) if !error.is_transient() => {
            Outcome::fail(error.to_string())
        }
        Err(error) => Outcome::retry(error.to_string()),
    }
}

/// `key=value` fields of a progress line.
pub fn progress_fields(name: &str, m: &ConsumerMetrics) -> String {
    format!(
        "name={name} deleted={} released={} buried={} reserved={} touched={} in_flight={} lost={}",
        m.deleted, m.released, m.buried, m.reserved, m.touched, m.in_flight, m.lost_leases
    )
}

pub fn run(options: WorkerOptions) -> Result<(), Box<dyn Error>> {
    let service = SchedulerService::builder().name(&options.name).build()?;
    let mut view = SchedulerConfig::new()
        .name("smtp")
        .max_concurrent_tasks(options.smtp_connections);
    if let Some(rate) = options.rate {
        view = view.rate_limit(rate, Duration::from_secs(1));
    }
    let smtp = service.scheduler_with(TaskClass::Io, view)?;
    let relay = options
        .smtp
        .to_socket_addrs()
        .map_err(|e| format!("--smtp {:?}: {e}", options.smtp))?
        .next()
        .ok_or_else(|| format!("--smtp {:?}: no address", options.smtp))?;
    let mailer = Mailer::new(relay, options.smtp_connections, Duration::from_secs(30));
    let settings = ConsumerSettings {
        name: options.name.clone(),
        prefetch: options.prefetch,
        max_attempts: 5,
        grace: Duration::from_secs(30),
        lease: options.lease,
    };
    let consumer =
        options
            .engine
            .start_consumer(&options.queue, &settings, &smtp, move |delivery| {
                send(&mailer, delivery)
            })?;
    eprintln!(
        "worker {}: consuming {} from {}, sending to {} over at most {} SMTP sessions",
        options.name,
        options.queue,
        options.engine.describe(),
        options.smtp,
        options.smtp_connections
    );

    // Run until stdin closes (when asked to watch it), reporting progress meanwhile.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    // Held until the end when stdin is not watched, so the channel never closes.
    let mut stop_tx = Some(stop_tx);
    if options.stop_on_eof
        && let Some(stop_tx) = stop_tx.take()
    {
        std::thread::Builder::new()
            .name(format!("{}.stdin", options.name))
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    if line.is_err() {
                        break;
                    }
                }
                let _ = stop_tx.send(());
            })?;
    }
    let every = options.report_every.unwrap_or(Duration::from_secs(3600));
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
        if options.report_every.is_some() {
            println!(
                "progress {}",
                progress_fields(&options.name, &consumer.metrics())
            );
        }
    }
    let report = consumer.stop();
    println!("final {}", progress_fields(&options.name, &report.metrics));
    eprintln!(
        "worker {}: stopped after {:.1} s ({} finished during the stop, {} returned unstarted, {} abandoned)",
        options.name,
        report.elapsed.as_secs_f64(),
        report.finished,
        report.returned,
        report.abandoned
    );
    service.shutdown();
    Ok(())
}

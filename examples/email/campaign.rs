//! The email campaign both `examples/email_campaign.rs` and `tests/email_pipeline.rs` run: a
//! subscriber store on disk, a template, and a four-step flow — fetch a batch of subscribers
//! (IO), personalize each message (CPU_INTENSIVE), send them over SMTP (`client.rs`) through a
//! throttled view that holds the relay's connection and rate limits (IO), record the deliveries
//! (CPU_LIGHT). A recipient the relay refuses for now is retried with exponential back-off from
//! the service's timer; one that still fails is reported, never dropped. What lives elsewhere: the
//! SMTP client (`client.rs`), the relay (`relay/`), argument parsing and the summary table (the
//! example).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use parking_lot::Mutex;
use uberpool::{Flow, Scheduler, SchedulerConfig, SchedulerService, TaskClass};

use super::client::Mailer;
use super::relay::{IDEMPOTENCY_HEADER, fnv1a};

/// The campaign's limits and sizes.
#[derive(Clone, Debug)]
pub struct CampaignConfig {
    /// Subscribers to write to the store and mail.
    pub recipients: usize,
    /// Subscribers per fetched batch (one flow run per batch).
    pub batch_size: usize,
    /// Batches in the flow at once (the flow's `max_concurrency`).
    pub batches_in_flight: usize,
    /// SMTP connections the relay allows: the throttled view's `max_concurrent_tasks` and
    /// the mailer's pool size.
    pub smtp_connections: usize,
    /// Messages per second the relay allows, if it has a rate limit.
    pub rate_per_second: Option<u32>,
    /// Tries per recipient, the first one included.
    pub max_attempts: u32,
    /// The wait before the second try; it doubles for every further try.
    pub first_backoff: Duration,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            recipients: 2_000,
            batch_size: 50,
            batches_in_flight: 8,
            smtp_connections: 16,
            rate_per_second: None,
            max_attempts: 5,
            first_backoff: Duration::from_millis(50),
        }
    }
}

/// One subscriber, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// Row number in the store.
    pub id: usize,
    /// Merge field `first_name`.
    pub first_name: String,
    /// Merge field `last_name`.
    pub last_name: String,
    /// Merge field `email`, the recipient address.
    pub email: String,
    /// Merge field `city`.
    pub city: String,
}

/// The subscriber list as a CSV file in the temporary directory, removed when dropped.
pub struct SubscriberStore {
    path: PathBuf,
    len: usize,
}

const FIRST_NAMES: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];
const LAST_NAMES: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
];
const CITIES: [&str; 6] = [
    "London",
    "Arlington",
    "Manchester",
    "Austin",
    "Boston",
    "Berkeley",
];

impl SubscriberStore {
    /// Writes `n` generated subscribers to a new file.
    pub fn generate(n: usize) -> io::Result<SubscriberStore> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "uberpool-subscribers-{}-{}-{nanos}.csv",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut out = BufWriter::new(File::create(&path)?);
        for id in 0..n {
            let first = FIRST_NAMES[id % FIRST_NAMES.len()];
            let last = LAST_NAMES[(id / FIRST_NAMES.len()) % LAST_NAMES.len()];
            let city = CITIES[id % CITIES.len()];
            let email = format!(
                "{}.{}.{id}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            writeln!(out, "{id},{first},{last},{email},{city}")?;
        }
        out.flush()?;
        Ok(SubscriberStore { path, len: n })
    }

    /// Subscribers in the store.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every recipient address, in store order.
    pub fn addresses(&self) -> io::Result<Vec<String>> {
        Ok(self
            .fetch(0, self.len)?
            .into_iter()
            .map(|s| s.email)
            .collect())
    }

    /// Reads rows `start .. start + count` from the file (blocking IO).
    pub fn fetch(&self, start: usize, count: usize) -> io::Result<Vec<Subscriber>> {
        let reader = BufReader::new(File::open(&self.path)?);
        let mut batch = Vec::with_capacity(count);
        for line in reader.lines().skip(start).take(count) {
            let line = line?;
            let fields: Vec<&str> = line.split(',').collect();
            let [id, first, last, email, city] = fields[..] else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: bad row {line:?}", self.path.display()),
                ));
            };
            batch.push(Subscriber {
                id: id
                    .parse()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                email: email.to_owned(),
                city: city.to_owned(),
            });
        }
        Ok(batch)
    }
}

impl Drop for SubscriberStore {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The newsletter; `{{field}}` marks a merge field.
pub const TEMPLATE: &str = "Dear {{first_name}} {{last_name}},

This month in {{city}}: the scheduler that sends this letter runs its fetches on IO threads, renders
on CPU_INTENSIVE threads and logs on CPU_LIGHT threads, so a slow relay never starves the renderer.

Three things we shipped:
  1. Throttled schedulers: the relay's connection limit is a scheduler setting, not a cron job.
  2. Rate limits: messages start on time from the service's timer; no thread sleeps for its turn.
  3. Flows: light steps run in place, with no thread switch.

You receive this letter at {{email}} as subscriber #{{id}}.
Unsubscribe: https://example.com/unsubscribe/{{id}}/{{token}}
";

/// The content digest of a rendered message (and the unsubscribe token): FNV-1a, 64 bits.
pub fn content_digest(bytes: &[u8]) -> u64 {
    fnv1a(bytes)
}

/// Fills every `{{field}}` of `template` from `subscriber`; an unknown field is an error.
pub fn personalize(template: &str, subscriber: &Subscriber) -> Result<String, String> {
    let token = content_digest(format!("unsubscribe:{}", subscriber.email).as_bytes());
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            format!(
                "unclosed merge field at {:?}",
                &after[..after.len().min(20)]
            )
        })?;
        match &after[..close] {
            "first_name" => out.push_str(&subscriber.first_name),
            "last_name" => out.push_str(&subscriber.last_name),
            "city" => out.push_str(&subscriber.city),
            "email" => out.push_str(&subscriber.email),
            "id" => write!(out, "{}", subscriber.id).expect("writing to a String"),
            "token" => write!(out, "{token:016x}").expect("writing to a String"),
            other => return Err(format!("unknown merge field {other:?}")),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The sender of every message.
const FROM_ADDRESS: &str = "news@example.com";

/// A personalized message, ready to send.
pub struct Rendered {
    id: usize,
    email: String,
    /// Headers, a blank line and the body.
    text: String,
}

/// Builds a subscriber's message: merge fields, then the body's digest as the Message-ID and in
/// the `X-Idempotency-Key` header, so every try of this message carries the same key and the
/// relay drops a try it has already accepted.
fn render(subscriber: &Subscriber) -> Result<Rendered, String> {
    let plain = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic());
    let valid_address = plain(&subscriber.email)
        && !subscriber.email.contains(['<', '>', '"'])
        && subscriber
            .email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !valid_address {
        return Err(format!("{:?}: not an address", subscriber.email));
    }
    let name = format!("{} {}", subscriber.first_name, subscriber.last_name);
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        return Err(format!("{name:?}: a name needs quoting"));
    }
    let body = personalize(TEMPLATE, subscriber)?;
    let digest = content_digest(body.as_bytes());
    let id = subscriber.id;
    let text = format!(
        "From: uberpool news <{FROM_ADDRESS}>\r\n\
         To: {name} <{email}>\r\n\
         Subject: News for {city}\r\n\
         Message-ID: <{digest:016x}.{id}@example.com>\r\n\
         {IDEMPOTENCY_HEADER}: campaign-{digest:016x}-{id}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}",
        email = subscriber.email,
        city = subscriber.city,
    );
    Ok(Rendered {
        id,
        email: subscriber.email.clone(),
        text,
    })
}

/// What became of one recipient.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Subscriber id.
    pub id: usize,
    /// Recipient address.
    pub email: String,
    /// Tries made, the successful one included.
    pub attempts: u32,
    /// `Err` with the last error when every try failed (or rendering failed: 0 attempts).
    pub result: Result<(), String>,
}

/// The campaign's outcome.
#[derive(Debug)]
pub struct CampaignReport {
    /// Recipients the relay accepted.
    pub sent: usize,
    /// Recipients that failed for good, with the reason.
    pub failed: Vec<Delivery>,
    /// Tries beyond the first, over all recipients.
    pub retries: u64,
    /// The mean time of one SMTP transaction (one `send`, refused ones included).
    pub mean_send: Duration,
    /// From the first batch submitted to the last delivery recorded.
    pub wall: Duration,
    /// Batches whose flow run failed (a fetch error or a panicked step), with the reason.
    pub batch_errors: Vec<String>,
}

/// The sending side: the SMTP client, the throttled view and the retry policy.
struct Sender {
    smtp: Scheduler,
    mailer: Mailer,
    max_attempts: u32,
    first_backoff: Duration,
    progress: ProgressBar,
    /// Nanoseconds spent in `mailer.send`, over all tries.
    send_nanos: AtomicU64,
    /// Tries made, over all recipients.
    tries: AtomicU64,
}

type SendTask = Box<dyn FnOnce() + Send>;

/// One try at `message`, to run on the throttled view; a transient failure schedules the next
/// try on the same view after the back-off. Exactly one `Delivery` goes to `done` in the end.
fn send_task(
    sender: Arc<Sender>,
    message: Rendered,
    attempt: u32,
    done: mpsc::Sender<Delivery>,
) -> SendTask {
    Box::new(move || {
        let started = Instant::now();
        let outcome = sender
            .mailer
            .send(FROM_ADDRESS, &message.email, &message.text);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        sender.send_nanos.fetch_add(nanos, Ordering::Relaxed);
        sender.tries.fetch_add(1, Ordering::Relaxed);
        let error = outcome.err();
        match error {
            Some(error) if error.is_transient() && attempt < sender.max_attempts => {
                let delay = sender.first_backoff * 2u32.saturating_pow(attempt - 1);
                let (id, email) = (message.id, message.email.clone());
                let next = send_task(sender.clone(), message, attempt + 1, done.clone());
                if let Err(refused) = sender.smtp.schedule(delay, next) {
                    finish(
                        &sender,
                        &done,
                        id,
                        email,
                        attempt,
                        Err(format!("retry not scheduled: {refused}")),
                    );
                }
            }
            Some(error) => {
                let (id, email) = (message.id, message.email);
                finish(&sender, &done, id, email, attempt, Err(error.to_string()));
            }
            None => {
                let (id, email) = (message.id, message.email);
                finish(&sender, &done, id, email, attempt, Ok(()));
            }
        }
    })
}

fn finish(
    sender: &Sender,
    done: &mpsc::Sender<Delivery>,
    id: usize,
    email: String,
    attempts: u32,
    result: Result<(), String>,
) {
    sender.progress.inc(1);
    // The batch's send step waits for exactly one delivery per message, so it is listening.
    let _ = done.send(Delivery {
        id,
        email,
        attempts,
        result,
    });
}

/// Sends a batch through the throttled view and waits for every message's final outcome. A
/// message whose task vanished without an outcome (cancelled by a shutdown) is reported as
/// failed, so every recipient of the batch has exactly one `Delivery`.
fn send_batch(sender: &Arc<Sender>, batch: Vec<Result<Rendered, Delivery>>) -> Vec<Delivery> {
    let (done, outcomes) = mpsc::channel();
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut in_flight = Vec::with_capacity(batch.len());
    for item in batch {
        match item {
            Err(failed) => {
                sender.progress.inc(1);
                deliveries.push(failed);
            }
            Ok(message) => {
                let (id, email) = (message.id, message.email.clone());
                in_flight.push((id, email.clone()));
                let task = send_task(sender.clone(), message, 1, done.clone());
                if let Err(refused) = sender.smtp.execute(task) {
                    let reason = format!("not sent: {:?} by {}", refused.kind(), refused.target());
                    finish(sender, &done, id, email, 0, Err(reason));
                }
            }
        }
    }
    drop(done);
    // Ends early only if every sender is gone, i.e. some task was dropped without running.
    let mut seen = std::collections::HashSet::with_capacity(in_flight.len());
    for delivery in outcomes.iter().take(in_flight.len()) {
        seen.insert(delivery.id);
        deliveries.push(delivery);
    }
    for (id, email) in in_flight {
        if !seen.contains(&id) {
            sender.progress.inc(1);
            deliveries.push(Delivery {
                id,
                email,
                attempts: 0,
                result: Err("send task dropped before it ran".to_owned()),
            });
        }
    }
    deliveries
}

/// Runs the campaign for every subscriber in `store` against the relay on `127.0.0.1:port`, on
/// `service`'s pools. `progress` advances once per recipient (pass `ProgressBar::hidden()` for
/// none).
pub fn run_campaign(
    service: &SchedulerService,
    port: u16,
    store: &Arc<SubscriberStore>,
    config: &CampaignConfig,
    progress: &ProgressBar,
) -> Result<CampaignReport, Box<dyn std::error::Error>> {
    let mut throttle = SchedulerConfig::new()
        .name("smtp")
        .max_concurrent_tasks(config.smtp_connections)
        .queue_size(store.len().max(1));
    if let Some(rate) = config.rate_per_second {
        throttle = throttle.rate_limit(rate, Duration::from_secs(1));
    }
    let smtp = service.scheduler_with(TaskClass::Io, throttle)?;
    let mailer = Mailer::new(
        SocketAddr::from(([127, 0, 0, 1], port)),
        config.smtp_connections,
        Duration::from_secs(30),
    );
    let sender = Arc::new(Sender {
        smtp: smtp.clone(),
        mailer,
        max_attempts: config.max_attempts.max(1),
        first_backoff: config.first_backoff,
        progress: progress.clone(),
        send_nanos: AtomicU64::new(0),
        tries: AtomicU64::new(0),
    });

    let log = Arc::new(Mutex::new(Vec::with_capacity(store.len())));
    let batch_size = config.batch_size.max(1);
    let (fetch_store, send_sender, record_log) = (store.clone(), sender.clone(), log.clone());
    let campaign = Flow::builder(service)
        .name("campaign")
        .io(move |batch: usize| {
            fetch_store
                .fetch(batch * batch_size, batch_size)
                .map_err(|e| e.to_string())
        })
        .intensive(|subscribers: Result<Vec<Subscriber>, String>| {
            subscribers.map(|subscribers| {
                subscribers
                    .iter()
                    .map(|s| {
                        render(s).map_err(|error| Delivery {
                            id: s.id,
                            email: s.email.clone(),
                            attempts: 0,
                            result: Err(error),
                        })
                    })
                    .collect::<Vec<_>>()
            })
        })
        .io(
            move |rendered: Result<Vec<Result<Rendered, Delivery>>, String>| {
                rendered.map(|batch| send_batch(&send_sender, batch))
            },
        )
        .light(move |deliveries: Result<Vec<Delivery>, String>| {
            deliveries.map(|deliveries| {
                let count = deliveries.len();
                record_log.lock().extend(deliveries);
                count
            })
        })
        .max_concurrency(config.batches_in_flight.max(1))
        .build();

    let started = Instant::now();
    let batches = store.len().div_ceil(batch_size);
    let mut runs = Vec::with_capacity(batches);
    for batch in 0..batches {
        runs.push((
            batch,
            campaign
                .run(batch)
                .map_err(|r| format!("batch {batch}: {:?}", r.kind()))?,
        ));
    }
    let mut batch_errors = Vec::new();
    for (batch, run) in runs {
        match run.join() {
            Ok(Ok(_recorded)) => {}
            Ok(Err(error)) => batch_errors.push(format!("batch {batch}: {error}")),
            Err(error) => batch_errors.push(format!("batch {batch}: {error}")),
        }
    }
    let wall = started.elapsed();
    smtp.shutdown();
    drop(campaign);

    let deliveries = std::mem::take(&mut *log.lock());
    let retries = deliveries
        .iter()
        .map(|d| u64::from(d.attempts.saturating_sub(1)))
        .sum();
    let (sent, failed): (Vec<_>, Vec<_>) = deliveries.into_iter().partition(|d| d.result.is_ok());
    let tries = sender.tries.load(Ordering::Relaxed);
    let mean_send = Duration::from_nanos(sender.send_nanos.load(Ordering::Relaxed) / tries.max(1));
    Ok(CampaignReport {
        mean_send,
        sent: sent.len(),
        failed,
        retries,
        wall,
        batch_errors,
    })
}

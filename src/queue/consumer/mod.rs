//! [`Consumer`] and [`ConsumerBuilder`]: a thread that takes jobs from a queue engine only as
//! fast as a scheduler or flow can start them, and settles each by its handler's [`Outcome`].
//!
//! What lives where: the thread's loop (`driver.rs`), its book of held jobs (`book.rs`), the
//! mailbox other threads reach it through (`mailbox.rs`), the target it runs jobs on
//! (`target.rs`), the retry back-off (`retry.rs`), the counters (`metrics.rs`); the protocol
//! in `README.md`.

mod book;
mod driver;
mod mailbox;
mod metrics;
mod retry;
mod target;

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::queue::{Backend, Delivery, Outcome};
use crate::{Flow, Scheduler};

use driver::{Driver, Settings};
use mailbox::Mailbox;
pub use metrics::ConsumerMetrics;
use metrics::Counters;
use retry::RetryBackoff;
use target::Target;

/// What a consumer's stop came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerReport {
    /// Jobs that finished (and were settled) after the stop was asked for.
    pub finished: u64,
    /// Prefetched jobs returned to the queue unstarted.
    pub returned: u64,
    /// Jobs still running when the grace period ended: returned to the queue, their outcome
    /// ignored (another consumer will run them again).
    pub abandoned: u64,
    /// How long the consumer ran.
    pub elapsed: Duration,
    /// The counters at the end.
    pub metrics: ConsumerMetrics,
}

/// Why a consumer did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// A setting no clock can honour (a duration that overflows an `Instant`).
    #[error("consumer {name}: {setting} of {value:?} is too long")]
    Setting {
        /// The consumer's name.
        name: String,
        /// The builder method.
        setting: &'static str,
        /// The value given.
        value: Duration,
    },
    /// The operating system refused the consumer's thread.
    #[error("cannot start the thread of consumer {name}: {source}")]
    Spawn {
        /// The consumer's name.
        name: String,
        /// The refusal.
        source: std::io::Error,
    },
}

/// Settings of a [`Consumer`]; made by [`Consumer::builder`].
pub struct ConsumerBuilder<B> {
    backend: B,
    settings: Settings,
}

impl<B> fmt::Debug for ConsumerBuilder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> ConsumerBuilder<B> {
    /// The consumer's name, in logs and in its thread's name `{name}.consumer` (default
    /// `uberpool`).
    pub fn name(mut self, name: &str) -> Self {
        self.settings.name = name.to_owned();
        self
    }

    /// Jobs reserved ahead beyond the target's free room (default 1): enough to keep a fast
    /// target busy across a round trip, few enough that a slow process holds little that
    /// another could run.
    pub fn prefetch(mut self, jobs: usize) -> Self {
        self.settings.prefetch = jobs;
        self
    }

    /// Deliveries a job gets before it is dead-lettered (default 5, at least 1). A failure on
    /// the last one buries the job; a job delivered more often than this without an outcome
    /// (its workers crashed, or ran past the lease) is buried unrun.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts.max(1);
        self
    }

    /// The back-off of a retried job: a random wait between half and all of
    /// `first · 2^(attempt-1)`, at most `max` (default 1 s to 5 min). beanstalkd counts it in
    /// whole seconds, rounded up.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.settings.backoff = RetryBackoff {
            first,
            max: max.max(first),
        };
        self
    }

    /// How long a stop lets running jobs finish before giving them back to the queue (default
    /// 15 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.settings.grace = grace;
        self
    }

    /// How long the consumer waits on an empty queue before looking again (default 1 s). With
    /// nothing held, the wait is a reserve in the engine (a new job is taken the moment it is
    /// put; a stop is seen when the reserve returns, and beanstalkd counts the wait in whole
    /// seconds, rounded up). With jobs held, it waits for them instead and polls the queue at
    /// every finished job and at least this often.
    pub fn reserve_wait(mut self, wait: Duration) -> Self {
        self.settings.reserve_wait = wait;
        self
    }

    /// The most jobs reserved in one round trip (default 16, at least 1).
    pub fn batch(mut self, jobs: usize) -> Self {
        self.settings.batch = jobs.max(1);
        self
    }

    /// Starts the consumer: each job runs as `handler(&delivery)` on `scheduler`.
    pub fn start<F>(self, scheduler: &Scheduler, handler: F) -> Result<Consumer, ConsumerError>
    where
        F: Fn(&Delivery) -> Outcome + Send + Sync + 'static,
    {
        let target = Target::Scheduler {
            scheduler: scheduler.clone(),
            handler: Arc::new(handler),
        };
        self.spawn(target)
    }

    /// Starts the consumer: each job runs through `flow`.
    pub fn start_flow(self, flow: &Flow<Delivery, Outcome>) -> Result<Consumer, ConsumerError> {
        self.spawn(Target::Flow(flow.clone()))
    }

    fn spawn(self, target: Target) -> Result<Consumer, ConsumerError> {
        let now = Instant::now();
        for (setting, value) in [
            ("grace", self.settings.grace),
            ("reserve_wait", self.settings.reserve_wait),
        ] {
            if now.checked_add(value.saturating_mul(2)).is_none() {
                return Err(ConsumerError::Setting {
                    name: self.settings.name,
                    setting,
                    value,
                });
            }
        }
        let mailbox = Arc::new(Mailbox::new());
        let counters = Arc::new(Counters::default());
        let name = self.settings.name.clone();
        let grace = self.settings.grace;
        let driver = Driver::new(
            self.backend,
            target,
            self.settings,
            mailbox.clone(),
            counters.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("{name}.consumer"))
            .spawn(move || driver.run())
            .map_err(|source| ConsumerError::Spawn {
                name: name.clone(),
                source,
            })?;
        Ok(Consumer {
            name,
            grace,
            mailbox,
            counters,
            thread: Some(thread),
        })
    }
}

/// Takes jobs from a queue engine and runs them on a [`Scheduler`] or a [`Flow`], only as fast
/// as the target can start them.
///
/// One thread per consumer, named `{name}.consumer`, holds the connection: it reserves when
/// the target has room (its [`free_slots`](Scheduler::free_slots) plus a small prefetch),
/// hands each job to the target, and settles it by the handler's [`Outcome`]: delete on
/// [`Done`](Outcome::Done), release with back-off on [`Retry`](Outcome::Retry) (bury after
/// the last attempt), bury on [`Fail`](Outcome::Fail); a panic counts as a retry. A job that
/// runs past half its lease has the lease extended. See the [module docs](crate::queue).
///
/// Dropping a consumer stops it as [`stop`](Self::stop) does.
pub struct Consumer {
    name: String,
    grace: Duration,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    /// The consumer thread, until joined.
    thread: Option<JoinHandle<ConsumerReport>>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl Consumer {
    /// Settings for a consumer of `backend`'s jobs.
    pub fn builder<B: Backend>(backend: B) -> ConsumerBuilder<B> {
        ConsumerBuilder {
            backend,
            settings: Settings {
                name: "uberpool".to_owned(),
                prefetch: 1,
                max_attempts: 5,
                backoff: RetryBackoff {
                    first: Duration::from_secs(1),
                    max: Duration::from_secs(300),
                },
                grace: Duration::from_secs(15),
                reserve_wait: Duration::from_secs(1),
                batch: 16,
                room_poll: Duration::from_millis(25),
            },
        }
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The consumer's counters now.
    pub fn metrics(&self) -> ConsumerMetrics {
        self.counters.snapshot()
    }

    /// Asks the consumer to stop, without waiting: it stops reserving, returns its prefetched
    /// jobs, and lets running ones finish within the grace period. [`stop`](Self::stop) waits.
    pub fn shutdown(&self) {
        self.mailbox.post_stop(
            Instant::now()
                .checked_add(self.grace)
                .unwrap_or_else(Instant::now),
        );
    }

    /// `true` once the consumer's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread
            .as_ref()
            .is_none_or(|thread| thread.is_finished())
    }

    /// Stops with the configured grace period and waits for the consumer to drain.
    pub fn stop(self) -> ConsumerReport {
        let grace = self.grace;
        self.stop_within(grace)
    }

    /// Stops, letting running jobs finish within `grace` (jobs still running then go back to
    /// the queue), and waits for the consumer to drain.
    pub fn stop_within(mut self, grace: Duration) -> ConsumerReport {
        self.mailbox.post_stop(
            Instant::now()
                .checked_add(grace)
                .unwrap_or_else(Instant::now),
        );
        self.join()
    }

    fn join(&mut self) -> ConsumerReport {
        let Some(thread) = self.thread.take() else {
            return ConsumerReport {
                metrics: self.metrics(),
                ..ConsumerReport::default()
            };
        };
        match thread.join() {
            Ok(report) => report,
            Err(_) => {
                tracing::error!(consumer = %self.name, "the consumer thread panicked; the queue delivers its jobs again");
                ConsumerReport {
                    metrics: self.metrics(),
                    ..ConsumerReport::default()
                }
            }
        }
    }
}

/// `grace` from now; a grace too long for the clock is as good as forever (a year).
pub(crate) fn deadline_after(grace: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(grace)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(now)
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
            self.join();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_grace_too_long_for_the_clock_is_a_far_deadline_not_a_panic() {
        let now = Instant::now();
        assert!(deadline_after(Duration::MAX) > now + Duration::from_secs(86_400));
        let soon = deadline_after(Duration::from_secs(1));
        assert!(soon > now && soon <= Instant::now() + Duration::from_secs(1));
    }
}

//! The consumer thread's loop: settle what finished, extend leases that need it, reserve as
//! many jobs as the target has room for (plus the prefetch), hand them to the target, and
//! drain on stop. The protocol and its argument are in `README.md` beside this file.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::ConsumerReport;
use super::book::{Book, Held};
use super::mailbox::{Inbox, Mailbox};
use super::metrics::Counters;
use super::retry::{Jitter, RetryBackoff};
use super::target::Target;
use crate::queue::{Backend, Delivery, Outcome, Reserved, Settle, Settled, Settlement};
use crate::{RejectKind, TaskError};

/// Waits between reconnect attempts: 50 ms doubling up to 5 s.
const RECONNECT_BACKOFF: RetryBackoff = RetryBackoff {
    first: Duration::from_millis(50),
    max: Duration::from_secs(5),
};

/// A lease warning extends the leases that end within this margin.
const LEASE_WARNING_MARGIN: Duration = Duration::from_millis(1500);

/// The consumer's settings, fixed at start.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) prefetch: usize,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: RetryBackoff,
    pub(crate) grace: Duration,
    pub(crate) reserve_wait: Duration,
    pub(crate) batch: usize,
    pub(crate) room_poll: Duration,
}

/// Wakes the consumer thread when a held job's task finishes.
struct FinishWaker {
    key: u64,
    mailbox: Arc<Mailbox>,
}

impl Wake for FinishWaker {
    fn wake(self: Arc<Self>) {
        self.mailbox.post_finished(self.key);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.mailbox.post_finished(self.key);
    }
}

pub(crate) struct Driver<B: Backend> {
    backend: B,
    target: Target,
    settings: Settings,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    source: Arc<str>,
    book: Book,
    /// Settlements of jobs held under the current session, to send with the next exchange.
    pending: Vec<Settlement>,
    /// Acknowledgements of jobs whose lease was lost (an earlier session): still worth
    /// sending, since deleting a job that is back in the queue spares a second run.
    stale_acks: Vec<Settlement>,
    /// The backend session the book's current jobs were reserved under.
    session: u64,
    /// The last reserve found fewer jobs than asked for.
    queue_empty: bool,
    /// Reserving is paused for lack of room (counted once per pause).
    held_back: bool,
    /// Set once a stop was asked for (or the target shut down): the instant to give up on
    /// running jobs.
    stop: Option<Instant>,
    started: Instant,
    rng: Jitter,
    report: ConsumerReport,
}

impl<B: Backend> Driver<B> {
    pub(crate) fn new(
        backend: B,
        target: Target,
        settings: Settings,
        mailbox: Arc<Mailbox>,
        counters: Arc<Counters>,
    ) -> Self {
        let source: Arc<str> = Arc::from(backend.source());
        let session = backend.session();
        Driver {
            backend,
            target,
            settings,
            mailbox,
            counters,
            source,
            book: Book::default(),
            pending: Vec::new(),
            stale_acks: Vec::new(),
            session,
            queue_empty: false,
            held_back: false,
            stop: None,
            started: Instant::now(),
            rng: Jitter::new(),
            report: ConsumerReport::default(),
        }
    }

    /// Runs until stopped and drained; returns the report.
    pub(crate) fn run(mut self) -> ConsumerReport {
        tracing::info!(consumer = %self.settings.name, source = %self.source, target = %self.target.name(), "consumer started");
        loop {
            let inbox = self.mailbox.take();
            self.absorb(inbox);
            self.start_prefetched();
            let now = Instant::now();
            for job in self.book.due_extensions(now, self.session) {
                self.pending.push(Settlement {
                    job,
                    action: Settle::ExtendLease,
                });
            }
            self.publish_gauges();
            if let Some(deadline) = self.stop {
                if self.book.is_empty() && self.pending.is_empty() && self.stale_acks.is_empty() {
                    break;
                }
                if now >= deadline {
                    self.abandon_running();
                    self.flush_once();
                    break;
                }
            }
            self.step(now);
        }
        self.publish_gauges();
        self.report.elapsed = self.started.elapsed();
        self.report.metrics = self.counters.snapshot();
        tracing::info!(consumer = %self.settings.name, report = ?self.report, "consumer stopped");
        self.report
    }

    /// One turn: send what is pending and reserve what there is room for, or wait.
    fn step(&mut self, now: Instant) {
        let want = self.want();
        if want > 0 {
            self.held_back = false;
        }
        let pending = !self.pending.is_empty() || !self.stale_acks.is_empty();
        if pending || (want > 0 && !self.queue_empty) {
            self.exchange(want, Duration::ZERO);
        } else if want > 0 && self.book.is_empty() {
            // Nothing held and the queue was empty: wait in the engine, which hands over the
            // next job the moment it is put. Nothing can finish meanwhile, so nothing waits
            // to be settled.
            Counters::add(&self.counters.empty_waits, 1);
            self.exchange(1, self.settings.reserve_wait);
        } else {
            // Jobs held and the queue empty, or no room at the target, or stopping: wait on
            // the mailbox — for a job to finish (its settlement goes out at once, with a poll
            // of the queue), a lease to need extending, the stop deadline, or a timeout after
            // which the queue (`reserve_wait`) or the target's room (`room_poll`: other
            // submitters free room without telling us) is looked at again.
            let poll = if want > 0 {
                Counters::add(&self.counters.empty_waits, 1);
                self.settings.reserve_wait
            } else {
                if self.stop.is_none() && !self.held_back {
                    self.held_back = true;
                    Counters::add(&self.counters.reserve_waits, 1);
                }
                self.settings.room_poll
            };
            let mut until = match self.stop {
                Some(deadline) => Some(deadline),
                None => now.checked_add(poll),
            };
            if let Some(at) = self.book.next_extension(self.session) {
                until = Some(until.map_or(at, |u| u.min(at)));
            }
            self.mailbox.wait(until);
            if want > 0 {
                self.queue_empty = false;
            }
        }
    }

    /// Jobs to reserve now: the target's room plus the prefetch, less what is already
    /// prefetched, at most one batch.
    fn want(&self) -> usize {
        if self.stop.is_some() {
            return 0;
        }
        self.target
            .free_slots()
            .saturating_add(self.settings.prefetch)
            .saturating_sub(self.book.prefetched_len())
            .min(self.settings.batch)
    }

    /// Takes in what other threads posted: a stop, finished jobs.
    fn absorb(&mut self, inbox: Inbox) {
        if let Some(deadline) = inbox.stop {
            self.begin_stop(deadline);
        }
        for key in inbox.finished {
            self.poll(key);
        }
    }

    /// Stops reserving and returns the prefetched jobs (at once, unstarted).
    fn begin_stop(&mut self, deadline: Instant) {
        if let Some(current) = self.stop {
            self.stop = Some(current.min(deadline));
            return;
        }
        tracing::info!(consumer = %self.settings.name, held = self.book.running_len(), "consumer stopping");
        self.stop = Some(deadline);
        for held in self.book.take_prefetched() {
            self.report.returned += 1;
            self.push(
                &held,
                Settle::Retry {
                    delay: Duration::ZERO,
                },
            );
        }
    }

    /// Hands prefetched jobs to the target while it takes them.
    fn start_prefetched(&mut self) {
        while self.stop.is_none() {
            let Some((key, delivery)) = self.book.next_prefetched() else {
                return;
            };
            match self.target.try_start(delivery.clone()) {
                Ok(handle) => {
                    self.book.started(key, handle);
                    self.poll(key);
                }
                Err(RejectKind::Shutdown) => {
                    tracing::info!(consumer = %self.settings.name, target = %self.target.name(), "the consumer's target shut down");
                    let deadline = super::deadline_after(self.settings.grace);
                    self.begin_stop(deadline);
                }
                Err(_) => return,
            }
        }
    }

    /// Polls a running job's handle; settles the job if it finished.
    fn poll(&mut self, key: u64) {
        let mailbox = self.mailbox.clone();
        let Some(handle) = self.book.handle_mut(key) else {
            return; // settled already, or a repeated wake
        };
        let waker = Waker::from(Arc::new(FinishWaker { key, mailbox }));
        let mut cx = Context::from_waker(&waker);
        if let Poll::Ready(result) = Pin::new(handle).poll(&mut cx)
            && let Some(held) = self.book.remove(key)
        {
            self.finished(held, result);
        }
    }

    /// Turns a finished job's outcome into its settlement.
    fn finished(&mut self, held: Held, result: Result<Outcome, TaskError>) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(TaskError::Cancelled) => {
                // The target dropped it unrun (shut down): return it to the queue as it was.
                self.push(
                    &held,
                    Settle::Retry {
                        delay: Duration::ZERO,
                    },
                );
                return;
            }
            Err(error) => Outcome::retry(format!("the handler did not finish: {error}")),
        };
        if self.stop.is_some() {
            self.report.finished += 1;
        }
        let attempt = held.delivery.attempt();
        let action = match outcome {
            Outcome::Done => Settle::Ack,
            Outcome::Retry { reason, after } => {
                Counters::add(&self.counters.failures, 1);
                if attempt >= self.settings.max_attempts {
                    let reason = format!(
                        "{reason} (attempt {attempt} of {})",
                        self.settings.max_attempts
                    );
                    tracing::warn!(consumer = %self.settings.name, job = %held.delivery.id(), %reason, "job out of attempts: dead-lettered");
                    Settle::DeadLetter { reason }
                } else {
                    let delay = after
                        .unwrap_or_else(|| self.settings.backoff.delay(attempt, &mut self.rng));
                    tracing::debug!(consumer = %self.settings.name, job = %held.delivery.id(), attempt, ?delay, %reason, "job failed: retried later");
                    Settle::Retry { delay }
                }
            }
            Outcome::Fail { reason } => {
                Counters::add(&self.counters.failures, 1);
                tracing::warn!(consumer = %self.settings.name, job = %held.delivery.id(), %reason, "job failed for good: dead-lettered");
                Settle::DeadLetter { reason }
            }
        };
        self.push(&held, action);
    }

    /// Queues a settlement for `held`. A job reserved under an earlier session is no longer
    /// held: only its acknowledgement is still sent.
    fn push(&mut self, held: &Held, action: Settle) {
        let settlement = Settlement {
            job: held.delivery.id().clone(),
            action,
        };
        if held.session == self.session {
            self.pending.push(settlement);
        } else if settlement.action == Settle::Ack {
            self.stale_acks.push(settlement);
        }
    }

    /// A job just reserved: dead-lettered at once when delivered too often, else prefetched.
    fn accept(&mut self, reserved: Reserved, now: Instant) {
        Counters::add(&self.counters.reserved, 1);
        if reserved.deliveries > self.settings.max_attempts {
            let reason = format!(
                "delivered {} times, over the limit of {} attempts, without an outcome \
                 (workers crashed or ran past the lease)",
                reserved.deliveries, self.settings.max_attempts
            );
            tracing::warn!(consumer = %self.settings.name, job = %reserved.id, %reason, "job dead-lettered unrun");
            self.pending.push(Settlement {
                job: reserved.id,
                action: Settle::DeadLetter { reason },
            });
            return;
        }
        let delivery = Delivery::new(
            reserved.id,
            reserved.body,
            reserved.deliveries.max(1),
            reserved.lease,
            self.source.clone(),
        );
        self.book.insert(delivery, self.session, now);
    }

    /// Sends the pending settlements and reserves up to `max` jobs; reconnects on failure.
    fn exchange(&mut self, max: usize, wait: Duration) {
        let current = std::mem::take(&mut self.pending);
        let stale = std::mem::take(&mut self.stale_acks);
        let mut settlements = current;
        let split = settlements.len();
        settlements.extend(stale);
        match self.backend.exchange(&settlements, max, wait) {
            Ok(exchange) => {
                self.account(&settlements, split, &exchange.settled);
                let now = Instant::now();
                if exchange.lease_warning {
                    self.book
                        .hasten_extensions(now, LEASE_WARNING_MARGIN, self.session);
                    self.queue_empty = true;
                }
                if max > 0 {
                    self.queue_empty = exchange.reserved.len() < max;
                }
                for reserved in exchange.reserved {
                    self.accept(reserved, now);
                }
                self.start_prefetched();
            }
            Err(error) => {
                tracing::warn!(consumer = %self.settings.name, source = %self.source, %error, "queue exchange failed; reconnecting");
                // Which settlements took effect is unknown. Acknowledgements are sent again
                // (a repeat finds the job gone, which is harmless); the rest lapse with the
                // lease, and the engine delivers those jobs again.
                for settlement in settlements {
                    if settlement.action == Settle::Ack {
                        self.stale_acks.push(settlement);
                    }
                }
                self.reconnect();
            }
        }
    }

    /// Counts what the engine did with each settlement. Entries from `split` on are stale
    /// acknowledgements, whose lost lease was counted when the session moved on.
    fn account(&mut self, settlements: &[Settlement], split: usize, settled: &[Settled]) {
        let c = &self.counters;
        for (i, (settlement, result)) in settlements.iter().zip(settled).enumerate() {
            match (&settlement.action, result) {
                (Settle::Ack, Settled::Applied) => Counters::add(&c.deleted, 1),
                (Settle::Retry { .. }, Settled::Applied) => Counters::add(&c.released, 1),
                (Settle::Retry { .. }, Settled::DeadLettered)
                | (Settle::DeadLetter { .. }, Settled::Applied) => Counters::add(&c.buried, 1),
                (Settle::ExtendLease, Settled::Applied) => Counters::add(&c.touched, 1),
                (Settle::ExtendLease, Settled::Gone) => {
                    tracing::debug!(consumer = %self.settings.name, job = %settlement.job, "lease ran out before it was extended");
                }
                (_, Settled::Gone) => {
                    if i < split {
                        Counters::add(&c.lost_leases, 1);
                    }
                }
                (action, Settled::Failed(reason)) => {
                    tracing::warn!(consumer = %self.settings.name, job = %settlement.job, ?action, %reason, "the queue refused a settlement");
                }
                (_, Settled::DeadLettered) => {}
            }
        }
    }

    /// Connects again, waiting with back-off between attempts (and taking in posts
    /// meanwhile), until it works or a stop's deadline passes.
    fn reconnect(&mut self) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.backend.reconnect() {
                Ok(()) => {
                    Counters::add(&self.counters.reconnects, 1);
                    break;
                }
                Err(error) => {
                    if attempt == 1 || attempt % 10 == 0 {
                        tracing::warn!(consumer = %self.settings.name, source = %self.source, attempt, %error, "cannot reconnect to the queue");
                    }
                    let until =
                        super::deadline_after(RECONNECT_BACKOFF.delay(attempt, &mut self.rng));
                    while Instant::now() < until {
                        self.mailbox.wait(Some(until));
                        let inbox = self.mailbox.take();
                        self.absorb(inbox);
                        if self.stop.is_some_and(|deadline| Instant::now() >= deadline) {
                            return;
                        }
                    }
                }
            }
        }
        let session = self.backend.session();
        if session != self.session {
            let lost = self.book.drop_stale_prefetched(session) + self.book.stale_running(session);
            Counters::add(&self.counters.lost_leases, lost as u64);
            for settlement in std::mem::take(&mut self.pending) {
                if settlement.action == Settle::Ack {
                    self.stale_acks.push(settlement);
                }
            }
            self.session = session;
        }
        self.queue_empty = false;
    }

    /// The grace period is over: running jobs are given back to the queue (their tasks run on,
    /// but their outcome no longer counts).
    fn abandon_running(&mut self) {
        for held in self.book.take_running() {
            self.report.abandoned += 1;
            self.push(
                &held,
                Settle::Retry {
                    delay: Duration::ZERO,
                },
            );
        }
        if self.report.abandoned > 0 {
            tracing::warn!(consumer = %self.settings.name, abandoned = self.report.abandoned, "jobs still running at the end of the grace period were returned to the queue");
        }
    }

    /// Sends what is pending, once, without reconnecting.
    fn flush_once(&mut self) {
        if self.pending.is_empty() && self.stale_acks.is_empty() {
            return;
        }
        let mut settlements = std::mem::take(&mut self.pending);
        let split = settlements.len();
        settlements.append(&mut self.stale_acks);
        match self.backend.exchange(&settlements, 0, Duration::ZERO) {
            Ok(exchange) => self.account(&settlements, split, &exchange.settled),
            Err(error) => {
                tracing::warn!(consumer = %self.settings.name, %error, unsent = settlements.len(), "final settlements not sent; the queue delivers those jobs again");
            }
        }
    }

    fn publish_gauges(&self) {
        Counters::set(&self.counters.running, self.book.running_len() as u64);
        Counters::set(&self.counters.prefetched, self.book.prefetched_len() as u64);
    }
}

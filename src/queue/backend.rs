//! [`Backend`]: what the [`Consumer`](super::Consumer) needs of a queue engine — reserve up to
//! n jobs, settle the ones it holds (acknowledge, retry after a delay, dead-letter, extend the
//! lease), reconnect — and the values that cross it.
//!
//! One implementation per engine lives in its own module (`beanstalkd`); the consumer's code
//! knows none of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A job's id in its engine: a number (beanstalkd) or a string (stream entry ids).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(IdRepr);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum IdRepr {
    Number(u64),
    Text(Arc<str>),
}

impl JobId {
    /// A numeric id.
    pub fn number(id: u64) -> JobId {
        JobId(IdRepr::Number(id))
    }

    /// A textual id.
    pub fn text(id: impl Into<Arc<str>>) -> JobId {
        JobId(IdRepr::Text(id.into()))
    }

    /// The id as a number, if it is one.
    pub fn as_number(&self) -> Option<u64> {
        match self.0 {
            IdRepr::Number(id) => Some(id),
            IdRepr::Text(_) => None,
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            IdRepr::Number(id) => write!(f, "{id}"),
            IdRepr::Text(id) => f.write_str(id),
        }
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

/// A job the engine handed to this consumer.
#[derive(Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The job's id.
    pub id: JobId,
    /// The job's body.
    pub body: Vec<u8>,
    /// How many times the engine has handed the job out, this time included (1 the first
    /// time). Deliveries that ended in a crash, a lease that ran out, or a return at shutdown
    /// count too.
    pub deliveries: u32,
    /// How long the consumer holds the job before the engine gives it to another consumer,
    /// unless the lease is extended. Zero: the engine has no lease.
    pub lease: Duration,
}

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reserved")
            .field("id", &self.id)
            .field("body_len", &self.body.len())
            .field("deliveries", &self.deliveries)
            .field("lease", &self.lease)
            .finish()
    }
}

/// What to do with a job the consumer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The job is done: remove it from the queue.
    Ack,
    /// Give the job back, to be delivered again after `delay`.
    Retry {
        /// The wait before the job is ready again.
        delay: Duration,
    },
    /// Set the job aside for people to look at (beanstalkd buries it); `reason` says why.
    DeadLetter {
        /// Why the job is given up.
        reason: String,
    },
    /// Restart the job's lease: it is still being worked on.
    ExtendLease,
}

/// One job and what to do with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The job.
    pub job: JobId,
    /// What to do with it.
    pub action: Settle,
}

/// What became of one [`Settlement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Done as asked.
    Applied,
    /// The engine had no such job held by this consumer: its lease ran out (or its connection
    /// was lost) and the job went back to the queue, or it is already gone.
    Gone,
    /// A retry that the engine turned into a dead letter (beanstalkd buries a released job it
    /// has no memory for).
    DeadLettered,
    /// The engine refused, for the reason given; the job stays as it was.
    Failed(String),
}

/// The result of one [`Backend::exchange`].
#[derive(Debug, Default)]
pub struct Exchange {
    /// One entry per settlement, in order.
    pub settled: Vec<Settled>,
    /// The jobs reserved, in the order the engine handed them out.
    pub reserved: Vec<Reserved>,
    /// The engine warned that a held job's lease is about to run out (beanstalkd's
    /// `DEADLINE_SOON`): extend the leases that are close.
    pub lease_warning: bool,
}

/// A queue engine as the [`Consumer`](super::Consumer) sees it.
///
/// The consumer calls it from its one thread, in a loop: settle what finished and reserve as
/// many jobs as its target can start, in one [`exchange`](Backend::exchange). When an
/// exchange fails, the consumer calls [`reconnect`](Backend::reconnect), waiting with back-off
/// between attempts, and compares [`session`](Backend::session) before and after to learn
/// whether it still holds the jobs it reserved.
pub trait Backend: Send + 'static {
    /// What goes wrong talking to the engine.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Where the jobs come from, for logs: engine, address, queue.
    fn source(&self) -> String;

    /// Carries out `settlements` in order, then reserves up to `max` jobs. With a non-zero
    /// `wait` and no job ready, waits up to `wait` for one (and may then return just one). One
    /// round trip where the engine allows it.
    ///
    /// An `Err` means the connection failed: which settlements took effect is unknown.
    fn exchange(
        &mut self,
        settlements: &[Settlement],
        max: usize,
        wait: Duration,
    ) -> Result<Exchange, Self::Error>;

    /// Tries once to connect again after a failed exchange.
    fn reconnect(&mut self) -> Result<(), Self::Error>;

    /// Identifies the holder of the consumer's leases. When it changes (beanstalkd: a new
    /// connection), every job reserved under the old value is back in the queue and no
    /// longer the consumer's to settle. Engines whose leases survive reconnects keep it fixed.
    fn session(&self) -> u64;
}

//! [`Delivery`] (one job as the handler sees it) and [`Outcome`] (what the handler says became
//! of it).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backend::JobId;

/// One delivery of a job to a handler: its id, body, and which attempt this is.
///
/// Cheap to clone (the body is shared). Delivery is at least once: a job can reach handlers
/// again after a crash or a lost lease, so effects outside the process should be made
/// idempotent with a key carried in the body (see the [module docs](super)).
#[derive(Clone)]
pub struct Delivery {
    id: JobId,
    body: Arc<[u8]>,
    attempt: u32,
    lease: Duration,
    source: Arc<str>,
}

impl Delivery {
    pub(crate) fn new(
        id: JobId,
        body: Vec<u8>,
        attempt: u32,
        lease: Duration,
        source: Arc<str>,
    ) -> Delivery {
        Delivery {
            id,
            body: body.into(),
            attempt,
            lease,
            source,
        }
    }

    /// The job's id in its engine.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The job's body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Which delivery this is: 1 the first time. Deliveries that ended in a crash, a lost
    /// lease or a return at shutdown count too, so this can exceed the failures seen.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The job's lease (time to run). The consumer extends it while the handler runs.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Where the job came from (engine, address, queue).
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("body_len", &self.body.len())
            .field("attempt", &self.attempt)
            .field("lease", &self.lease)
            .field("source", &self.source)
            .finish()
    }
}

/// What became of a job: the handler's answer, which the consumer carries out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the job is removed from the queue.
    Done,
    /// A transient failure: the job goes back to the queue and is delivered again after a
    /// back-off (exponential, with jitter, or `after` when given) — unless this was the last
    /// attempt the consumer allows, then it is dead-lettered.
    Retry {
        /// What went wrong, for the logs and the dead letter.
        reason: String,
        /// The wait before the next delivery, instead of the consumer's back-off.
        after: Option<Duration>,
    },
    /// A permanent failure: the job is dead-lettered (buried) at once.
    Fail {
        /// What went wrong.
        reason: String,
    },
}

impl Outcome {
    /// A transient failure, retried after the consumer's back-off.
    pub fn retry(reason: impl Into<String>) -> Outcome {
        Outcome::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// A transient failure, retried after `delay`.
    pub fn retry_after(delay: Duration, reason: impl Into<String>) -> Outcome {
        Outcome::Retry {
            reason: reason.into(),
            after: Some(delay),
        }
    }

    /// A permanent failure: dead-letter the job.
    pub fn fail(reason: impl Into<String>) -> Outcome {
        Outcome::Fail {
            reason: reason.into(),
        }
    }
}

//! Durable job queues across processes: work kept in a queue engine outside the process, and
//! every process a capacity-aware [`Consumer`] of it. Behind cargo features: `queue` for the
//! consumer and the [`Backend`] interface, `beanstalkd` for the `beanstalkd` client and
//! backend, `redis` for the Redis Streams backend (`redis`, single server or cluster); both
//! enable `queue`.
//!
//! # The model
//!
//! A producer puts one job per unit of work (one message of a campaign, say) into the engine.
//! Any number of worker processes, on any number of hosts, each run a [`Consumer`] that
//! takes jobs **only when its target can start them**: the target's free room
//! ([`Scheduler::free_slots`](crate::Scheduler::free_slots) or
//! [`Flow::free_slots`](crate::Flow::free_slots)) plus a small prefetch. A slow process
//! therefore holds little that another could run, and a fast one takes more: the engine's
//! queue is the only backlog, and back pressure reaches it.
//!
//! Each job runs on the target as a handler call (or a flow run) that returns an [`Outcome`]:
//!
//! | outcome | what the consumer does |
//! |---|---|
//! | [`Done`](Outcome::Done) | acknowledges: the job is deleted |
//! | [`Retry`](Outcome::Retry), or the handler panicked | releases it with exponential back-off and jitter; after the last attempt, dead-letters it |
//! | [`Fail`](Outcome::Fail) | dead-letters it at once (beanstalkd: buries it) |
//!
//! A job that runs past half its lease (beanstalkd's TTR) has the lease extended. On
//! [`Consumer::stop`] the consumer stops reserving, returns its prefetched jobs at once, lets
//! running ones finish within the grace period and returns those that do not.
//!
//! # Delivery: at least once; effects: exactly once through an idempotency key
//!
//! A worker can die between doing a job's effect and acknowledging it (killed, out of memory,
//! a host lost); its jobs then go back to the queue and run again elsewhere. No consumer can
//! avoid that from its side. Give every job an idempotency key (in its body) and have the sink
//! of its effect drop a key it has seen — the email example's relay drops a message whose
//! `X-Idempotency-Key` it already accepted. Then every effect happens once, whichever worker
//! dies when.
//!
//! # Example
//!
//! With beanstalkd (the Redis backend is used the same way: see the `redis` module's docs when built
//! with its feature):
//!
#![cfg_attr(feature = "beanstalkd", doc = "```no_run")]
#![cfg_attr(not(feature = "beanstalkd"), doc = "```ignore")]
//! use std::time::Duration;
//! use uberpool::queue::beanstalkd::{BeanstalkdBackend, Producer, PutOptions};
//! use uberpool::queue::{Consumer, Outcome};
//! use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
//!
//! // Producer side (any process):
//! let mut producer = Producer::connect("127.0.0.1:11300", "emails")?;
//! producer.put(b"campaign-7:alice@example.com", PutOptions::new().ttr(Duration::from_secs(30)))?;
//!
//! // Worker side (every worker process): at most 8 SMTP sessions at once.
//! let service = SchedulerService::builder().name("worker").build()?;
//! let smtp = service.scheduler_with(TaskClass::Io, SchedulerConfig::new().max_concurrent_tasks(8))?;
//! let consumer = Consumer::builder(BeanstalkdBackend::connect("127.0.0.1:11300", "emails")?)
//!     .prefetch(2)
//!     .max_attempts(5)
//!     .start(&smtp, |job| match job.text() {
//!         Some(key) => {
//!             println!("sending with idempotency key {key}");
//!             Outcome::Done
//!         }
//!         None => Outcome::fail("body is not UTF-8"),
//!     })?;
//! println!("{:?}", consumer.metrics());
//! let report = consumer.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
#[cfg(feature = "beanstalkd")]
pub mod beanstalkd;
mod consumer;
mod delivery;
#[cfg(feature = "redis")]
pub mod redis;

pub use backend::{Backend, Exchange, JobId, Reserved, Settle, Settled, Settlement};
pub use consumer::{Consumer, ConsumerBuilder, ConsumerError, ConsumerMetrics, ConsumerReport};
pub use delivery::{Delivery, Outcome};

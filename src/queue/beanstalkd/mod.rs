//! beanstalkd: a client of uberpool's own over one TCP connection ([`Client`]), a
//! [`Producer`] that pipelines puts, and [`BeanstalkdBackend`], the [`Consumer`]'s view of a
//! tube. Behind the cargo feature `beanstalkd`.
//!
//! The client speaks the protocol of beanstalkd 1.12: `put` (priority, delay, TTR), `use`,
//! `watch`, `ignore`, `reserve-with-timeout`, `delete`, `release`, `bury`, `kick`,
//! `kick-job`, `touch`, `stats-job`, `stats-tube` and `stats`. Every error reply of the
//! server is a variant of [`Error`]. Connections have connect and IO timeouts; a failed one is
//! dialled again with back-off on the next command, restoring the tubes used and watched.
//! Bodies over the client's limit are refused before anything is sent. Replies are parsed
//! without trusting the server: no byte sequence makes the parser panic or allocate more than
//! it received.
//!
//! # Durability
//!
//! Run the server with a binlog (`beanstalkd -b /var/lib/beanstalkd`): every `put`, `bury`,
//! `delete`, `kick` and delayed `release` is written before its reply, so a job whose put was
//! acknowledged survives a crash of the server process. A reservation is not logged: after a
//! restart, jobs that were reserved are ready again and will be delivered again (consumers
//! must be idempotent, see [`crate::queue`]). The server syncs the binlog to disk at most
//! every `-f` ms (50 by default), so a power loss can still lose the last acknowledged writes;
//! `-f 0` syncs every write, at a large cost in throughput.
//!
//! [`Consumer`]: crate::queue::Consumer

mod backend;
mod client;
mod conn;
mod error;
mod options;
mod producer;
mod proto;
mod stats;

pub use backend::BeanstalkdBackend;
pub use client::{Client, ClientBuilder, DEFAULT_MAX_BODY, DEFAULT_TUBE};
pub use error::Error;
pub use options::{Backoff, Job, PutOptions};
pub use producer::{CHUNK_BYTES, CHUNK_JOBS, Producer};
pub use stats::{JobState, JobStats, ServerStats, TubeStats};

//! Durable job queues across processes: work kept in a queue engine outside the process.
//! Behind cargo features: `queue`, and `beanstalkd` for the [`beanstalkd`] client (it enables
//! `queue`).

#[cfg(feature = "beanstalkd")]
pub mod beanstalkd;

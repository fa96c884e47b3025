//! Adaptive concurrency: a view's limit found from what its tasks show — the options
//! ([`AdaptiveConcurrency`]), the algorithm (`limit.rs`, pure: samples in, limit out, the time
//! carried by the samples), and its snapshot ([`AdaptiveStatus`]). What lives elsewhere: the gate
//! that owns a limit and applies it (`throttle/`), the task scope that takes each task's sample
//! and the calls a task makes to report its outcome (`view/scope.rs`:
//! [`report_overload`](crate::report_overload), [`ignore_sample`](crate::ignore_sample)). The
//! rules and invariants are in `README.md` beside this file.

mod config;
mod limit;
// The simulated-relay tests are left out under Miri: safe arithmetic in virtual time, thousands
// of simulated tasks per test, minutes each under the interpreter.
#[cfg(all(test, not(loom), not(miri)))]
mod sim;
mod status;
#[cfg(all(test, not(loom), not(miri)))]
mod tests;

pub use config::AdaptiveConcurrency;
pub(crate) use config::Params;
pub use limit::LimitDecision;
pub(crate) use limit::{AdaptiveLimit, Outcome, Sample, Step};
pub use status::AdaptiveStatus;

//! The values beanstalkd commands take and give: [`PutOptions`] (priority, delay, TTR), a
//! reserved [`Job`], the reconnect [`Backoff`], and the protocol's whole seconds.

use std::fmt;
use std::time::Duration;

use super::proto::Command;

/// Converts a duration to the protocol's whole seconds, rounding up, saturating at `u32::MAX`.
pub(crate) fn whole_seconds(duration: Duration) -> u32 {
    let secs = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A reserve's timeout in whole seconds: beanstalkd 1.12 reads it into a C `int` (a larger
/// value would wrap to "wait forever"), so it is capped at `i32::MAX` seconds.
pub(crate) fn reserve_seconds(timeout: Duration) -> u32 {
    whole_seconds(timeout).min(i32::MAX.unsigned_abs())
}

/// How a job is put: priority, delay and time to run.
///
/// The protocol counts delay and TTR in whole seconds: durations are rounded up (a TTR of zero
/// becomes the server's minimum, one second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutOptions {
    /// 0 is the most urgent; below 1024 counts as urgent. Default 1024.
    pub priority: u32,
    /// Time before the job becomes ready. Default zero.
    pub delay: Duration,
    /// Time a worker has to finish (or touch) a reserved job before the server gives it to
    /// another. Default 60 s.
    pub ttr: Duration,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            priority: 1024,
            delay: Duration::ZERO,
            ttr: Duration::from_secs(60),
        }
    }
}

impl PutOptions {
    /// The defaults: priority 1024, no delay, TTR 60 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the delay.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the time to run.
    pub fn ttr(mut self, ttr: Duration) -> Self {
        self.ttr = ttr;
        self
    }

    pub(crate) fn command<'a>(&self, body: &'a [u8]) -> Command<'a> {
        Command::Put {
            pri: self.priority,
            delay: whole_seconds(self.delay),
            ttr: whole_seconds(self.ttr),
            body,
        }
    }
}

/// A reserved job.
#[derive(Clone, PartialEq, Eq)]
pub struct Job {
    /// The job's id.
    pub id: u64,
    /// The job's body, as put.
    pub body: Vec<u8>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// How a client waits between attempts to reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failed attempt; it doubles after each further one.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Attempts before the command fails with the last error (at least 1).
    pub attempts: u32,
}

impl Default for Backoff {
    /// 100 ms doubling up to 5 s, 8 attempts (about 11 s in all).
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(5),
            attempts: 8,
        }
    }
}

impl Backoff {
    /// The wait after failed attempt `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::MAX), u32::MAX);
    }

    #[test]
    fn a_reserve_timeout_stays_within_the_servers_int() {
        assert_eq!(reserve_seconds(Duration::from_secs(5)), 5);
        assert_eq!(reserve_seconds(Duration::MAX), i32::MAX as u32);
    }

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let backoff = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempts: 3,
        };
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(4), Duration::from_millis(800));
        assert_eq!(backoff.delay(5), Duration::from_secs(1));
        assert_eq!(backoff.delay(200), Duration::from_secs(1));
    }
}

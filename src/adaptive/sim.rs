//! A closed-loop simulation in virtual time, for the tests: a remote service with a capacity
//! model (the one the example relay has) and a client that always has work, admitting tasks
//! while the adaptive limit allows. Deterministic: the time is a counter and the noise comes
//! from a seeded generator.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::limit::{AdaptiveLimit, Outcome, Sample};

/// The remote service: up to `soft` concurrent tasks answered in `base`, `per_excess` more per
/// task beyond it, and tasks beyond `hard` refused as overloaded after `refused_after`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Service {
    pub(crate) soft: usize,
    pub(crate) hard: usize,
    pub(crate) base: Duration,
    pub(crate) per_excess: Duration,
    pub(crate) refused_after: Duration,
    /// Each latency is multiplied by a factor drawn uniformly from `1 ± noise`.
    pub(crate) noise: f64,
}

impl Service {
    /// The example relay's model with knee `soft`: 20 ms base, 5 ms per task beyond `soft`,
    /// refusals beyond one and a half times `soft` after 20 ms, 10 % noise.
    pub(crate) fn relay(soft: usize) -> Service {
        Service {
            soft,
            hard: soft + soft / 2,
            base: Duration::from_millis(20),
            per_excess: Duration::from_millis(5),
            refused_after: Duration::from_millis(20),
            noise: 0.1,
        }
    }

    fn latency(&self, sessions: usize) -> Duration {
        let excess = u32::try_from(sessions.saturating_sub(self.soft)).unwrap_or(u32::MAX);
        self.base + self.per_excess * excess
    }
}

/// One task the simulation ended, as the trace records it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ended {
    pub(crate) at: Duration,
    pub(crate) overloaded: bool,
    /// The whole limit after the task's sample was taken.
    pub(crate) limit: usize,
}

/// The client, the service and the clock.
pub(crate) struct Simulation {
    pub(crate) limit: AdaptiveLimit,
    pub(crate) service: Service,
    /// The most tasks the client has to offer at once (`usize::MAX`: always more).
    pub(crate) demand: usize,
    now: Duration,
    /// Tasks in flight: (end, start, overloaded).
    running: BinaryHeap<Reverse<(Duration, Duration, bool)>>,
    rng: u64,
    pub(crate) trace: Vec<Ended>,
}

impl Simulation {
    pub(crate) fn new(limit: AdaptiveLimit, service: Service, seed: u64) -> Simulation {
        Simulation {
            limit,
            service,
            demand: usize::MAX,
            now: Duration::ZERO,
            running: BinaryHeap::new(),
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            trace: Vec::new(),
        }
    }

    pub(crate) fn now(&self) -> Duration {
        self.now
    }

    /// xorshift64*: a uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let bits = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }

    /// Starts tasks while the limit and the demand allow.
    fn admit(&mut self) {
        while self.running.len() < self.limit.whole().min(self.demand) {
            let sessions = self.running.len() + 1;
            let (took, overloaded) = if sessions > self.service.hard {
                (self.service.refused_after, true)
            } else {
                let jitter = 1.0 + self.service.noise * (2.0 * self.uniform() - 1.0);
                (self.service.latency(sessions).mul_f64(jitter), false)
            };
            self.running
                .push(Reverse((self.now + took, self.now, overloaded)));
        }
    }

    /// Runs until virtual time `until`.
    pub(crate) fn run_until(&mut self, until: Duration) {
        self.admit();
        while let Some(&Reverse((end, start, overloaded))) = self.running.peek() {
            if end > until {
                break;
            }
            let in_flight = self.running.len();
            self.running.pop();
            self.now = end;
            self.limit.on_sample(Sample {
                started: start,
                ended: end,
                in_flight,
                outcome: if overloaded {
                    Outcome::Overloaded
                } else {
                    Outcome::Completed
                },
            });
            self.trace.push(Ended {
                at: end,
                overloaded,
                limit: self.limit.whole(),
            });
            self.admit();
        }
        self.now = until;
    }

    /// The trace from `from` on.
    pub(crate) fn since(&self, from: Duration) -> impl Iterator<Item = &Ended> {
        self.trace.iter().filter(move |e| e.at >= from)
    }
}

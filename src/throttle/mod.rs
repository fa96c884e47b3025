//! The gate of a throttled or rate-limited scheduler view: how many of its tasks may be in
//! flight at once, how fast they may start, and the view's own bounded queue for the excess.
//!
//! A task holds a **slot** from the moment the gate lets it through (it is then offered to the
//! pool, waits for the pool, runs inline, or runs on a pool thread) until it ends, is discarded
//! or is refused by the pool. The gate only decides; the view (`view/`) carries the
//! decisions out: it offers started tasks to the pool, arms the timer to release tasks held by
//! the rate, and hands a freed slot to the next held task.
//!
//! Invariants (all under `Throttle::state`):
//! - a slot is taken only while `in_flight < limit`; so `in_flight <= limit + lent`, where
//!   `lent` is the number of tasks run inline, each by a caller that holds a slot of this gate
//!   and is suspended while that task runs ([`Throttle::lend_slot`]) — except right after an
//!   adaptive gate lowered its limit, when the tasks already in flight run on and no slot is
//!   taken until `in_flight` is below the new limit; every slot taken or lent is given back
//!   exactly once (`release`, `release_sampled`);
//! - `held.len() <= queue_cap`; a held task holds no slot, and the gate gives it one before it is
//!   started or cancelled (`drain` grants a slot to each task it returns, so cancelling it
//!   releases that slot like any other);
//! - held tasks start in arrival order, and before any later arrival: a new task joins the back
//!   of the queue while the queue is not empty;
//! - `release_at` is `Some` while a timer entry is armed to start held tasks when the rate
//!   allows; at most one is armed.
//!
//! The rate is a generic cell rate algorithm (GCRA): with `n` starts per `per`, a start is
//! allowed when the theoretical arrival time `tat` is at most `per - per/n` ahead of now, and
//! each start moves `tat` on by `per/n`. A burst of `n` may start at once, then one every
//! `per/n`. No thread ever sleeps for a token: callers that may wait sleep on the condition
//! variable like callers waiting for a slot, and held tasks are started by the timer.
//!
//! No lost wake-up: a waiting caller increments `waiters` and re-checks slots and room under the
//! lock it then waits with; every `release` (and every pop from the queue) happens under that
//! lock and notifies when `waiters > 0`. The loom models (`loom_tests.rs`) check it.
//!
//! An adaptive gate (`SchedulerConfig::adaptive_concurrency`) also owns the adaptive limit
//! (`adaptive/limit.rs`), under the same lock: each task of the view gives its slot back with a
//! sample of its running time and outcome ([`Throttle::release_sampled`]), and the limit it
//! computes becomes `State::limit` at once. A raised limit starts held tasks and wakes waiting
//! callers in the same critical section, as a release does; a lowered one takes effect at the
//! next admission. Other gates never touch the adaptive state, and their limit never changes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::adaptive::{AdaptiveLimit, AdaptiveStatus, Outcome, Params, Sample, Step};
use crate::loom::{Condvar, Mutex};

use crate::rejected::RejectKind;
use crate::task::Job;

/// Longest single sleep of a waiting caller: it re-checks the shutdown flags at least this often
/// (a pool shut down by the service does not signal the gate).
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How fast tasks may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    /// `per / n`: the steady interval between starts.
    interval: Duration,
    /// `per - interval`: how far ahead of now `tat` may be (the burst).
    tolerance: Duration,
}

impl Rate {
    /// `n` starts per `per`; `None` if `n == 0` or `per` is zero.
    pub(crate) fn new(n: usize, per: Duration) -> Option<Self> {
        if n == 0 || per.is_zero() {
            return None;
        }
        let nanos = per.as_nanos() / n as u128;
        let interval = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Some(Rate {
            interval,
            tolerance: per.saturating_sub(interval),
        })
    }
}

/// What the gate decided for one task.
pub(crate) enum Entry {
    /// It holds a slot: offer it to the pool now.
    Start(Job),
    /// It waits in the view's queue; the gate starts it later (accepted).
    Held,
    /// Over the limit and the caller may not wait (`Throttled`), or the view shut down while the
    /// caller waited (`Shutdown`). The job holds no slot.
    Refused(Job, RejectKind),
}

/// Follow-up work for the view after a gate operation.
#[derive(Default)]
pub(crate) struct Pump {
    /// Held tasks that now hold a slot: offer each to the pool.
    pub(crate) start: Vec<Job>,
    /// Arm the timer to call [`Throttle::timer_fired`] at this instant.
    pub(crate) arm_at: Option<Instant>,
    /// An adaptive gate's limit took a step (log it).
    pub(crate) step: Option<Step>,
}

/// A snapshot of a throttled scheduler's gate.
///
/// ```
/// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().build()?;
/// let relay = service.scheduler_with(
///     TaskClass::Io,
///     SchedulerConfig::new().name("relay").max_concurrent_tasks(2).queue_size(8),
/// )?;
/// relay.submit(|| ())?.join()?;
/// let status = relay.throttle().expect("a throttled view");
/// assert_eq!((status.limit, status.queue_size), (Some(2), 8));
/// assert_eq!((status.in_flight, status.held), (0, 0));
/// assert_eq!(status.peak_in_flight, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleStatus {
    /// The concurrency limit (`max_concurrent_tasks`, or an adaptive limit's current value), if
    /// the view has one.
    pub limit: Option<usize>,
    /// The rate limit as (`n`, `per`), if the view has one.
    pub rate: Option<(usize, Duration)>,
    /// Capacity of the view's own queue.
    pub queue_size: usize,
    /// Tasks holding a slot: offered to the pool, queued there, or running.
    pub in_flight: usize,
    /// Tasks waiting in the view's own queue.
    pub held: usize,
    /// The most tasks ever in flight at once.
    pub peak_in_flight: usize,
    /// Submissions refused with [`RejectKind::Throttled`](crate::RejectKind::Throttled).
    pub throttled: u64,
    /// The adaptive limit's state, if the view has one
    /// ([`SchedulerConfig::adaptive_concurrency`](crate::SchedulerConfig::adaptive_concurrency)).
    pub adaptive: Option<AdaptiveStatus>,
}

struct State {
    /// Most tasks in flight at once (`usize::MAX` for a gate with only a rate). Fixed, except
    /// in an adaptive gate, where it is `adaptive`'s whole limit after every sample.
    limit: usize,
    /// The adaptive limit (adaptive gates only).
    adaptive: Option<AdaptiveLimit>,
    in_flight: usize,
    held: VecDeque<Job>,
    /// GCRA theoretical arrival time of the next start (rate-limited gates).
    tat: Option<Instant>,
    release_at: Option<Instant>,
    waiters: usize,
    peak_in_flight: usize,
    throttled: u64,
}

/// The gate. See the module documentation for its invariants.
pub(crate) struct Throttle {
    queue_cap: usize,
    rate: Option<Rate>,
    rate_spec: Option<(usize, Duration)>,
    /// The origin of an adaptive gate's sample times.
    epoch: Instant,
    state: Mutex<State>,
    /// Signalled when a slot or queue room frees, and at shutdown; waited on by callers that may
    /// wait.
    room: Condvar,
}

impl Throttle {
    /// A gate letting `limit` tasks in flight (`None`: no limit), starting at most `rate`
    /// (`n`, `per`), holding up to `queue_cap` more.
    pub(crate) fn new(
        limit: Option<usize>,
        rate: Option<(usize, Duration)>,
        queue_cap: usize,
    ) -> Self {
        Self::with_state(limit.unwrap_or(usize::MAX), None, rate, queue_cap)
    }

    /// An adaptive gate: its limit starts at `params.initial` and follows its tasks' samples
    /// (`release_sampled`); the rate and queue as for [`new`](Self::new).
    pub(crate) fn adaptive(
        params: Params,
        rate: Option<(usize, Duration)>,
        queue_cap: usize,
    ) -> Self {
        let adaptive = AdaptiveLimit::new(params);
        Self::with_state(adaptive.whole(), Some(adaptive), rate, queue_cap)
    }

    fn with_state(
        limit: usize,
        adaptive: Option<AdaptiveLimit>,
        rate: Option<(usize, Duration)>,
        queue_cap: usize,
    ) -> Self {
        Throttle {
            queue_cap,
            rate: rate.and_then(|(n, per)| Rate::new(n, per)),
            rate_spec: rate,
            epoch: Instant::now(),
            state: Mutex::new(State {
                limit,
                adaptive,
                in_flight: 0,
                held: VecDeque::new(),
                tat: None,
                release_at: None,
                waiters: 0,
                peak_in_flight: 0,
                throttled: 0,
            }),
            room: Condvar::new(),
        }
    }

    /// Takes a slot (and a token) if both are free now.
    fn try_take(&self, state: &mut State, now: Instant) -> bool {
        if state.in_flight >= state.limit {
            return false;
        }
        if let Some(rate) = self.rate {
            // Checked: a `per` beyond what an `Instant` can add is refused when the view is
            // made, but a start must never panic whatever the rate.
            if let Some(tat) = state.tat
                && now
                    .checked_add(rate.tolerance)
                    .is_none_or(|limit| tat > limit)
            {
                return false;
            }
            let Some(next) = state
                .tat
                .map_or(now, |tat| tat.max(now))
                .checked_add(rate.interval)
            else {
                return false;
            };
            state.tat = Some(next);
        }
        state.in_flight += 1;
        state.peak_in_flight = state.peak_in_flight.max(state.in_flight);
        true
    }

    /// When the rate next allows a start (`None` if it allows one now or there is no rate).
    fn next_token(&self, state: &State, now: Instant) -> Option<Instant> {
        let rate = self.rate?;
        let tat = state.tat?;
        let at = tat.checked_sub(rate.tolerance).unwrap_or(now);
        (at > now).then_some(at)
    }

    /// Starts held tasks while slots and tokens allow; arms the timer if the rate holds them.
    fn pump(&self, state: &mut State, pump: &mut Pump) {
        let now = Instant::now();
        let before = state.held.len();
        while !state.held.is_empty() && self.try_take(state, now) {
            pump.start.extend(state.held.pop_front());
        }
        if state.held.len() < before && state.waiters > 0 {
            self.room.notify_all();
        }
        if !state.held.is_empty()
            && state.in_flight < state.limit
            && state.release_at.is_none()
            && let Some(at) = self.next_token(state, now)
        {
            state.release_at = Some(at);
            pump.arm_at = Some(at);
        }
    }

    /// Lets `job` through, holds it, or refuses it. A caller that `may_wait` sleeps while
    /// neither a slot nor queue room is free, until `deadline` (then `Throttled`) or until
    /// `is_shut` says the view shut down (then `Shutdown`).
    pub(crate) fn enter(
        &self,
        job: Job,
        may_wait: bool,
        deadline: Option<Instant>,
        is_shut: &dyn Fn() -> bool,
    ) -> (Entry, Pump) {
        let mut pump = Pump::default();
        let mut job = Some(job);
        let entered = self.wait_for_room(may_wait, deadline, is_shut, |state, now| {
            if state.held.is_empty() && self.try_take(state, now) {
                return job.take().map(Entry::Start);
            }
            if state.held.len() < self.queue_cap {
                state.held.extend(job.take());
                self.pump(state, &mut pump);
                return Some(Entry::Held);
            }
            None
        });
        let entry = match entered {
            Ok(entry) => entry,
            Err(kind) => Entry::Refused(job.take().expect("a refused job is still here"), kind),
        };
        (entry, pump)
    }

    /// Takes a slot for work the gate never holds (a gate without a queue or rate, such as a
    /// flow's `max_concurrency`): `Ok` once a slot is taken, or the refusal, with the same
    /// waiting rules as [`enter`](Self::enter). The slot is given back with
    /// [`release`](Self::release).
    pub(crate) fn acquire(
        &self,
        may_wait: bool,
        deadline: Option<Instant>,
        is_shut: &dyn Fn() -> bool,
    ) -> Result<(), RejectKind> {
        debug_assert!(
            self.queue_cap == 0 && self.rate.is_none(),
            "a plain concurrency gate"
        );
        self.wait_for_room(may_wait, deadline, is_shut, |state, now| {
            self.try_take(state, now).then_some(())
        })
    }

    /// Runs `attempt` under the lock until it succeeds; between attempts a caller that may wait
    /// sleeps (until a slot or room frees, its deadline, the next token, or a wait slice) and
    /// one that may not is refused `Throttled`. A shut-down view refuses waiters `Shutdown`.
    fn wait_for_room<R>(
        &self,
        may_wait: bool,
        deadline: Option<Instant>,
        is_shut: &dyn Fn() -> bool,
        mut attempt: impl FnMut(&mut State, Instant) -> Option<R>,
    ) -> Result<R, RejectKind> {
        let mut state = self.state.lock();
        loop {
            let now = Instant::now();
            if let Some(done) = attempt(&mut state, now) {
                return Ok(done);
            }
            if !may_wait {
                state.throttled += 1;
                return Err(RejectKind::Throttled);
            }
            if is_shut() {
                return Err(RejectKind::Shutdown);
            }
            let mut until = now.checked_add(WAIT_SLICE).unwrap_or(now);
            if let Some(deadline) = deadline {
                if deadline <= now {
                    state.throttled += 1;
                    return Err(RejectKind::Throttled);
                }
                until = until.min(deadline);
            }
            if state.in_flight < state.limit
                && let Some(at) = self.next_token(&state, now)
            {
                until = until.min(at);
            }
            state.waiters += 1;
            crate::loom::wait_timeout(&self.room, &mut state, until.saturating_duration_since(now));
            state.waiters -= 1;
        }
    }

    /// A task gives its slot back (it ended, was discarded, or the pool refused it). Held tasks
    /// may start in its place.
    pub(crate) fn release(&self) -> Pump {
        let mut pump = Pump::default();
        let mut state = self.state.lock();
        debug_assert!(state.in_flight > 0, "a slot is released once");
        state.in_flight -= 1;
        self.pump(&mut state, &mut pump);
        if state.waiters > 0 {
            self.room.notify_all();
        }
        pump
    }

    /// `true` for an adaptive gate: its tasks give their slots back with
    /// [`release_sampled`](Self::release_sampled).
    pub(crate) fn is_adaptive(&self) -> bool {
        self.state.lock().adaptive.is_some()
    }

    /// A task of an adaptive gate gives its slot back, with its sample: when it started and
    /// ended running, and how it ended. The limit takes the sample into account at once; if it
    /// rose, held tasks start and waiting callers are woken as for a release. Returns the
    /// follow-up, with the limit's step (if the sample made it take one) to log.
    pub(crate) fn release_sampled(
        &self,
        started: Instant,
        ended: Instant,
        outcome: Outcome,
    ) -> Pump {
        let mut pump = Pump::default();
        let mut state = self.state.lock();
        debug_assert!(state.in_flight > 0, "a slot is released once");
        let in_flight = state.in_flight;
        state.in_flight -= 1;
        if let Some(adaptive) = state.adaptive.as_mut() {
            pump.step = adaptive.on_sample(Sample {
                started: started.saturating_duration_since(self.epoch),
                ended: ended.saturating_duration_since(self.epoch),
                in_flight,
                outcome,
            });
            state.limit = adaptive.whole();
        }
        self.pump(&mut state, &mut pump);
        if state.waiters > 0 {
            self.room.notify_all();
        }
        pump
    }

    /// Counts one more task in flight without checking the limit: a task of the view run inline
    /// by a caller that itself holds a slot of this gate (`policy::decide_at_gate`). The caller
    /// is suspended while the task runs, so tasks actually running never exceed the limit; the
    /// task gives the slot back with [`release`](Self::release) like any other.
    pub(crate) fn lend_slot(&self) {
        let mut state = self.state.lock();
        state.in_flight += 1;
    }

    /// The timer entry armed by a [`Pump`] fell due.
    pub(crate) fn timer_fired(&self) -> Pump {
        let mut pump = Pump::default();
        let mut state = self.state.lock();
        state.release_at = None;
        self.pump(&mut state, &mut pump);
        pump
    }

    /// Takes every held task out, each granted a slot (so that discarding it releases the slot
    /// like any other task), and wakes waiting callers.
    pub(crate) fn drain(&self) -> Vec<Job> {
        let mut state = self.state.lock();
        let jobs: Vec<Job> = state.held.drain(..).collect();
        state.in_flight += jobs.len();
        state.release_at = None;
        self.room.notify_all();
        jobs
    }

    /// Wakes callers waiting at the gate, so they see a shutdown.
    pub(crate) fn wake_waiters(&self) {
        let _state = self.state.lock();
        self.room.notify_all();
    }

    /// Tasks the gate would let through or hold right now without making a caller wait or
    /// refusing: free slots (at most `pool_free` of them, the room of the pool behind the gate)
    /// plus free room in the view's own queue. A snapshot.
    pub(crate) fn free_slots(&self, pool_free: usize) -> usize {
        let state = self.state.lock();
        let slots = if state.held.is_empty() {
            state.limit.saturating_sub(state.in_flight).min(pool_free)
        } else {
            0
        };
        slots.saturating_add(self.queue_cap.saturating_sub(state.held.len()))
    }

    /// Callers waiting at the gate now (tests sequence on it).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn waiters(&self) -> usize {
        self.state.lock().waiters
    }

    /// A snapshot.
    pub(crate) fn status(&self) -> ThrottleStatus {
        let state = self.state.lock();
        ThrottleStatus {
            limit: (state.limit != usize::MAX).then_some(state.limit),
            rate: self.rate_spec,
            queue_size: self.queue_cap,
            in_flight: state.in_flight,
            held: state.held.len(),
            peak_in_flight: state.peak_in_flight,
            throttled: state.throttled,
            adaptive: state.adaptive.as_ref().map(AdaptiveLimit::status),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, not(loom)))]
mod adaptive_tests;

#[cfg(all(test, loom))]
mod loom_tests;

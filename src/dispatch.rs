//! How work reaches a service's pools: the pools as the service sees them, the one offer that
//! carries out the caller-aware policy, and the one path that offers work again from the timer.
//!
//! Every entry point goes through here — scheduler views, flow entries and hops, timed tasks,
//! async polls and a throttled view's held tasks — so the rules are applied in one place:
//!
//! - [`ServicePool::offer`] admits a job to its pool or, when the pool is full, does what
//!   `policy::decide` says for the calling thread: wait (within the caller's [`Patience`]), hand
//!   the job back to run on this thread ([`Offered::RunHere`], within the inline depth bound), or
//!   refuse.
//! - [`offer_or_retry`] is for work offered by a thread that must never wait (the timer, a CPU
//!   thread hopping a flow): when the target is full, the timer offers it again after a back-off
//!   that starts at [`RETRY_FIRST`] and doubles up to [`RETRY_MAX`]; when the timer has shut
//!   down, the work is abandoned (its handle resolves, its slot and counts are given back).
//!
//! Inline runs nest: a task run inline may itself submit to a full pool and run the next task
//! inline, on the same stack. [`InlineRun`] bounds that depth at [`MAX_INLINE_DEPTH`]; beyond it
//! the caller is refused with its work back instead of overflowing its stack.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::TaskClass;
use crate::loom::{Arc, AtomicU64, AtomicUsize, Ordering};
use crate::policy::{self, Decision, Target};
use crate::pool::{Shared, ThreadPool};
use crate::rejected::RejectKind;
use crate::role::current_role;
use crate::task::Job;
use crate::timer::{Fire, Timer};

/// Which pool of a service: the UBER pool, one of DEDICATED's three, or a custom scheduler's.
///
/// [`ServiceMetrics::pool`](crate::ServiceMetrics::pool) finds a pool's figures by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PoolKind {
    /// UBER's one pool, serving every class.
    Uber,
    /// DEDICATED's pool for CPU_LIGHT work.
    CpuLight,
    /// DEDICATED's pool for IO work.
    Io,
    /// DEDICATED's pool for CPU_INTENSIVE work.
    CpuIntensive,
    /// The own pool of a custom scheduler ([`SchedulerService::custom`](crate::SchedulerService::custom)).
    Custom,
}

impl PoolKind {
    /// The pool's label in reports and thread names: `uber`, `cpuLight`, `io`, `cpuIntensive`,
    /// or `custom`.
    pub const fn label(self) -> &'static str {
        match self {
            PoolKind::Uber => "uber",
            PoolKind::CpuLight => "cpuLight",
            PoolKind::Io => "io",
            PoolKind::CpuIntensive => "cpuIntensive",
            PoolKind::Custom => "custom",
        }
    }
}

/// Counters of what the service did around one pool (the pool counts its own admissions).
#[derive(Debug, Default)]
pub(crate) struct DispatchCounts {
    /// Offers this pool refused because it was full and that were not then waited for or run
    /// inline: handed back to the caller (`Busy`), or offered again later from the timer.
    pub(crate) rejected: AtomicU64,
    /// Tasks run on the submitting thread because this pool was full.
    pub(crate) caller_ran: AtomicU64,
    /// CPU_LIGHT tasks that ran longer than the light budget on this pool.
    pub(crate) light_overruns: AtomicU64,
    /// Flow steps dispatched to this pool (a thread switch), flow entries included.
    pub(crate) hops_switched: AtomicU64,
    /// Flow steps that ran in place on the thread at hand instead of going to this pool.
    pub(crate) hops_elided: AtomicU64,
}

/// One pool as the service, its views and its flows see it.
pub(crate) struct ServicePool {
    pub(crate) pool: ThreadPool,
    /// The pool in the policy's terms.
    pub(crate) target: Target,
    /// The pool's label in reports: `uber`, `cpuLight`, `io`, `cpuIntensive`, or the custom
    /// scheduler's name.
    pub(crate) label: String,
    /// Views over this pool that are not shut down.
    pub(crate) schedulers: AtomicUsize,
    pub(crate) counts: DispatchCounts,
}

impl ServicePool {
    /// A service pool over `pool`.
    pub(crate) fn new(pool: ThreadPool, target: Target, label: String) -> Self {
        ServicePool {
            pool,
            target,
            label,
            schedulers: AtomicUsize::new(0),
            counts: DispatchCounts::default(),
        }
    }

    /// Which pool this is.
    pub(crate) fn kind(&self) -> PoolKind {
        match self.target {
            Target::Uber => PoolKind::Uber,
            Target::CpuLight => PoolKind::CpuLight,
            Target::Io => PoolKind::Io,
            Target::CpuIntensive => PoolKind::CpuIntensive,
            Target::Custom { .. } => PoolKind::Custom,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.pool.shared()
    }

    /// Offers `job`, a task of `class`, to the pool and, when it is full, carries out the
    /// caller-aware policy for the calling thread: wait (within `patience`), hand the job back to
    /// run here (counted in `caller_ran`; not beyond [`MAX_INLINE_DEPTH`] nested inline runs),
    /// or refuse. CPU_LIGHT work is admitted as CPU work (the pool keeps it to
    /// the cores: `pool/cpu.rs`).
    pub(crate) fn offer(&self, job: Job, patience: Patience, class: TaskClass) -> Offered {
        let offered = self.decide(job, patience, class.is_cpu());
        if let Offered::Refused(_, RejectKind::Busy) = offered {
            self.counts.rejected.fetch_add(1, Ordering::Relaxed);
        }
        offered
    }

    fn decide(&self, job: Job, patience: Patience, cpu: bool) -> Offered {
        let shared = self.shared();
        let job = match Shared::admit_as(shared, job, cpu) {
            Ok(()) => return Offered::Accepted,
            Err((job, RejectKind::Busy)) => job,
            Err((job, kind)) => return Offered::Refused(job, kind),
        };
        let decision = match patience {
            Patience::Never => Decision::Refuse,
            Patience::Policy | Patience::Until(_) => policy::decide(current_role(), self.target),
        };
        match decision {
            Decision::RunInline => match InlineRun::enter() {
                Some(inline) => {
                    self.counts.caller_ran.fetch_add(1, Ordering::Relaxed);
                    Offered::RunHere(job, inline)
                }
                None => Offered::Refused(job, RejectKind::Busy),
            },
            Decision::Wait => match Shared::admit_waiting(shared, job, patience.deadline(), cpu) {
                Ok(()) => Offered::Accepted,
                Err((job, kind)) => Offered::Refused(job, kind),
            },
            Decision::Refuse => Offered::Refused(job, RejectKind::Busy),
        }
    }
}

/// What [`ServicePool::offer`] came to.
pub(crate) enum Offered {
    /// The pool took the job (at once, or after the caller waited).
    Accepted,
    /// The pool is full and the caller's role says: run the job on this thread, now, while the
    /// [`InlineRun`] is held.
    RunHere(Job, InlineRun),
    /// The job comes back, with the reason.
    Refused(Job, RejectKind),
}

/// How long a dispatch may block when the target is full.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Patience {
    /// Follow the caller-aware policy; wait without limit.
    Policy,
    /// Follow the policy, but never wait past this instant.
    Until(Instant),
    /// Never wait and never run inline.
    Never,
}

impl Patience {
    /// `Until(now + timeout)`, or `Policy` when that instant does not fit an [`Instant`].
    pub(crate) fn within(timeout: Duration) -> Self {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Patience::Until(deadline),
            None => Patience::Policy,
        }
    }

    /// The instant a wait must end, if any.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Patience::Until(deadline) => Some(deadline),
            Patience::Policy | Patience::Never => None,
        }
    }
}

/// Most inline runs nested on one thread. A task run inline may submit to a full pool again
/// and run that task inline too, on the same stack; beyond this depth the submission is refused
/// ([`RejectKind::Busy`], the work handed back) instead of growing the stack until it overflows.
/// 32 frames of scheduler bookkeeping plus the tasks' own frames stay well within the 2 MiB a
/// pool thread has by default.
pub const MAX_INLINE_DEPTH: usize = 32;

std::thread_local! {
    /// Inline runs in progress on this thread.
    static INLINE_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One inline run in progress on this thread: taken before a task runs on the submitting
/// thread, given back (dropped) when it ends, panicking or not.
#[derive(Debug)]
pub(crate) struct InlineRun(());

impl InlineRun {
    /// Takes a level of inline depth; `None` at [`MAX_INLINE_DEPTH`].
    pub(crate) fn enter() -> Option<InlineRun> {
        INLINE_DEPTH.with(|depth| {
            let now = depth.get();
            (now < MAX_INLINE_DEPTH).then(|| {
                depth.set(now + 1);
                InlineRun(())
            })
        })
    }
}

impl Drop for InlineRun {
    fn drop(&mut self) {
        INLINE_DEPTH.with(|depth| depth.set(depth.get() - 1));
    }
}

/// First delay before work refused by a full pool (or gate) is offered again from the timer.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(1);

/// The retry delay doubles up to this: Mule's "maximum theoretical duration of a CPU_LIGHT
/// task", by which time a light task that held the pool has ended.
pub(crate) const RETRY_MAX: Duration = Duration::from_millis(10);

/// The delay before retry number `attempt` (0 for the first): 1, 2, 4, 8, then 10 ms.
pub(crate) fn backoff(attempt: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << attempt.min(4))
        .min(RETRY_MAX)
}

/// What one offer of retriable work came to.
pub(crate) enum Attempt<R> {
    /// Taken care of: accepted, run, or refused for good and released by the work itself.
    Taken,
    /// The target is full for now: offer it again later.
    Busy(R),
}

/// Work offered by a thread that must not wait, and offered again from the timer while its
/// target is full.
pub(crate) trait Redeliver: Sized + Send + 'static {
    /// The work stands for an accepted task: if the timer shuts down while a retry is pending,
    /// the timer's shutdown counts it among the cancelled tasks of the report.
    const IS_TASK: bool;

    /// Offers the work once, never waiting. Retries run on the timer thread.
    fn attempt(self) -> Attempt<Self>;

    /// The timer shut down (or refused the retry): the work will never be offered again. Gives
    /// up what it holds: its handle resolves as cancelled, its slot and counts are given back.
    fn abandon(self);
}

/// Offers `work` now, and again from `timer` after [`backoff`] while its target is full, until
/// it is taken or abandoned.
pub(crate) fn offer_or_retry<R: Redeliver>(timer: &Timer, work: R) {
    deliver(timer, work, 0);
}

/// Offers `work` from the timer after the back-off of retry number `attempt` (the caller's own
/// first offer already met a full target).
pub(crate) fn retry_later<R: Redeliver>(timer: &Timer, work: R, attempt: u32) {
    let again = timer.clone();
    let action = Box::new(move |fire: Fire| match fire {
        Fire::Due => deliver(&again, work, attempt + 1),
        Fire::Cancelled => work.abandon(),
    });
    let due = Instant::now() + backoff(attempt);
    if let Err(refused) = timer.defer_until(due, R::IS_TASK, action) {
        (refused.action)(Fire::Cancelled);
    }
}

fn deliver<R: Redeliver>(timer: &Timer, work: R, attempt: u32) {
    if let Attempt::Busy(work) = work.attempt() {
        retry_later(timer, work, attempt);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_from_one_millisecond_up_to_ten() {
        let delays: Vec<u128> = (0..8).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10, 10, 10]);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn inline_depth_is_bounded_and_given_back() {
        let mut held: Vec<InlineRun> = (0..MAX_INLINE_DEPTH)
            .map(|_| InlineRun::enter().expect("below the bound"))
            .collect();
        assert!(InlineRun::enter().is_none(), "the bound holds");
        held.pop();
        assert!(
            InlineRun::enter().is_some(),
            "a level given back is free again"
        );
        drop(held);
        assert_eq!(INLINE_DEPTH.with(Cell::get), 0);
    }

    #[test]
    fn inline_depth_is_given_back_by_a_panicking_run() {
        let result = std::panic::catch_unwind(|| {
            let _inline = InlineRun::enter().unwrap();
            panic!("task panicked inline");
        });
        assert!(result.is_err());
        assert_eq!(INLINE_DEPTH.with(Cell::get), 0);
    }

    /// Work that is busy for its first `busy` attempts, reporting each call.
    struct Flaky {
        busy: u32,
        calls: std::sync::mpsc::Sender<(&'static str, Option<String>)>,
    }

    impl Redeliver for Flaky {
        const IS_TASK: bool = true;

        fn attempt(mut self) -> Attempt<Self> {
            let thread = std::thread::current().name().map(str::to_owned);
            self.calls.send(("attempt", thread)).unwrap();
            if self.busy == 0 {
                return Attempt::Taken;
            }
            self.busy -= 1;
            Attempt::Busy(self)
        }

        fn abandon(self) {
            let thread = std::thread::current().name().map(str::to_owned);
            self.calls.send(("abandon", thread)).unwrap();
        }
    }

    #[test]
    fn busy_work_is_offered_again_from_the_timer_until_it_is_taken() {
        let timer = Timer::new("retry-test.timer".to_owned());
        let (calls, seen) = std::sync::mpsc::channel();
        let here = std::thread::current().name().map(str::to_owned);
        offer_or_retry(&timer, Flaky { busy: 2, calls });
        let guard = Duration::from_secs(20);
        let got: Vec<_> = (0..3).map(|_| seen.recv_timeout(guard).unwrap()).collect();
        assert_eq!(
            got[0],
            ("attempt", here),
            "the first offer is the caller's own"
        );
        for call in &got[1..] {
            assert_eq!(call, &("attempt", Some("retry-test.timer".to_owned())));
        }
        timer.shutdown();
        assert!(
            seen.try_recv().is_err(),
            "taken: never offered again, never abandoned"
        );
    }

    #[test]
    fn a_retry_pending_at_the_timers_shutdown_is_abandoned_exactly_once() {
        let timer = Timer::new("abandon-test.timer".to_owned());
        let (calls, seen) = std::sync::mpsc::channel();
        let here = std::thread::current().name().map(str::to_owned);
        // Busy forever; the retries keep an entry pending until the shutdown.
        offer_or_retry(
            &timer,
            Flaky {
                busy: u32::MAX,
                calls,
            },
        );
        assert_eq!(seen.recv().unwrap().0, "attempt");
        let cancelled_tasks = timer.shutdown();
        let rest: Vec<_> = seen.try_iter().collect();
        let abandons: Vec<_> = rest.iter().filter(|c| c.0 == "abandon").collect();
        assert_eq!(abandons.len(), 1, "abandoned exactly once: {rest:?}");
        if abandons[0].1 == here {
            // The shutdown found the retry pending: it cancelled it and counted the task.
            assert_eq!(cancelled_tasks, 1);
        } else {
            // The retry was running on the timer thread: its next offer was refused there.
            assert_eq!(abandons[0].1.as_deref(), Some("abandon-test.timer"));
            assert_eq!(cancelled_tasks, 0);
        }
    }

    #[test]
    fn work_offered_after_the_timers_shutdown_is_abandoned_at_once() {
        let timer = Timer::new("late-test.timer".to_owned());
        timer.shutdown();
        let (calls, seen) = std::sync::mpsc::channel();
        offer_or_retry(&timer, Flaky { busy: 1, calls });
        let got: Vec<_> = seen.try_iter().map(|c| c.0).collect();
        assert_eq!(got, ["attempt", "abandon"]);
    }
}

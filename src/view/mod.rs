//! A scheduler view: the state one [`Scheduler`](crate::Scheduler)'s clones and tasks share —
//! its own task accounting, its gate when throttled, its timed tasks — and the path a task takes
//! through it to the pool.
//!
//! A view is cheap: the service hands out a fresh one per call. Each view counts its own tasks
//! in one atomic word (`state.rs`), so shutting a view down, cancelling its queued tasks or
//! waiting for them touches that view only. A throttled or rate-limited view puts a gate
//! (`throttle.rs`) between its callers and the pool: every task of such a view holds one of the
//! gate's slots from the moment the gate lets it through until it ends, is discarded, or the
//! pool refuses it (`scope.rs` gives the slot back; `gated.rs` carries out the gate's
//! follow-ups). Timed tasks register with their view through the small [`TimedEntry`] trait, so
//! that a shutdown ends them without this module knowing the scheduling code.

mod gated;
mod scope;
mod state;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::TaskClass;
use crate::dispatch::{InlineRun, Offered, Patience, ServicePool};
use crate::loom::{AtomicU64, Mutex, Ordering};
#[cfg(feature = "metrics")]
use crate::observe::{Gated, Observed, RefusalTally, SchedulerKey};
use crate::policy::{self, Decision};
use crate::rejected::RejectKind;
use crate::role::current_role;
use crate::task::{Job, RunOutcome};
#[cfg(feature = "metrics")]
use crate::throttle::ThrottleStatus;
use crate::throttle::{Entry, Throttle};
use crate::timer::Timer;

pub(crate) use gated::LogLimiter;
pub use scope::{
    LIGHT_BUDGET, current_class, ignore_sample, is_current_thread_for_cpu_work,
    is_current_thread_in_wait_group, report_overload,
};
pub(crate) use scope::{TaskScope, run_as};
pub(crate) use state::Shut;
use state::ViewWord;

/// Grace period of [`Scheduler::stop`](crate::Scheduler::stop) when the configuration names
/// none (Mule's default).
pub(crate) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A delayed, periodic or cron task as its view sees it: what a shutdown needs to end it.
pub(crate) trait TimedEntry: Send + Sync {
    /// Fixed-rate, fixed-delay and cron tasks (ended by any shutdown of their view).
    fn is_periodic(&self) -> bool;
    /// Cancels the task; `true` if this call cancelled it.
    fn cancel(&self) -> bool;
}

/// Everything a view is made of.
pub(crate) struct ViewSpec {
    pub(crate) name: String,
    pub(crate) class: TaskClass,
    pub(crate) pool: Arc<ServicePool>,
    /// The view's own pool (custom schedulers): shut down with the view.
    pub(crate) owns_pool: bool,
    pub(crate) stop_timeout: Duration,
    /// The service's timer: timed tasks, rate releases, retries of held tasks.
    pub(crate) timer: Timer,
    /// The gate of a throttled or rate-limited view.
    pub(crate) throttle: Option<Throttle>,
    /// What the service publishes: the view counts its refusals there.
    #[cfg(feature = "metrics")]
    pub(crate) observed: Arc<Observed>,
}

static NEXT_VIEW_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// The state one view's clones and tasks share.
pub(crate) struct View {
    /// Unique in the process, never 0 (0 marks flow steps in the task scope).
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) class: TaskClass,
    pub(crate) pool: Arc<ServicePool>,
    pub(crate) owns_pool: bool,
    /// Queued and running tasks and the shutdown flags.
    word: ViewWord,
    pub(crate) stop_timeout: Duration,
    refusal_log: LogLimiter,
    overrun_log: LogLimiter,
    pub(crate) timer: Timer,
    pub(crate) throttle: Option<Throttle>,
    /// The gate has an adaptive limit: every task's scope takes a sample for it.
    adaptive: bool,
    /// The scope reads the clock around each task: CPU_LIGHT views (overrun checks) and
    /// adaptive views (samples). Fixed at creation, so other views pay no clock read.
    times_tasks: bool,
    /// This view's timed tasks that may still fire (dead entries are pruned on registration).
    timed: Mutex<Vec<Weak<dyn TimedEntry>>>,
    /// Accepted tasks cancelled before they reached the pool (see `gated.rs`).
    held_cancelled: AtomicU64,
    /// Refusals by kind, counted for publishing under the view's name (the refusal path only).
    #[cfg(feature = "metrics")]
    refusals: RefusalTally,
}

impl View {
    pub(crate) fn new(spec: ViewSpec) -> Arc<View> {
        spec.pool.schedulers.fetch_add(1, Ordering::Relaxed);
        let adaptive = spec.throttle.as_ref().is_some_and(Throttle::is_adaptive);
        Arc::new(View {
            id: NEXT_VIEW_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: spec.name,
            class: spec.class,
            pool: spec.pool,
            owns_pool: spec.owns_pool,
            word: ViewWord::new(),
            stop_timeout: spec.stop_timeout,
            refusal_log: LogLimiter::default(),
            overrun_log: LogLimiter::default(),
            timer: spec.timer,
            throttle: spec.throttle,
            adaptive,
            times_tasks: adaptive || spec.class == TaskClass::CpuLight,
            timed: Mutex::new(Vec::new()),
            held_cancelled: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            refusals: RefusalTally::new(spec.observed),
        })
    }

    /// A task enters the view (before it is offered); `false`, nothing counted in the word,
    /// once shut (the refusal is counted for publishing).
    pub(crate) fn try_enter(&self) -> bool {
        let entered = self.word.try_enter();
        #[cfg(feature = "metrics")]
        if !entered {
            self.count_refusal(RejectKind::Shutdown);
        }
        entered
    }

    /// An entered task leaves without running (refused, cancelled before it was offered).
    pub(crate) fn leave_unrun(&self) {
        self.word.leave_queued();
    }

    /// `true` once the view (or its pool) accepts no more work.
    pub(crate) fn is_shut(&self) -> bool {
        self.word.load().is_shut() || self.pool.pool.is_shutdown()
    }

    /// Queued and running tasks of the view, not counting the one the calling thread runs.
    pub(crate) fn outstanding_excluding_current(&self) -> u64 {
        let state = self.word.load();
        let mine = u64::from(scope::is_running_task_of(self.id) && state.running() > 0);
        state.outstanding() - mine
    }

    /// Queued and running tasks, for `Debug`.
    fn counts(&self) -> (u64, u64) {
        let state = self.word.load();
        (state.queued(), state.running())
    }

    /// Offers an entered task: through the gate (throttled views), then to the pool, carrying
    /// out the caller-aware policy when either is full. A refused task comes back holding no
    /// slot; the caller undoes its entry.
    ///
    /// A refusal because the view or its pool is shut down is final whoever offered, and is
    /// counted for publishing here (on the refusal branches only); `Busy` and `Throttled`
    /// refusals are counted when they are handed back to a submitter
    /// ([`log_refusal`](Self::log_refusal)), since timed work offers again after them.
    pub(crate) fn offer(
        self: &Arc<Self>,
        job: Job,
        patience: Patience,
    ) -> Result<(), (Job, RejectKind)> {
        let job = match &self.throttle {
            None => job,
            Some(throttle) => match self.pass_gate(throttle, job, patience) {
                Some(Ok(job)) => job,
                Some(Err(refused)) => {
                    #[cfg(feature = "metrics")]
                    self.count_shutdown_refusal(refused.1);
                    return Err(refused);
                }
                None => return Ok(()),
            },
        };
        match self.pool.offer(job, patience, self.class) {
            Offered::Accepted => Ok(()),
            Offered::RunHere(job, inline) => {
                self.run_inline(job, inline);
                Ok(())
            }
            Offered::Refused(job, kind) => {
                self.release_slot();
                #[cfg(feature = "metrics")]
                self.count_shutdown_refusal(kind);
                Err((job, kind))
            }
        }
    }

    /// Takes the job through the gate. `Some(Ok(job))`: it holds a slot, offer it to the pool;
    /// `None`: taken care of (held in the view's queue, or run inline); `Some(Err(..))`: refused.
    fn pass_gate(
        self: &Arc<Self>,
        throttle: &Throttle,
        job: Job,
        patience: Patience,
    ) -> Option<Result<Job, (Job, RejectKind)>> {
        let role = current_role();
        let holds_a_slot = scope::is_running_task_of(self.id);
        let decision = match patience {
            Patience::Never => Decision::Refuse,
            Patience::Policy | Patience::Until(_) => policy::decide_at_gate(role, holds_a_slot),
        };
        let may_wait = decision == Decision::Wait;
        let (entry, pump) = throttle.enter(job, may_wait, patience.deadline(), &|| self.is_shut());
        self.run_pump(pump);
        match entry {
            Entry::Start(job) => Some(Ok(job)),
            Entry::Held => None,
            Entry::Refused(job, RejectKind::Throttled) if decision == Decision::RunInline => {
                match InlineRun::enter() {
                    Some(inline) => {
                        // The caller holds a slot of this gate and is suspended while the task
                        // runs on its thread: the task runs on that slot, lent (the gate counts
                        // it in flight until the task gives it back, as any other).
                        throttle.lend_slot();
                        self.pool.counts.caller_ran.fetch_add(1, Ordering::Relaxed);
                        self.run_inline(job, inline);
                        None
                    }
                    None => Some(Err((job, RejectKind::Throttled))),
                }
            }
            Entry::Refused(job, kind) => Some(Err((job, kind))),
        }
    }

    /// Runs a task of this view on the calling thread (its pool or gate was full and the
    /// caller's role says so), within the inline depth `inline` stands for.
    fn run_inline(&self, job: Job, inline: InlineRun) {
        if let RunOutcome::Panicked(message) = job.run() {
            tracing::warn!(scheduler = %self.name, panic = %message, "task run on the submitting thread panicked");
        }
        drop(inline);
    }

    /// Logs a refusal handed back to a submitter, at most once per interval; with the
    /// `metrics` feature, counts it too (every time).
    pub(crate) fn log_refusal(&self, kind: RejectKind) {
        #[cfg(feature = "metrics")]
        self.count_refusal(kind);
        if self.refusal_log.allow() {
            tracing::warn!(
                scheduler = %self.name,
                pool = %self.pool.label,
                %kind,
                "task rejected from scheduler '{}'; similar log entries will be suppressed for the following 5 seconds",
                self.name
            );
        }
    }

    /// Registers a timed task so that the view's shutdown ends it.
    pub(crate) fn register_timed(&self, task: Weak<dyn TimedEntry>) {
        let mut timed = self.timed.lock();
        timed.retain(|t| t.strong_count() > 0);
        timed.push(task);
    }

    /// Cancels the view's periodic and cron tasks, and its pending delayed tasks too when
    /// `delayed` is set. Called with no lock held: cancelling takes each task's own lock.
    fn cancel_timed(&self, delayed: bool) {
        let tasks: Vec<Arc<dyn TimedEntry>> =
            self.timed.lock().iter().filter_map(Weak::upgrade).collect();
        for task in tasks {
            if delayed || task.is_periodic() {
                task.cancel();
            }
        }
    }

    /// Marks the view shut; the first call takes it off its pool's scheduler count.
    fn mark_shut(&self, how: Shut) -> state::Snapshot {
        let before = self.word.shut(how);
        if !before.is_shut() {
            self.pool.schedulers.fetch_sub(1, Ordering::Relaxed);
        }
        before
    }

    /// `Scheduler::shutdown`: no new work; queued, held and pending delayed tasks still run;
    /// periodic and cron tasks end; callers waiting at the gate are refused.
    pub(crate) fn shutdown(&self) {
        self.mark_shut(Shut::Graceful);
        if let Some(throttle) = &self.throttle {
            throttle.wake_waiters();
        }
        self.cancel_timed(false);
        if self.owns_pool {
            self.pool.shared().begin_shutdown();
        }
    }

    /// `Scheduler::shutdown_now`: also cancels what has not started; returns how many tasks
    /// were queued when it was called (0 on a second call).
    pub(crate) fn shutdown_now(self: &Arc<Self>) -> usize {
        let before = self.mark_shut(Shut::Now);
        if let Some(throttle) = &self.throttle {
            throttle.wake_waiters();
        }
        // Timed tasks first, so that a delayed task held by the gate is cancelled through its
        // handle (and reports it), then whatever else the gate holds.
        self.cancel_timed(true);
        self.cancel_held(None);
        if self.owns_pool {
            self.pool.shared().begin_shutdown();
        }
        if before.is_now() {
            0
        } else {
            usize::try_from(before.queued()).unwrap_or(usize::MAX)
        }
    }

    /// `Scheduler::stop`: shuts down, waits up to the stop timeout for the view's tasks (not the
    /// caller's own), then cancels what has not started. `true` if everything finished in time.
    pub(crate) fn stop(self: &Arc<Self>) -> bool {
        self.shutdown();
        let deadline = Instant::now().checked_add(self.stop_timeout);
        let mine = u64::from(scope::is_running_task_of(self.id));
        let graceful = self.word.wait_idle(mine, deadline);
        if !graceful {
            let cancelled = self.shutdown_now();
            tracing::warn!(
                scheduler = %self.name,
                cancelled,
                "scheduler did not stop gracefully within {:?}",
                self.stop_timeout
            );
        }
        if self.owns_pool {
            let left = deadline.map_or(self.stop_timeout, |d| {
                d.saturating_duration_since(Instant::now())
            });
            self.pool.pool.shutdown_timeout(left);
        }
        graceful
    }

    /// The view's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Counts a refusal of `kind` under the view's name, for publishing.
    #[cfg(feature = "metrics")]
    fn count_refusal(&self, kind: RejectKind) {
        self.refusals.count(kind, || self.key());
    }

    /// Counts a refusal met by an offer if it is final wherever the offer came from: the view
    /// or its pool is shut down.
    #[cfg(feature = "metrics")]
    fn count_shutdown_refusal(&self, kind: RejectKind) {
        if kind == RejectKind::Shutdown {
            self.count_refusal(kind);
        }
    }
}

/// A view as the publisher sees it: its labels and its gate's figures.
#[cfg(feature = "metrics")]
impl Gated for View {
    fn key(&self) -> SchedulerKey {
        SchedulerKey {
            scheduler: self.name.clone(),
            class: self.class,
            pool: self.pool.label.clone(),
        }
    }

    fn gate_status(&self) -> Option<ThrottleStatus> {
        self.throttle.as_ref().map(Throttle::status)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if !self.word.load().is_shut() {
            self.pool.schedulers.fetch_sub(1, Ordering::Relaxed);
        }
        if self.owns_pool && !self.pool.pool.is_shutdown() {
            self.pool.shared().begin_shutdown();
        }
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (queued, running) = self.counts();
        f.debug_struct("View")
            .field("name", &self.name)
            .field("class", &self.class)
            .field("pool", &self.pool.pool.name())
            .field("shutdown", &self.is_shut())
            .field("queued", &queued)
            .field("running", &running)
            .field("throttle", &self.throttle.as_ref().map(Throttle::status))
            .finish()
    }
}

/// Views that are alive, held weakly (the service keeps its throttled views to cancel what their
/// gates hold at shutdown).
pub(crate) type WeakViews = Mutex<Vec<Weak<View>>>;

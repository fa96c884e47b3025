//! [`Scheduler`]: a named view over one pool, with its own task tracking and lifecycle, and the
//! caller-aware rejection policy carried out.
//!
//! A view is cheap: the service hands out a fresh one per call. Each view counts its own tasks
//! (queued and running) in one atomic word, so shutting a view down, cancelling its queued tasks
//! or waiting for them touches that view only — the pool and other views are unaffected.
//!
//! A throttled or rate-limited view puts a gate (`throttle.rs`) between its callers and the pool:
//! every task of such a view holds one of the gate's slots from the moment the gate lets it
//! through until it ends, is discarded, or the pool refuses it (`TaskScope` gives the slot back).
//! The view's delayed, periodic and cron tasks (`timed.rs`) are registered with it, so its
//! shutdown cancels them.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::TaskClass;
use crate::policy::{self, Decision, Target};
use crate::pool::{Shared, ThreadPool};
use crate::rejected::{RejectKind, Rejected};
use crate::task::{HandleJob, Job, PlainJob, RunHooks, TaskHandle};
use crate::throttle::{Entry, Pump, Throttle, ThrottleStatus};
use crate::timed::TimedTask;
use crate::timer::{Fire, Timer};

/// CPU_LIGHT tasks running longer than this are counted as overruns and warned about.
pub const LIGHT_BUDGET: Duration = Duration::from_millis(10);

/// Refusal and overrun warnings are logged at most once per this interval per scheduler.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Grace period of [`Scheduler::stop`] when the configuration names none (Mule's default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a task the pool refused waits before the timer offers it again (Mule's "maximum
/// theoretical duration of a CPU_LIGHT task").
pub(crate) const RETRY_DELAY: Duration = Duration::from_millis(10);

/// What the dispatch layer counts per pool (the pool counts only what it does itself).
#[derive(Default)]
pub(crate) struct DispatchCounters {
    /// Tasks run on the submitting thread because this pool was full.
    pub(crate) caller_ran: AtomicU64,
    /// CPU_LIGHT tasks that ran longer than the light budget on this pool.
    pub(crate) light_overruns: AtomicU64,
    /// Flow steps dispatched to this pool (a thread switch).
    pub(crate) hops_switched: AtomicU64,
    /// Flow steps that ran in place on a thread of this pool (no switch).
    pub(crate) hops_elided: AtomicU64,
}

/// One pool as the service and its views see it.
pub(crate) struct PoolEntry {
    pub(crate) pool: ThreadPool,
    /// The dispatch layer's counters for this pool.
    pub(crate) dispatch: DispatchCounters,
    pub(crate) target: Target,
    /// The pool's label in reports: `uber`, `cpuLight`, `io`, `cpuIntensive`, or the custom
    /// scheduler's name.
    pub(crate) label: String,
    /// Views over this pool that are not shut down.
    pub(crate) schedulers: AtomicUsize,
}

impl PoolEntry {
    pub(crate) fn shared(&self) -> &crate::loom::Arc<Shared> {
        self.pool.shared()
    }

    /// Offers `job` to the pool and, when it is full, carries out the caller-aware policy for
    /// the calling thread: wait (within `patience`), hand the job back to run here (counted in
    /// `caller_ran`), or refuse. Every entry point — scheduler views, flow entries and flow hops —
    /// goes through here, so the policy is applied in one place.
    pub(crate) fn offer(&self, job: Job, patience: Patience) -> Offered {
        let shared = self.shared();
        match Shared::admit(shared, job) {
            Ok(()) => Offered::Accepted,
            Err((job, RejectKind::Busy)) => {
                let decision = match patience {
                    Patience::Never => Decision::Refuse,
                    _ => policy::decide(policy::current_role(), self.target),
                };
                match decision {
                    Decision::RunInline => {
                        self.dispatch.caller_ran.fetch_add(1, Ordering::Relaxed);
                        Offered::RunHere(job)
                    }
                    Decision::Wait => {
                        let deadline = match patience {
                            Patience::Until(deadline) => Some(deadline),
                            _ => None,
                        };
                        match Shared::admit_waiting(shared, job, deadline) {
                            Ok(()) => Offered::Accepted,
                            Err((job, kind)) => self.refused(job, kind),
                        }
                    }
                    Decision::Refuse => self.refused(job, RejectKind::Busy),
                }
            }
            Err((job, kind)) => self.refused(job, kind),
        }
    }

    /// The job goes back to the caller: counted in the pool's `rejected`.
    fn refused(&self, job: Job, kind: RejectKind) -> Offered {
        self.shared().count_rejected();
        Offered::Refused(job, kind)
    }
}

/// What [`PoolEntry::offer`] came to.
pub(crate) enum Offered {
    /// The pool took the job (at once, or after the caller waited).
    Accepted,
    /// The pool is full and the caller's role says: run the job on this thread, now.
    RunHere(Job),
    /// The job comes back, with the reason.
    Refused(Job, RejectKind),
}

// The view word: queued (bits 0..31), running (31..62), SHUT (62), NOW (63).
const QUEUED_ONE: u64 = 1;
const QUEUED_MASK: u64 = (1 << 31) - 1;
const RUNNING_SHIFT: u32 = 31;
const RUNNING_ONE: u64 = 1 << RUNNING_SHIFT;
const RUNNING_MASK: u64 = ((1 << 31) - 1) << RUNNING_SHIFT;
const SHUT: u64 = 1 << 62;
const NOW: u64 = 1 << 63;

fn queued(word: u64) -> u64 {
    word & QUEUED_MASK
}

fn running(word: u64) -> u64 {
    (word & RUNNING_MASK) >> RUNNING_SHIFT
}

static NEXT_VIEW_ID: AtomicUsize = AtomicUsize::new(1);

/// The state one view's clones and tasks share.
pub(crate) struct ViewShared {
    id: usize,
    name: String,
    class: TaskClass,
    entry: Arc<PoolEntry>,
    /// The view's own pool (custom schedulers): shut down with the view.
    owns_pool: bool,
    /// Queued and running tasks of this view and its SHUT / NOW flags (see the constants).
    word: AtomicU64,
    /// Signalled when the view's last task leaves after shutdown.
    idle_lock: Mutex<()>,
    idle_signal: Condvar,
    stop_timeout: Duration,
    last_refusal_log: Mutex<Option<Instant>>,
    last_overrun_log: Mutex<Option<Instant>>,
    /// The service's timer: timed tasks, rate releases, retries of held tasks.
    timer: Timer,
    /// The gate of a throttled or rate-limited view.
    throttle: Option<Throttle>,
    /// This view's timed tasks that may still fire (dead entries are pruned on registration).
    timed: Mutex<Vec<Weak<TimedTask>>>,
    /// Accepted tasks cancelled before they reached the pool (see `cancel_held`).
    held_cancelled: AtomicU64,
}

impl ViewShared {
    /// A task enters the view (before it is offered to the pool).
    fn enter(&self) -> bool {
        let before = self.word.fetch_add(QUEUED_ONE, Ordering::SeqCst);
        if before & SHUT != 0 {
            self.leave_queued();
            return false;
        }
        true
    }

    /// A queued task leaves without running (refused, cancelled, or discarded at shutdown).
    fn leave_queued(&self) {
        let after = self.word.fetch_sub(QUEUED_ONE, Ordering::SeqCst) - QUEUED_ONE;
        self.notify_if_idle(after);
    }

    /// A queued task starts; `false` if the view was shut down with `shutdown_now` meanwhile.
    fn start_task(&self) -> bool {
        let mut current = self.word.load(Ordering::SeqCst);
        loop {
            let (next, run) = if current & NOW != 0 {
                (current - QUEUED_ONE, false)
            } else {
                (current - QUEUED_ONE + RUNNING_ONE, true)
            };
            match self
                .word
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    if !run {
                        self.notify_if_idle(next);
                    }
                    return run;
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn finish_task(&self) {
        let after = self.word.fetch_sub(RUNNING_ONE, Ordering::SeqCst) - RUNNING_ONE;
        self.notify_if_idle(after);
    }

    fn notify_if_idle(&self, word: u64) {
        if word & SHUT != 0 && queued(word) == 0 && running(word) == 0 {
            let _guard = self.idle_lock.lock();
            self.idle_signal.notify_all();
        }
    }

    /// Tasks of this view not finished, not counting the one the calling thread is running.
    fn outstanding_excluding_current(&self) -> u64 {
        let word = self.word.load(Ordering::SeqCst);
        let mine = CURRENT_TASK.with(|c| c.get().is_some_and(|(_, view)| view == self.id));
        queued(word) + running(word) - u64::from(mine && running(word) > 0)
    }

    pub(crate) fn is_shut(&self) -> bool {
        self.word.load(Ordering::SeqCst) & SHUT != 0 || self.entry.pool.is_shutdown()
    }

    /// Marks the view shut down; returns the word before.
    fn mark_shut(&self, flags: u64) -> u64 {
        let before = self.word.fetch_or(flags, Ordering::SeqCst);
        if before & SHUT == 0 {
            self.entry.schedulers.fetch_sub(1, Ordering::Relaxed);
        }
        self.notify_if_idle(before | flags);
        before
    }

    /// Waits until no task of the view (other than the caller's) is queued or running.
    fn wait_idle(&self, deadline: Instant) -> bool {
        let mut guard = self.idle_lock.lock();
        loop {
            if self.outstanding_excluding_current() == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Bounded wait: the view's own task, when it calls `stop`, never signals.
            self.idle_signal
                .wait_for(&mut guard, left.min(Duration::from_millis(50)));
        }
    }

    /// The view's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The service's timer.
    pub(crate) fn timer(&self) -> &Timer {
        &self.timer
    }

    /// A task enters the view; `false` (nothing counted) once the view is shut down.
    pub(crate) fn try_enter(&self) -> bool {
        self.enter()
    }

    /// An entered task leaves without running (see [`leave_queued`](Self::leave_queued)).
    pub(crate) fn leave_unrun(&self) {
        self.leave_queued();
    }

    /// Registers a timed task so that the view's shutdown cancels it.
    pub(crate) fn register_timed(&self, task: Weak<TimedTask>) {
        let mut timed = self.timed.lock();
        timed.retain(|t| t.strong_count() > 0);
        timed.push(task);
    }

    /// Cancels the view's periodic and cron tasks, and its pending delayed tasks too when
    /// `delayed` is set.
    fn cancel_timed(&self, delayed: bool) {
        let tasks: Vec<Arc<TimedTask>> =
            self.timed.lock().iter().filter_map(Weak::upgrade).collect();
        for task in tasks {
            if delayed || task.is_periodic() {
                task.cancel();
            }
        }
    }

    /// Offers an entered task: through the gate (throttled views), then to the pool, carrying
    /// out the caller-aware policy when the pool is full. A refused task comes back holding no
    /// slot; the caller undoes its entry.
    pub(crate) fn offer(
        self: &Arc<Self>,
        job: Job,
        patience: Patience,
    ) -> Result<(), (Job, RejectKind)> {
        let job = match &self.throttle {
            None => job,
            Some(throttle) => {
                let (may_wait, deadline) = match patience {
                    Patience::Never => (false, None),
                    Patience::Policy => (policy::may_block(policy::current_role()), None),
                    Patience::Until(deadline) => {
                        (policy::may_block(policy::current_role()), Some(deadline))
                    }
                };
                let (entry, pump) = throttle.enter(job, may_wait, deadline, &|| self.is_shut());
                self.run_pump(pump);
                match entry {
                    Entry::Start(job) => job,
                    Entry::Held => return Ok(()),
                    Entry::Refused(job, kind) => return Err((job, kind)),
                }
            }
        };
        let refused = self.offer_to_pool(job, patience);
        if refused.is_err() {
            self.release_slot();
        }
        refused
    }

    /// Offers a task to the pool; when the pool is full, the calling thread's role decides.
    fn offer_to_pool(&self, job: Job, patience: Patience) -> Result<(), (Job, RejectKind)> {
        match self.entry.offer(job, patience) {
            Offered::Accepted => Ok(()),
            Offered::RunHere(job) => {
                if let crate::task::RunOutcome::Panicked(message) = job.run() {
                    tracing::warn!(scheduler = %self.name, panic = %message, "task run on the submitting thread panicked");
                }
                Ok(())
            }
            Offered::Refused(job, kind) => Err((job, kind)),
        }
    }

    /// A task of a throttled view gives its slot back; held tasks may start in its place.
    fn release_slot(self: &Arc<Self>) {
        if let Some(throttle) = &self.throttle {
            let pump = throttle.release();
            self.run_pump(pump);
        }
    }

    /// Carries out a gate's follow-up: offers the tasks it started, arms its release timer.
    fn run_pump(self: &Arc<Self>, pump: Pump) {
        for job in pump.start {
            self.start_held(job);
        }
        if let Some(at) = pump.arm_at {
            let view = self.clone();
            let action = Box::new(move |fire: Fire| match fire {
                Fire::Due => {
                    if let Some(throttle) = &view.throttle {
                        let pump = throttle.timer_fired();
                        view.run_pump(pump);
                    }
                }
                Fire::Cancelled => view.cancel_held(None),
            });
            if self.timer.defer_until(at, false, action).is_err() {
                self.cancel_held(None);
            }
        }
    }

    /// Offers a task the gate released (it holds a slot). The pool never makes this thread wait
    /// or run it: a full pool has the timer offer it again [`RETRY_DELAY`] later; a shut-down
    /// pool cancels it and every other held task.
    fn start_held(self: &Arc<Self>, job: Job) {
        match Shared::admit(self.entry.shared(), job) {
            Ok(()) => {}
            Err((job, RejectKind::Busy)) => {
                let view = self.clone();
                let action = Box::new(move |fire: Fire| match fire {
                    Fire::Due => view.start_held(job),
                    Fire::Cancelled => view.cancel_held(Some(job)),
                });
                // Not a timer "task": `cancel_held` counts it if the timer shuts down first.
                let retry_at = Instant::now() + RETRY_DELAY;
                if let Err(refused) = self.timer.defer_until(retry_at, false, action) {
                    (refused.action)(Fire::Cancelled);
                }
            }
            Err((job, _)) => self.cancel_held(Some(job)),
        }
    }

    /// Cancels `job` (which holds a slot) and every task the gate holds: the pool or the timer
    /// is gone. Their handles yield `Cancelled`; their slots and view counts are given back.
    fn cancel_held(self: &Arc<Self>, job: Option<Job>) {
        let held = match &self.throttle {
            Some(throttle) => throttle.drain(),
            None => Vec::new(),
        };
        for job in job.into_iter().chain(held) {
            job.cancel();
            self.held_cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Accepted tasks of this view cancelled before they ever reached the pool (held by the
    /// gate, or waiting for a retry): the service adds them to its shutdown report.
    pub(crate) fn held_cancelled(&self) -> u64 {
        self.held_cancelled.load(Ordering::SeqCst)
    }

    /// Cancels every task the gate holds (the service is shutting down: its pools will not
    /// accept them).
    pub(crate) fn cancel_held_tasks(self: &Arc<Self>) {
        self.cancel_held(None);
    }

    /// `true` for a throttled or rate-limited view.
    pub(crate) fn is_gated(&self) -> bool {
        self.throttle.is_some()
    }

    fn log_refusal(&self, kind: RejectKind) {
        if rate_limited(&self.last_refusal_log) {
            tracing::warn!(
                scheduler = %self.name,
                pool = %self.entry.label,
                %kind,
                "task rejected from scheduler '{}'; similar log entries will be suppressed for the following 5 seconds",
                self.name
            );
        }
    }
}

/// `true` (and records now) if the last logged event is older than [`LOG_INTERVAL`].
pub(crate) fn rate_limited(last: &Mutex<Option<Instant>>) -> bool {
    let mut last = last.lock();
    let now = Instant::now();
    match *last {
        Some(at) if now.duration_since(at) < LOG_INTERVAL => false,
        _ => {
            *last = Some(now);
            true
        }
    }
}

thread_local! {
    /// The class and view of the task the thread is running, if any.
    pub(crate) static CURRENT_TASK: Cell<Option<(TaskClass, usize)>> = const { Cell::new(None) };
}

/// The class of the task the calling thread is running, if it is running one through a
/// scheduler.
///
/// Inside a task run inline on the submitting thread (the pool was full), this is the inline
/// task's class, not the class of the task that submitted it.
///
/// ```
/// use uberpool::{SchedulerService, TaskClass, current_class};
///
/// let service = SchedulerService::builder().build()?;
/// let class = service.io().submit(current_class)?.join()?;
/// assert_eq!(class, Some(TaskClass::Io));
/// assert_eq!(current_class(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn current_class() -> Option<TaskClass> {
    CURRENT_TASK.with(|c| c.get().map(|(class, _)| class))
}

/// `true` on threads meant for CPU work: every UBER thread (whatever it runs), and the cpuLight
/// and cpuIntensive threads of DEDICATED. Blocking calls on such threads are a design smell.
pub fn is_current_thread_for_cpu_work() -> bool {
    policy::current_role().is_for_cpu_work()
}

/// `true` on threads that may block waiting for a busy pool: every UBER thread, DEDICATED io
/// threads, and custom schedulers configured with `wait_allowed`.
pub fn is_current_thread_in_wait_group() -> bool {
    policy::current_role().may_wait()
}

/// The bookkeeping around each task of a view: its counts in the view word, its slot in a
/// throttled view's gate, `current_class`, CPU_LIGHT overrun checks.
pub(crate) struct TaskScope {
    view: Arc<ViewShared>,
    started: Option<Instant>,
    saved: Option<(TaskClass, usize)>,
}

impl TaskScope {
    pub(crate) fn new(view: Arc<ViewShared>) -> Self {
        Self {
            view,
            started: None,
            saved: None,
        }
    }
}

impl RunHooks for TaskScope {
    fn begin(&mut self) -> bool {
        if !self.view.start_task() {
            self.view.release_slot();
            return false;
        }
        self.saved = CURRENT_TASK.with(|c| c.replace(Some((self.view.class, self.view.id))));
        if self.view.class == TaskClass::CpuLight {
            self.started = Some(Instant::now());
        }
        true
    }

    fn end(&mut self) {
        CURRENT_TASK.with(|c| c.set(self.saved.take()));
        if let Some(started) = self.started.take() {
            let took = started.elapsed();
            if took > LIGHT_BUDGET {
                self.view
                    .entry
                    .dispatch
                    .light_overruns
                    .fetch_add(1, Ordering::Relaxed);
                if rate_limited(&self.view.last_overrun_log) {
                    tracing::warn!(
                        scheduler = %self.view.name,
                        took_ms = took.as_millis() as u64,
                        "a CPU_LIGHT task of scheduler '{}' ran for {:?}, over the {:?} budget: \
                         blocking or long work belongs on IO or CPU_INTENSIVE",
                        self.view.name,
                        took,
                        LIGHT_BUDGET
                    );
                }
            }
        }
        self.view.finish_task();
        self.view.release_slot();
    }

    fn discard(&mut self) {
        self.view.leave_queued();
        self.view.release_slot();
    }
}

/// How long a dispatch may block when the target is full.
#[derive(Clone, Copy)]
pub(crate) enum Patience {
    /// Follow the caller-aware policy; wait without limit.
    Policy,
    /// Follow the policy, but never wait past this instant.
    Until(Instant),
    /// Never wait and never run inline.
    Never,
}

/// A handle to submit work of one class, with its own lifecycle. Cheap to clone: clones share
/// the view.
///
/// When the pool behind the view is full, what happens depends on the calling thread (see the
/// crate documentation's table): a foreign thread waits, an IO thread submitting IO work runs it
/// itself, a CPU thread is refused, and so on. Refused work comes back in [`Rejected`].
///
/// ```
/// use uberpool::SchedulerService;
///
/// let service = SchedulerService::builder().build()?;
/// let io = service.io();
/// let reply = io.submit(|| "250 OK")?;        // a blocking SMTP call in real life
/// assert_eq!(reply.join()?, "250 OK");
/// io.shutdown();                                // this view only; the pool carries on
/// assert!(io.submit(|| ()).is_err());
/// assert!(service.io().submit(|| ()).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Scheduler {
    view: Arc<ViewShared>,
}

impl Scheduler {
    pub(crate) fn new(
        entry: Arc<PoolEntry>,
        class: TaskClass,
        name: String,
        owns_pool: bool,
        stop_timeout: Option<Duration>,
        timer: Timer,
        throttle: Option<Throttle>,
    ) -> Self {
        entry.schedulers.fetch_add(1, Ordering::Relaxed);
        Scheduler {
            view: Arc::new(ViewShared {
                id: NEXT_VIEW_ID.fetch_add(1, Ordering::Relaxed),
                name,
                class,
                entry,
                owns_pool,
                word: AtomicU64::new(0),
                idle_lock: Mutex::new(()),
                idle_signal: Condvar::new(),
                stop_timeout: stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT),
                last_refusal_log: Mutex::new(None),
                last_overrun_log: Mutex::new(None),
                timer,
                throttle,
                timed: Mutex::new(Vec::new()),
                held_cancelled: AtomicU64::new(0),
            }),
        }
    }

    /// The view's shared state (for timed tasks).
    pub(crate) fn view(&self) -> &Arc<ViewShared> {
        &self.view
    }

    /// Runs `f` exactly once: on the service's timer thread once `delay` has passed or, if the
    /// service shuts down first, early, on the thread shutting it down (where a dispatch meets
    /// pools that are shutting down and a second `defer` is refused). Returns `false`, without
    /// running `f`, if the timer refuses it (the service is already shut down, or `delay`
    /// overflows). Async tasks re-submit their polls with it.
    ///
    /// On the timer thread `f` must only dispatch, never block or run user code: see
    /// [`Timer::defer`](crate::timer::Timer::defer).
    pub(crate) fn defer(&self, delay: Duration, f: Box<dyn FnOnce() + Send + 'static>) -> bool {
        let action = Box::new(move |_: Fire| f());
        self.view.timer.defer(delay, action).is_ok()
    }

    /// The class of work this scheduler runs.
    pub fn class(&self) -> TaskClass {
        self.view.class
    }

    /// The scheduler's name (used in logs and rejections).
    pub fn name(&self) -> &str {
        &self.view.name
    }

    /// The name of the pool behind this scheduler.
    pub fn pool_name(&self) -> &str {
        self.view.entry.pool.name()
    }

    /// Runs `f` and returns a handle to its value.
    ///
    /// When the pool is full, the calling thread's role decides: wait until the pool accepts,
    /// run `f` now on this thread (the handle is then already finished), or refuse with
    /// [`RejectKind::Busy`]. After shutdown the work is refused with [`RejectKind::Shutdown`].
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.dispatch_handle(f, Patience::Policy)
    }

    /// Like [`submit`](Self::submit), but never waits and never runs `f` on this thread: a full
    /// pool refuses at once.
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.dispatch_handle(f, Patience::Never)
    }

    /// Like [`submit`](Self::submit), but a wait for a full pool gives up after `timeout`
    /// ([`RejectKind::Busy`], with `f` returned).
    pub fn submit_timeout<F, T>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let patience = match Instant::now().checked_add(timeout) {
            Some(deadline) => Patience::Until(deadline),
            None => Patience::Policy,
        };
        self.dispatch_handle(f, patience)
    }

    /// Runs `f` without a handle (one allocation). Refusals follow the same rules as
    /// [`submit`](Self::submit).
    pub fn execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.dispatch(
            f,
            Patience::Policy,
            |f, scope| (PlainJob::job(f, scope), ()),
            PlainJob::<F, TaskScope>::recover,
        )
    }

    fn dispatch_handle<F, T>(&self, f: F, patience: Patience) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.dispatch(
            f,
            patience,
            HandleJob::with_hooks,
            HandleJob::<F, T, TaskScope>::recover,
        )
    }

    /// Offers `f` to the pool and carries out the policy when the pool is full.
    fn dispatch<F, R>(
        &self,
        f: F,
        patience: Patience,
        build: impl FnOnce(F, TaskScope) -> (Job, R),
        recover: fn(Job) -> F,
    ) -> Result<R, Rejected<F>> {
        let view = &self.view;
        if !view.enter() {
            return Err(Rejected::new(f, RejectKind::Shutdown, view.name.as_str()));
        }
        let (job, result) = build(f, TaskScope::new(view.clone()));
        match view.offer(job, patience) {
            Ok(()) => Ok(result),
            Err((job, kind)) => {
                let f = recover(job);
                view.leave_queued();
                if kind != RejectKind::Shutdown {
                    view.log_refusal(kind);
                }
                Err(Rejected::new(f, kind, view.name.as_str()))
            }
        }
    }

    /// Stops accepting work on this scheduler. Tasks already submitted still run — including
    /// those waiting in a throttled scheduler's queue and pending delayed tasks, as in Mule —
    /// while periodic and cron tasks end; callers waiting at a throttled scheduler's limit are
    /// refused with [`RejectKind::Shutdown`]. Other schedulers over the same pool are
    /// unaffected. Does not wait.
    pub fn shutdown(&self) {
        self.view.mark_shut(SHUT);
        if let Some(throttle) = &self.view.throttle {
            throttle.wake_waiters();
        }
        self.view.cancel_timed(false);
        if self.view.owns_pool {
            self.view.entry.shared().begin_shutdown();
        }
    }

    /// Stops accepting work and cancels this scheduler's tasks that have not started (their
    /// handles yield [`TaskError::Cancelled`](crate::TaskError::Cancelled)): queued ones, those
    /// in a throttled scheduler's own queue, and pending delayed tasks. Periodic and cron tasks
    /// end. Returns how many tasks were cancelled. Running tasks cannot be interrupted; they
    /// run to their end.
    ///
    /// A task already handed to the pool cannot be taken out of the pool's queue from here: it
    /// is marked cancelled, and when a pool thread reaches it, it is dropped unrun and its handle
    /// resolves as `Cancelled` — at once if the pool has an idle thread, otherwise as soon as
    /// one frees. It never runs.
    pub fn shutdown_now(&self) -> usize {
        let before = self.view.mark_shut(SHUT | NOW);
        // Timed tasks first, so that a delayed task held by the gate is cancelled through its
        // handle (and reports it), then whatever else the gate holds.
        self.view.cancel_timed(true);
        self.view.cancel_held(None);
        if self.view.owns_pool {
            self.view.entry.shared().begin_shutdown();
        }
        if before & NOW != 0 {
            0
        } else {
            queued(before) as usize
        }
    }

    /// Graceful stop: shuts down (periodic and cron tasks end), waits up to the scheduler's stop
    /// timeout (default 5 s) for its queued and running tasks and pending delayed tasks, then
    /// cancels what has not started. Returns `true` if every task finished in time.
    ///
    /// Called from one of the scheduler's own tasks, it does not wait for that task.
    pub fn stop(&self) -> bool {
        self.shutdown();
        let deadline = Instant::now() + self.view.stop_timeout;
        let graceful = self.view.wait_idle(deadline);
        if !graceful {
            let cancelled = self.shutdown_now();
            tracing::warn!(
                scheduler = %self.view.name,
                cancelled,
                "scheduler did not stop gracefully within {:?}",
                self.view.stop_timeout
            );
        }
        if self.view.owns_pool {
            let left = deadline.saturating_duration_since(Instant::now());
            self.view.entry.pool.shutdown_timeout(left);
        }
        graceful
    }

    /// The gate of a throttled or rate-limited scheduler (see
    /// [`SchedulerConfig::max_concurrent_tasks`](crate::SchedulerConfig::max_concurrent_tasks)
    /// and [`SchedulerConfig::rate_limit`](crate::SchedulerConfig::rate_limit)); `None` for a
    /// plain view.
    ///
    /// ```
    /// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// assert!(service.io().throttle().is_none());
    /// let gated = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().max_concurrent_tasks(3),
    /// )?;
    /// let status = gated.throttle().unwrap();
    /// assert_eq!((status.limit, status.in_flight), (Some(3), 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn throttle(&self) -> Option<ThrottleStatus> {
        self.view.throttle.as_ref().map(Throttle::status)
    }

    /// How many more tasks this scheduler would accept right now without making the caller
    /// wait, running a task on the caller's thread, or refusing: the room of its pool (idle
    /// threads, queue room, threads it may still start) and, for a throttled or rate-limited
    /// scheduler, the free slots and queue room of its gate. Zero once it is shut down.
    ///
    /// A snapshot, for callers that pull work from elsewhere (a queue consumer takes only as
    /// many jobs as this says): other submitters may take the room before the caller uses it,
    /// and the submission then follows the usual rules.
    ///
    /// ```
    /// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let relay = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().max_concurrent_tasks(4).queue_size(10),
    /// )?;
    /// assert_eq!(relay.free_slots(), 4 + 10);
    /// relay.shutdown();
    /// assert_eq!(relay.free_slots(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_slots(&self) -> usize {
        if self.is_shutdown() {
            return 0;
        }
        let pool_free = self.view.entry.pool.free_slots();
        match &self.view.throttle {
            None => pool_free,
            Some(throttle) => throttle.free_slots(pool_free),
        }
    }

    /// `true` once the scheduler (or its pool) no longer accepts work.
    pub fn is_shutdown(&self) -> bool {
        self.view.is_shut()
    }

    /// `true` once the scheduler is shut down and none of its tasks is queued or running (the
    /// task calling this, if it is one of the scheduler's, does not count).
    pub fn is_terminated(&self) -> bool {
        self.is_shutdown() && self.view.outstanding_excluding_current() == 0
    }
}

impl Drop for ViewShared {
    fn drop(&mut self) {
        if self.word.load(Ordering::SeqCst) & SHUT == 0 {
            self.entry.schedulers.fetch_sub(1, Ordering::Relaxed);
        }
        if self.owns_pool && !self.entry.pool.is_shutdown() {
            self.entry.shared().begin_shutdown();
        }
    }
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.view.word.load(Ordering::SeqCst);
        f.debug_struct("Scheduler")
            .field("name", &self.view.name)
            .field("class", &self.view.class)
            .field("pool", &self.view.entry.pool.name())
            .field("shutdown", &self.is_shutdown())
            .field("queued", &queued(word))
            .field("running", &running(word))
            .field("throttle", &self.throttle())
            .finish()
    }
}

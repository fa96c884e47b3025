//! [`Scheduler`]: a named view over one pool, with its own task tracking and lifecycle, and the
//! caller-aware rejection policy carried out.
//!
//! A view is cheap: the service hands out a fresh one per call. Each view counts its own tasks
//! (queued and running) in one atomic word, so shutting a view down, cancelling its queued tasks
//! or waiting for them touches that view only — the pool and other views are unaffected.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::TaskClass;
use crate::policy::{self, Decision, Target};
use crate::pool::{Shared, ThreadPool};
use crate::rejected::{RejectKind, Rejected};
use crate::task::{HandleJob, Job, PlainJob, RunHooks, TaskHandle};

/// CPU_LIGHT tasks running longer than this are counted as overruns and warned about.
pub const LIGHT_BUDGET: Duration = Duration::from_millis(10);

/// Refusal and overrun warnings are logged at most once per this interval per scheduler.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Grace period of [`Scheduler::stop`] when the configuration names none (Mule's default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One pool as the service and its views see it.
pub(crate) struct PoolEntry {
    pub(crate) pool: ThreadPool,
    pub(crate) target: Target,
    /// The pool's label in reports: `uber`, `cpuLight`, `io`, `cpuIntensive`, or the custom
    /// scheduler's name.
    pub(crate) label: String,
    /// Views over this pool that are not shut down.
    pub(crate) schedulers: AtomicUsize,
}

impl PoolEntry {
    fn shared(&self) -> &crate::loom::Arc<Shared> {
        self.pool.shared()
    }
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

    fn is_shut(&self) -> bool {
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
fn rate_limited(last: &Mutex<Option<Instant>>) -> bool {
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
    static CURRENT_TASK: Cell<Option<(TaskClass, usize)>> = const { Cell::new(None) };
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

/// The bookkeeping around each task of a view.
struct TaskScope {
    view: Arc<ViewShared>,
    started: Option<Instant>,
    saved: Option<(TaskClass, usize)>,
}

impl TaskScope {
    fn new(view: Arc<ViewShared>) -> Self {
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
                let shared = self.view.entry.shared();
                shared
                    .counters
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
    }

    fn discard(&mut self) {
        self.view.leave_queued();
    }
}

/// How long a dispatch may block when the target is full.
#[derive(Clone, Copy)]
enum Patience {
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
            }),
        }
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
            |f, scope| (Box::new(PlainJob(f, scope)) as Job, ()),
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
            |f, scope| {
                let (job, handle) = HandleJob::with_hooks(f, scope);
                (Box::new(job) as Job, handle)
            },
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
        let shared = view.entry.shared();
        let refused = match Shared::admit(shared, job) {
            Ok(()) => return Ok(result),
            Err((job, RejectKind::Busy)) => {
                let decision = match patience {
                    Patience::Never => Decision::Refuse,
                    _ => policy::decide(policy::current_role(), view.entry.target),
                };
                match decision {
                    Decision::RunInline => {
                        shared.counters.caller_ran.fetch_add(1, Ordering::Relaxed);
                        if let crate::task::RunOutcome::Panicked(message) = job.run() {
                            tracing::warn!(scheduler = %view.name, panic = %message, "task run on the submitting thread panicked");
                        }
                        return Ok(result);
                    }
                    Decision::Wait => {
                        let deadline = match patience {
                            Patience::Until(deadline) => Some(deadline),
                            _ => None,
                        };
                        match Shared::admit_waiting(shared, job, deadline) {
                            Ok(()) => return Ok(result),
                            Err(refused) => refused,
                        }
                    }
                    Decision::Refuse => (job, RejectKind::Busy),
                }
            }
            Err(refused) => refused,
        };
        let (job, kind) = refused;
        let f = recover(job);
        view.leave_queued();
        if kind == RejectKind::Busy {
            view.log_refusal(kind);
        }
        Err(Rejected::new(f, kind, view.name.as_str()))
    }

    /// Stops accepting work on this scheduler. Tasks already submitted still run; other
    /// schedulers over the same pool are unaffected. Does not wait.
    pub fn shutdown(&self) {
        self.view.mark_shut(SHUT);
        if self.view.owns_pool {
            self.view.entry.shared().begin_shutdown();
        }
    }

    /// Stops accepting work and cancels this scheduler's tasks that have not started (their
    /// handles yield [`TaskError::Cancelled`](crate::TaskError::Cancelled)). Returns how many
    /// were cancelled. Running tasks cannot be interrupted; they run to their end.
    pub fn shutdown_now(&self) -> usize {
        let before = self.view.mark_shut(SHUT | NOW);
        if self.view.owns_pool {
            self.view.entry.shared().begin_shutdown();
        }
        if before & NOW != 0 {
            0
        } else {
            queued(before) as usize
        }
    }

    /// Graceful stop: shuts down, waits up to the scheduler's stop timeout (default 5 s) for its
    /// queued and running tasks, then cancels what has not started. Returns `true` if every task
    /// finished in time.
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
            .finish()
    }
}

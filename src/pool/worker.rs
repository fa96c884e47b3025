//! The worker thread: its main loop, how it finds a task, and the thread-local context that
//! lets code running on a pool thread know which pool it is on.
//!
//! Finding a task follows the crossbeam-deque recipe: the worker's own deque first (tasks its
//! thread submitted to its own pool), then the shared injector, then — only while the admission
//! word says a task is pending somewhere — the other workers' deques.
//!
//! A worker never dies from user code. Jobs contain the panics of the code they run (their
//! closures, and the `Drop`s and wakers they meet); the worker runs each job under one more
//! `catch_unwind` as the last line of defence, so a panic that escapes a job (a scheduler's
//! bookkeeping, say) is logged and counted as that task's panic and the thread carries on. The
//! thread hooks run contained too. The thread is kept rather than replaced: its state (busy, with
//! a claimed task) is exactly what the loop expects after any task, so nothing needs repair.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crossbeam_utils::Backoff;

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::Shared;
use super::queue::Local;
use super::sleep::{Sleeper, Wake};
use crate::loom::{Arc, Ordering};
use crate::task::{Job, Report, RunOutcome, contain, drop_payload, panic_message};

/// What the current thread is, when it is a pool worker.
pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
    pub(crate) local: Rc<Local<Job>>,
    pub(crate) seq: usize,
    pub(crate) tail: Rc<Tail>,
}

/// What the worker loop and [`Shared::admit_as_tail`] share about the task running now.
#[derive(Default)]
pub(crate) struct Tail {
    /// Set when the running task handed a task to this pool as its last act and counted this
    /// thread idle for it: after the task returns the worker is already idle.
    turned_idle: Cell<bool>,
    /// The thread is counted in its pool's `cpu.running` (see `cpu.rs`): it runs CPU work, or
    /// ran it last and has not searched the queues as an idle worker since.
    pub(crate) cpu: Cell<bool>,
}

#[cfg(not(loom))]
std::thread_local! {
    pub(crate) static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

#[cfg(loom)]
loom::thread_local! {
    pub(crate) static CURRENT: RefCell<Option<Context>> = RefCell::new(None);
}

std::thread_local! {
    /// This thread's task boundaries as a worker: one more each time it takes a task, and each
    /// time it turns to searching as an idle worker. Always 0 on other threads. Read through
    /// [`boundary`].
    static BOUNDARIES: Cell<u64> = const { Cell::new(0) };
}

/// The calling thread's count of task boundaries as a pool worker (0 off pool threads). A task
/// whose start sees the count one above what the previous task saw at its end was taken
/// straight after that task, with no idle search and no other task between: the view scope
/// then takes the previous task's end as this one's start instead of reading the clock again
/// (`view/scope.rs`).
pub(crate) fn boundary() -> u64 {
    BOUNDARIES.with(Cell::get)
}

fn cross_boundary() {
    BOUNDARIES.with(|count| count.set(count.get() + 1));
}

/// Runs `f` with the current worker's context, if this thread is a worker.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    CURRENT.with(|current| f(current.borrow().as_ref()))
}

/// The body of every pool thread. `first` is the task the thread was started for (growth), or
/// `None` for a prestarted core thread, which the builder already counted as idle.
pub(crate) fn run(shared: Arc<Shared>, first: Option<Job>, seq: usize, joinable: bool) {
    shared
        .counters
        .threads_started
        .fetch_add(1, Ordering::Relaxed);
    let local = Rc::new(Local::new());
    let tail = Rc::new(Tail::default());
    shared.stealers.write().push((seq, local.stealer()));
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Context {
            shared: shared.clone(),
            local: local.clone(),
            seq,
            tail: tail.clone(),
        })
    });
    // Runs one job; returns `true` if the job handed a task to this pool as its tail and the
    // worker is therefore idle already.
    let run_top = |job: Job| {
        cross_boundary();
        super::cpu::mark_for(&shared, &tail.cpu, &job);
        shared.run_job(job);
        tail.turned_idle.replace(false)
    };
    if let Some(hook) = &shared.hooks.on_thread_start {
        contain("a pool thread's start hook", || hook());
    }

    let sleeper = Arc::new(Sleeper::default());
    let mut idle = match first {
        Some(job) => run_top(job),
        None => true,
    };
    let retired = loop {
        if !idle {
            if let Some(job) = shared.find_task(&local, seq) {
                let after = shared.state.claim_busy();
                shared.after_claim(after);
                idle = run_top(job);
                continue;
            }
            shared.state.become_idle();
            shared.signal_capacity();
        }
        // Not counted as computing while it searches and sleeps: see `cpu.rs`.
        super::cpu::clear_mark(&shared, &tail.cpu);
        cross_boundary();
        match idle_search(&shared, &local, seq, &sleeper) {
            Found::Task(job) => {
                let after = shared.state.claim_idle();
                shared.after_claim(after);
                idle = run_top(job);
            }
            Found::Exit { retired } => break retired,
        }
    };

    if let Some(hook) = &shared.hooks.on_thread_stop {
        contain("a pool thread's stop hook", || hook());
    }
    CURRENT.with(|current| current.borrow_mut().take());
    shared.stealers.write().retain(|(s, _)| *s != seq);
    if retired {
        shared
            .counters
            .threads_retired
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pool = %shared.name, thread = seq, "idle thread retired after keep-alive");
    }
    shared.thread_exited(seq, retired, joinable);
}

enum Found {
    Task(Job),
    Exit { retired: bool },
}

/// Whether an idle worker searches with a back-off (spin, then yield) before it parks. Not under
/// loom: the model explores the interleavings instead.
const SEARCH_BACKOFF: bool = !cfg!(loom);

/// Extra rounds of yield-and-search after the back-off, before parking: a worker that yields
/// instead of parking is found by the next task without a wake-up (a futex call on both sides).
const SEARCH_YIELDS: usize = 64;

/// How many idle workers of one pool may back off (spin, then yield) at once: one per core.
/// The others search once and park. An elastic pool may hold thousands of idle threads on a few
/// cores; if each of them yielded its way through the back-off, they would take the cores from
/// the threads running tasks (measured: see README.md here). Tokio bounds its searching workers
/// the same way (to half its workers); one per core keeps a small pool's hand-offs free of
/// wake-ups, as `spawn_many_remote` needs.
fn backoff_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| num_cpus::get().max(1))
}

/// A yield outside loom; under loom, the shim's spin hint (itself a yield there).
fn yield_hint() {
    if SEARCH_BACKOFF {
        std::thread::yield_now();
    } else {
        crate::loom::spin_hint();
    }
}

/// A worker's right to back off before parking; given back when dropped.
struct BackoffSlot<'a>(&'a Shared);

impl<'a> BackoffSlot<'a> {
    fn take(shared: &'a Shared) -> Option<Self> {
        if !SEARCH_BACKOFF {
            return None;
        }
        let limit = backoff_limit();
        shared
            .backing_off
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| BackoffSlot(shared))
    }
}

impl Drop for BackoffSlot<'_> {
    fn drop(&mut self) {
        self.0.backing_off.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a thread that cannot retire parks before it looks again (it is woken long before
/// by any task; the bound only keeps the wait finite).
const PARK_WITHOUT_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The idle worker's loop: search with a short back-off, then park; leave on retirement or at
/// shutdown once nothing is pending.
fn idle_search(shared: &Arc<Shared>, local: &Local<Job>, seq: usize, me: &Arc<Sleeper>) -> Found {
    loop {
        if let Some(_slot) = BackoffSlot::take(shared) {
            let backoff = Backoff::new();
            while !backoff.is_completed() {
                if let Some(job) = shared.find_task(local, seq) {
                    return Found::Task(job);
                }
                backoff.snooze();
            }
            for _ in 0..SEARCH_YIELDS {
                if let Some(job) = shared.find_task(local, seq) {
                    return Found::Task(job);
                }
                std::thread::yield_now();
            }
        }
        if let Some(job) = shared.find_task(local, seq) {
            return Found::Task(job);
        }
        let state = shared.state.load();
        if state.is_shutdown() {
            if state.pending() == 0 && shared.state.try_leave_idle().is_ok() {
                return Found::Exit { retired: false };
            }
            crate::loom::spin_hint();
            continue;
        }
        // Only a thread that could retire sleeps with the keep-alive: a pool at its core size
        // parks until woken (a zero keep-alive, as fixed pools have, would otherwise make every
        // idle thread of a full-core pool spin through timed-out waits).
        let timeout = if shared.threads.load(Ordering::SeqCst) > shared.spec.core_size {
            shared.spec.keep_alive
        } else {
            PARK_WITHOUT_KEEP_ALIVE
        };
        match shared.sleep.sleep(&shared.state, me, timeout) {
            Wake::Notified => {}
            // A task is pending but was not found: its push is in flight. Its submitter may
            // have been preempted between counting and pushing, so give it the core.
            Wake::Refused => yield_hint(),
            Wake::TimedOut => {
                if shared.try_retire() {
                    return Found::Exit { retired: true };
                }
            }
        }
    }
}

impl Shared {
    /// One task from the worker's own deque, the injector, or another worker's deque.
    pub(crate) fn find_task(&self, local: &Local<Job>, seq: usize) -> Option<Job> {
        if let Some(job) = local.pop() {
            return Some(job);
        }
        if let Some(job) = self.injector.pop() {
            return Some(job);
        }
        if self.state.load().pending() == 0 {
            return None;
        }
        self.steal_any(Some(seq))
    }

    /// Steals one task from any worker's deque except `skip`'s.
    pub(crate) fn steal_any(&self, skip: Option<usize>) -> Option<Job> {
        let stealers = self.stealers.read();
        let n = stealers.len();
        if n == 0 {
            return None;
        }
        let start = skip.unwrap_or(0) % n;
        for i in 0..n {
            let (owner, stealer) = &stealers[(start + i) % n];
            if Some(*owner) == skip {
                continue;
            }
            if let Some(job) = stealer.steal() {
                return Some(job);
            }
        }
        None
    }

    /// Admits `job` as the last act of the task this thread runs for this pool: the thread
    /// counts itself idle for the job ([`State::try_enqueue_as_idle`]) and pushes it to its own
    /// deque, so the pool never grows (nor wakes a sleeper) for a task that the thread about to
    /// finish can take. The caller must return from its task right after (a flow's hop at the end
    /// of its step). Gives the job back when the calling thread is not a worker of this pool, has
    /// already handed a task off in this task, or the pool is shutting down.
    ///
    /// [`State::try_enqueue_as_idle`]: super::state::State::try_enqueue_as_idle
    pub(crate) fn admit_as_tail(this: &Arc<Self>, job: Job) -> Result<(), Job> {
        with_current(|ctx| {
            let Some(ctx) = ctx.filter(|ctx| Arc::ptr_eq(&ctx.shared, this)) else {
                return Err(job);
            };
            if ctx.tail.turned_idle.get() || this.state.try_enqueue_as_idle().is_err() {
                return Err(job);
            }
            this.counters.submitted.fetch_add(1, Ordering::Relaxed);
            ctx.local.push(job);
            ctx.tail.turned_idle.set(true);
            Ok(())
        })
    }

    /// Runs (or, after the grace period, cancels) one claimed job as the worker's top-level task
    /// ([`Job::run_top`]: a flow may end it with a tail hand-off) and counts the outcome: the job
    /// counts itself before it publishes to a handle, else the worker counts it after the run
    /// (a [`Report`] counts once). Nothing the job does unwinds out of here.
    pub(crate) fn run_job(&self, job: Job) {
        if self.aborting.load(Ordering::Relaxed) {
            // counted first: the cancel resolves the handle
            self.counters.tally.count_cancelled();
            contain("cancelling a task at the deadline", || job.cancel());
            return;
        }
        let report = Report::new(&self.counters.tally);
        let outcome = match catch_unwind(AssertUnwindSafe(|| job.run_top(&report))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                // A job contains its user code's panics; this one came from around it.
                let message = panic_message(&*payload);
                drop_payload(payload);
                tracing::error!(pool = %self.name, panic = %message, "a panic escaped a task's own handling; counted as the task's panic");
                RunOutcome::Panicked(message)
            }
        };
        report.count(&outcome);
        if let RunOutcome::Panicked(message) = outcome {
            tracing::warn!(pool = %self.name, panic = %message, "task panicked; the worker thread carries on");
        }
    }

    /// A keep-alive expired: leave if the pool is above its core size and nothing is pending.
    fn try_retire(&self) -> bool {
        if self.state.try_leave_idle().is_err() {
            return false;
        }
        let core = self.spec.core_size;
        let left = self
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > core).then(|| n - 1)
            })
            .is_ok();
        if !left {
            self.state.rejoin_idle();
        }
        left
    }
}

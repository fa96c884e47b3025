//! The task scope: what the calling thread is running right now (class and view), the
//! bookkeeping wrapped around every task of a view, the public queries about the current
//! thread ([`current_class`], [`is_current_thread_for_cpu_work`],
//! [`is_current_thread_in_wait_group`]), and what a task of an adaptive view tells its limit
//! ([`report_overload`], [`ignore_sample`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::TaskClass;
use crate::adaptive::Outcome;
use std::sync::Arc;

use crate::loom::Ordering;
use crate::pool;
use crate::role::current_role;
use crate::task::RunHooks;

use super::View;

/// CPU_LIGHT tasks running longer than this are counted as overruns and warned about.
pub const LIGHT_BUDGET: Duration = Duration::from_millis(10);

/// The task the thread is running: its class, the id of its view (0 for a flow step, which
/// belongs to no view), and for a task of an adaptive view what it has told the limit so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Running {
    pub(crate) class: TaskClass,
    pub(crate) view: usize,
    /// `None` outside adaptive views; `Completed` until the task calls [`report_overload`] or
    /// [`ignore_sample`]. Read by the scope's `end` on the same thread.
    pub(crate) feedback: Option<Outcome>,
}

std::thread_local! {
    /// The task the thread is running through a scheduler or flow, if any; nested inline runs
    /// save and restore it.
    static CURRENT_TASK: Cell<Option<Running>> = const { Cell::new(None) };
    /// When the last top-level task of a view that times its tasks ended on this thread, with
    /// the worker's task boundary count then (`pool::boundary`). Taken by every task's start.
    static LAST_END: Cell<Option<(u64, Instant)>> = const { Cell::new(None) };
}

/// Runs `f` as a task of class `class` (and of view `view`, 0 for none): [`current_class`] says
/// `class` inside, and the caller's own task is restored after, even if `f` panics.
pub(crate) fn run_as<R>(class: TaskClass, view: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Running>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT_TASK.with(|c| c.set(self.0));
        }
    }
    let running = Running {
        class,
        view,
        feedback: None,
    };
    let _restore = Restore(CURRENT_TASK.with(|c| c.replace(Some(running))));
    f()
}

/// `true` when the calling thread is running a task of the view with id `view`.
pub(crate) fn is_running_task_of(view: usize) -> bool {
    CURRENT_TASK.with(|c| c.get().is_some_and(|running| running.view == view))
}

/// The class of the task the calling thread is running, if it is running one through a
/// scheduler or a flow.
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
    CURRENT_TASK.with(|c| c.get().map(|running| running.class))
}

/// `true` on threads meant for CPU work: every UBER thread (whatever it runs), and the cpuLight
/// and cpuIntensive threads of DEDICATED. Blocking calls on such threads are a design smell.
///
/// ```
/// use uberpool::{SchedulerService, is_current_thread_for_cpu_work};
///
/// let service = SchedulerService::builder().build()?; // UBER: every thread is for CPU work
/// assert!(service.io().submit(is_current_thread_for_cpu_work)?.join()?);
/// assert!(!is_current_thread_for_cpu_work()); // this thread is not a pool thread
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn is_current_thread_for_cpu_work() -> bool {
    current_role().is_for_cpu_work()
}

/// `true` on threads that may block waiting for a busy pool: every UBER thread, DEDICATED io
/// threads, and custom schedulers configured with `wait_allowed`.
///
/// ```
/// use uberpool::{SchedulerService, is_current_thread_in_wait_group};
///
/// let service = SchedulerService::builder().build()?;
/// assert!(service.cpu_light().submit(is_current_thread_in_wait_group)?.join()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn is_current_thread_in_wait_group() -> bool {
    current_role().may_wait()
}

/// Tells the adaptive limit of the view running the calling task that the remote end is
/// overloaded: the task met an SMTP `421` or `451`, an HTTP `429` or `503`, a timeout of its
/// own. When the task ends, the view's limit is multiplied by its
/// [`backoff`](crate::AdaptiveConcurrency::backoff) factor — once per round: overloads of tasks
/// that started before the latest backoff do not lower it again. The task's running time is
/// then not taken as a latency sample.
///
/// Returns `true` if the calling thread is running a task of a view with an
/// [adaptive limit](crate::SchedulerConfig::adaptive_concurrency); elsewhere it does nothing and
/// returns `false`. Calling it more than once in a task counts once; it wins over
/// [`ignore_sample`]. A task that panics after calling it still reports the overload.
///
/// ```
/// use uberpool::{AdaptiveConcurrency, SchedulerConfig, SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().build()?;
/// let relay = service.scheduler_with(
///     TaskClass::Io,
///     SchedulerConfig::new().adaptive_concurrency(AdaptiveConcurrency::new().initial_limit(10)),
/// )?;
/// assert!(relay.submit(uberpool::report_overload)?.join()?);
/// assert_eq!(relay.throttle().unwrap().limit, Some(8)); // 10 × 0.8
/// assert!(!uberpool::report_overload()); // not in a task: nothing to report to
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn report_overload() -> bool {
    tell_limit(Outcome::Overloaded)
}

/// Tells the adaptive limit of the view running the calling task to leave this task out: its
/// running time says nothing about the remote end's load (a cache hit, a refusal for a bad
/// address, a local error). Returns `true` if the calling thread is running a task of a view
/// with an [adaptive limit](crate::SchedulerConfig::adaptive_concurrency); elsewhere it does
/// nothing and returns `false`. [`report_overload`] wins over it.
///
/// Tasks that call neither count as completed, and their running time (from the moment they
/// start running, queueing excluded, to the moment they return or panic) is a latency sample.
///
/// ```
/// use uberpool::{AdaptiveConcurrency, SchedulerConfig, SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().build()?;
/// let relay = service.scheduler_with(
///     TaskClass::Io,
///     SchedulerConfig::new().adaptive_concurrency(AdaptiveConcurrency::new()),
/// )?;
/// // A refusal for a bad address says nothing about the relay's load.
/// assert!(relay.submit(uberpool::ignore_sample)?.join()?);
/// assert_eq!(relay.throttle().unwrap().adaptive.unwrap().ignored, 1);
/// assert!(!uberpool::ignore_sample()); // not in a task
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn ignore_sample() -> bool {
    tell_limit(Outcome::Ignored)
}

/// Records `outcome` for the running task of an adaptive view; `false` if there is none.
fn tell_limit(outcome: Outcome) -> bool {
    CURRENT_TASK.with(|c| match c.get() {
        Some(mut running) if running.feedback.is_some() => {
            if running.feedback != Some(Outcome::Overloaded) {
                running.feedback = Some(outcome);
                c.set(Some(running));
            }
            true
        }
        _ => false,
    })
}

/// The bookkeeping around each task of a view: its counts in the view word, its slot in a
/// throttled view's gate, [`current_class`], CPU_LIGHT overrun checks, and the sample an
/// adaptive view's limit takes from each task. It runs on the thread that runs the task (or
/// drops it unrun) and never runs user code.
///
/// Only CPU_LIGHT views and adaptive views read the clock around their tasks
/// (`View::times_tasks`); a task of any other view costs no clock read.
pub(crate) struct TaskScope {
    view: Arc<View>,
}

impl TaskScope {
    pub(crate) fn new(view: Arc<View>) -> Self {
        Self { view }
    }
}

/// What a running task's scope keeps on the running thread's stack: the task context it
/// replaced, and when the task started if its view times its tasks (`View::times_tasks`:
/// CPU_LIGHT views for the overrun check, adaptive views for their samples).
pub(crate) struct ScopeRun {
    saved: Option<Running>,
    started: Option<Instant>,
}

impl RunHooks for TaskScope {
    type Running = ScopeRun;

    fn begin(&mut self) -> Option<ScopeRun> {
        if !self.view.word.start() {
            // `shutdown_now` discards it: the slot goes back before the task leaves the view,
            // so a view seen idle holds no slot.
            self.view.release_slot();
            self.view.word.leave_queued();
            return None;
        }
        let running = Running {
            class: self.view.class,
            view: self.view.id,
            feedback: self.view.adaptive.then_some(Outcome::Completed),
        };
        let saved = CURRENT_TASK.with(|c| c.replace(Some(running)));
        let last_end = LAST_END.take();
        let started = self.view.times_tasks.then(|| match last_end {
            // Taken straight after the previous task on this worker: its end is this task's
            // start, and one clock read per task is saved on a busy worker (the gap between
            // them, the worker taking this task, counts as this task's time). Not for adaptive
            // views, whose samples are latencies.
            Some((boundary, at))
                if saved.is_none() && !self.view.adaptive && boundary + 1 == pool::boundary() =>
            {
                at
            }
            _ => Instant::now(),
        });
        Some(ScopeRun { saved, started })
    }

    fn end(&mut self, run: ScopeRun) {
        let mine = CURRENT_TASK.with(|c| c.replace(run.saved));
        // The slot goes back before the word counts the task finished, so that a view seen
        // terminated (`Scheduler::is_terminated`) has every slot of its gate back.
        let Some(started) = run.started else {
            self.view.release_slot();
            self.view.word.finish();
            return;
        };
        let ended = Instant::now();
        if run.saved.is_none() {
            LAST_END.set(Some((pool::boundary(), ended)));
        }
        if self.view.class == TaskClass::CpuLight {
            let took = ended.saturating_duration_since(started);
            if took > LIGHT_BUDGET {
                self.view
                    .pool
                    .counts
                    .light_overruns
                    .fetch_add(1, Ordering::Relaxed);
                if self.view.overrun_log.allow() {
                    tracing::warn!(
                        scheduler = %self.view.name,
                        took_ms = took.as_millis() as u64,
                        "a CPU_LIGHT task of scheduler '{}' ran for {:?}, over the {:?} budget: \
                         blocking or long work belongs on IO or CPU_INTENSIVE; similar log \
                         entries will be suppressed for the following 5 seconds",
                        self.view.name,
                        took,
                        LIGHT_BUDGET
                    );
                }
            }
        }
        // The slot goes back before the task leaves the view (see `begin`).
        match mine.and_then(|running| running.feedback) {
            // A panicking task is a sample like any other: catch_unwind has already returned
            // when `end` runs, and what the task reported before it panicked stands.
            Some(outcome) => self.view.release_sampled(started, ended, outcome),
            None => self.view.release_slot(),
        }
        self.view.word.finish();
    }

    fn discard(&mut self) {
        self.view.release_slot();
        self.view.word.leave_queued();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn run_as_sets_and_restores_the_current_task_even_on_panic() {
        assert_eq!(current_class(), None);
        run_as(TaskClass::Io, 7, || {
            assert_eq!(current_class(), Some(TaskClass::Io));
            assert!(is_running_task_of(7));
            let inner = std::panic::catch_unwind(|| {
                run_as(TaskClass::CpuLight, 8, || {
                    assert_eq!(current_class(), Some(TaskClass::CpuLight));
                    panic!("inline task panicked");
                })
            });
            assert!(inner.is_err());
            assert_eq!(
                current_class(),
                Some(TaskClass::Io),
                "restored after a panic"
            );
            assert!(!is_running_task_of(8));
        });
        assert_eq!(current_class(), None);
    }
}

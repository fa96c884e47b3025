//! The task scope: what the calling thread is running right now (class and view), the
//! bookkeeping wrapped around every task of a view, and the public queries about the current
//! thread ([`current_class`], [`is_current_thread_for_cpu_work`],
//! [`is_current_thread_in_wait_group`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::TaskClass;
use std::sync::Arc;

use crate::loom::Ordering;
use crate::role::current_role;
use crate::task::RunHooks;

use super::View;

/// CPU_LIGHT tasks running longer than this are counted as overruns and warned about.
pub const LIGHT_BUDGET: Duration = Duration::from_millis(10);

/// The task the thread is running: its class, and the id of its view (0 for a flow step, which
/// belongs to no view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Running {
    pub(crate) class: TaskClass,
    pub(crate) view: usize,
}

std::thread_local! {
    /// The task the thread is running through a scheduler or flow, if any; nested inline runs
    /// save and restore it.
    static CURRENT_TASK: Cell<Option<Running>> = const { Cell::new(None) };
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
    let _restore = Restore(CURRENT_TASK.with(|c| c.replace(Some(Running { class, view }))));
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

/// The bookkeeping around each task of a view: its counts in the view word, its slot in a
/// throttled view's gate, [`current_class`], CPU_LIGHT overrun checks. It runs on the thread
/// that runs the task (or drops it unrun) and never runs user code.
pub(crate) struct TaskScope {
    view: Arc<View>,
}

impl TaskScope {
    pub(crate) fn new(view: Arc<View>) -> Self {
        Self { view }
    }
}

/// What a running task's scope keeps on the running thread's stack: the task context it
/// replaced, and when a CPU_LIGHT task started (for the overrun check).
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
        };
        let saved = CURRENT_TASK.with(|c| c.replace(Some(running)));
        let started = (self.view.class == TaskClass::CpuLight).then(Instant::now);
        Some(ScopeRun { saved, started })
    }

    fn end(&mut self, run: ScopeRun) {
        CURRENT_TASK.with(|c| c.set(run.saved));
        if let Some(started) = run.started {
            let took = started.elapsed();
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
        self.view.release_slot();
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

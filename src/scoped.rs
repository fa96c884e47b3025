//! Scoped tasks: [`Scheduler::scope`] runs tasks that may borrow from the caller's stack, and
//! returns only once every one of them has run or been dropped.
//!
//! A task submitted through a [`Scope`] may capture references to data of the caller (as with
//! `std::thread::scope` and `rayon::scope`). What makes that sound: the scope counts each task
//! from its submission until its closure — and everything the closure captured — has been run or
//! dropped (the count's decrement is the last thing a task's closure does, or its `Drop` does
//! after dropping the rest), and `scope` does not return, even when its body panics, until the
//! count is zero. The lifetime erasure itself is in `task/raw.rs`, the crate's only `unsafe`
//! module (its invariant 4). A task's value must be `'static`: it may outlive the scope in its
//! cell until the handle is dropped.
//!
//! Refusals follow the scheduler's rules, and the refused closure comes back in [`Rejected`] so
//! the caller may run it itself. A task submitted from a thread of the same pool runs at once on
//! that thread: a scope waiting on a pool thread for tasks queued behind it in its own pool
//! would wait for ever.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch::Patience;
use crate::loom::Mutex;
use crate::rejected::Rejected;
use crate::scheduler::Scheduler;
use crate::task::{Completer, HandleJob, Panic, ScopeEraser, TaskError, TaskHandle};
use crate::view::TaskScope;

/// A scope of tasks that may borrow from the caller: see [`Scheduler::scope`].
#[derive(Debug)]
pub struct Scope<'scope, 'env: 'scope> {
    scheduler: Scheduler,
    /// Lends closures that borrow for `'scope` to the pool, and makes the scope wait for them.
    eraser: &'scope ScopeEraser,
    /// Invariant in `'scope`, as `std::thread::Scope` is, so that no borrow outlives it.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// A scoped task's handle: its value, like a [`TaskHandle`], usable only within the scope.
#[derive(Debug)]
pub struct ScopedHandle<'scope, T> {
    handle: TaskHandle<T>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedHandle<'_, T> {
    /// Waits for the task and returns its value, or why there is none.
    pub fn join(self) -> Result<T, TaskError> {
        self.handle.join()
    }

    /// Waits at most `timeout`; the handle comes back if the task is not done by then.
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, Self> {
        self.handle
            .join_timeout(timeout)
            .map_err(|handle| ScopedHandle {
                handle,
                _scope: PhantomData,
            })
    }

    /// `true` once the task finished running or was cancelled.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Cancels the task if it has not started; `true` if it will never run.
    pub fn cancel(&self) -> bool {
        self.handle.cancel()
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Submits `f`, which may borrow anything that outlives the scope, to the scope's scheduler.
    ///
    /// The scheduler's rules apply when its pool (or gate) is full: the caller waits, runs `f`
    /// on its own thread, or is refused with `f` back in [`Rejected`] — run it yourself then, or
    /// report it. Submitted from a thread of the scheduler's own pool, `f` runs at once on that
    /// thread.
    pub fn submit<F, T>(&'scope self, f: F) -> Result<ScopedHandle<'scope, T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'static,
    {
        let scheduler = &self.scheduler;
        if scheduler.view().pool.pool.is_current() {
            return Ok(self.run_here(f));
        }
        // The closure travels erased; a refusal takes it back out of the shared slot.
        let slot = Arc::new(Mutex::new(Some(f)));
        let erased = self.eraser.erase({
            let slot = slot.clone();
            move || {
                // Taken only here, or by this submitter after a refusal (then never run).
                let f = slot.lock().take().expect("a scoped task runs once");
                f()
            }
        });
        let submitted = scheduler.dispatch(
            erased,
            Patience::Policy,
            HandleJob::with_hooks,
            HandleJob::<Box<dyn FnOnce() -> T + Send>, T, TaskScope>::recover,
        );
        match submitted {
            Ok(handle) => Ok(ScopedHandle {
                handle,
                _scope: PhantomData,
            }),
            Err(refused) => {
                let kind = refused.kind();
                let target = refused.target().to_owned();
                drop(refused); // the erased closure leaves the count; `f` is still in the slot
                let f = slot
                    .lock()
                    .take()
                    .expect("a refused scoped task has not run");
                Err(Rejected::new(f, kind, target))
            }
        }
    }

    /// Runs `f` on this thread, now (a thread of the scope's own pool).
    fn run_here<F, T>(&'scope self, f: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'static,
    {
        let (done, handle) = Completer::new();
        let outcome = catch_unwind(AssertUnwindSafe(f))
            .map_err(|payload| TaskError::Panicked(Panic::caught(payload)));
        done.complete(outcome);
        ScopedHandle {
            handle,
            _scope: PhantomData,
        }
    }
}

impl Scheduler {
    /// Runs `f` with a [`Scope`] whose tasks may borrow from the caller, and returns once every
    /// task submitted through it has run or been dropped — even when `f` panics (the panic then
    /// carries on after the wait).
    ///
    /// ```
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let recipients = vec!["ada@example.com", "grace@example.com"];
    /// let lengths: Vec<usize> = service.cpu_intensive().scope(|scope| {
    ///     let handles: Vec<_> = recipients
    ///         .iter()
    ///         .map(|to| scope.submit(move || to.len()).expect("accepted")) // borrows `recipients`
    ///         .collect();
    ///     handles.into_iter().map(|h| h.join().unwrap()).collect()
    /// });
    /// assert_eq!(lengths, [15, 17]);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let result = ScopeEraser::with_scope(|eraser| {
            let scope = Scope {
                scheduler: self.clone(),
                eraser,
                _scope: PhantomData,
                _env: PhantomData,
            };
            f(&scope)
        });
        match result {
            Ok(value) => value,
            Err(payload) => resume_unwind(payload),
        }
    }
}

//! The memory behind jobs and handles: the only module of the crate with `unsafe` code.
//!
//! A [`Job`] is one pointer to a heap block that starts with a [`Header`] naming the block's
//! vtable. Two kinds of blocks exist:
//!
//! - `Boxed<R>`: the header and a [`Runnable`] value. The job owns the block alone; running,
//!   cancelling, dropping or recovering the job frees it.
//! - `WithCell<F, T, H>`: a [`TaskCell<T>`] (header first) followed by the closure and its
//!   hooks. The job and the [`CellRef<T>`] inside the task's handle share the block through the
//!   cell's reference count, so a task with a handle costs one allocation, and the block is
//!   freed by whichever side lets go last. Completers use a block with a cell alone
//!   (`CellRef::new_pair`).
//!
//! Invariants (see `README.md` beside this file):
//! 1. The header is written once, before the block is shared, and only read afterwards.
//! 2. The closure part of a `WithCell` block is touched only by the one `Job` that owns it, and
//!    taken out exactly once: by `run`, `cancel`, `recover` or the job's `Drop`, each of which
//!    consumes the job. It is `ManuallyDrop`, so freeing the block never drops it again.
//! 3. `refs` counts the `Job` (while it exists) and every `CellRef`; the decrement that reaches
//!    zero (`AcqRel`, so every earlier use of the block happens before) frees the block.
//! 4. A closure whose borrows were erased by [`ScopeEraser::erase`] is run or dropped before
//!    [`ScopeEraser::with_scope`] returns: the eraser counts every closure it erased, the count is
//!    left only after the closure — and everything it captured — is gone, and `with_scope`
//!    returns only at zero. The eraser is lent only to `with_scope`'s body, for a lifetime the
//!    body cannot extend, so nothing erased can borrow longer than the call.
//!
//! User values met here (the closure dropped unrun, an outcome nobody took) are dropped through
//! `unwind.rs`, so a panicking `Drop` never unwinds through this module's bookkeeping; a job
//! consumed unrun claims its cell (and publishes `Cancelled`) before it drops the closure.

#![allow(unsafe_code)]

use std::any::TypeId;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::loom::{Arc, AtomicUsize, Condvar, Mutex, Ordering};

use super::handle::Slot;
use super::state::State;
use super::{Report, RunHooks, RunOutcome, Runnable, drop_contained};

/// Lends closures that borrow from a caller's stack to pools, and waits for them (invariant 4).
///
/// Only [`with_scope`](Self::with_scope) makes one, and only lends it to its body, for a
/// lifetime the body cannot extend; every closure [`erase`](Self::erase)d through it is counted
/// until the closure and everything it captured is gone, run or dropped; `with_scope` returns
/// only when the count is back at zero, even when the body panics.
#[derive(Debug)]
pub(crate) struct ScopeEraser {
    outstanding: Arc<Outstanding>,
}

#[derive(Debug, Default)]
struct Outstanding {
    count: Mutex<usize>,
    /// Signalled when `count` reaches zero.
    zero: Condvar,
}

/// Leaves the count when dropped; declared after the closure it guards, so it drops after it.
struct Guarded<F> {
    work: Option<F>,
    outstanding: Arc<Outstanding>,
}

impl<F> Drop for Guarded<F> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            drop_contained("a scoped task's closure", work);
        }
        let mut count = self.outstanding.count.lock();
        *count -= 1;
        if *count == 0 {
            self.outstanding.zero.notify_all();
        }
    }
}

impl ScopeEraser {
    /// Runs `body` with an eraser and returns its result once every closure erased through the
    /// eraser has been run or dropped; a panic of `body` comes back as `Err` after that wait.
    pub(crate) fn with_scope<R>(
        body: impl for<'s> FnOnce(&'s ScopeEraser) -> R,
    ) -> std::thread::Result<R> {
        let eraser = ScopeEraser {
            outstanding: Arc::new(Outstanding::default()),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&eraser)));
        let mut count = eraser.outstanding.count.lock();
        while *count > 0 {
            eraser.outstanding.zero.wait(&mut count);
        }
        result
    }

    /// `work`, which borrows for `'s` (no longer than this eraser is lent), as a `'static`
    /// closure a pool can hold; counted until it and its captures are gone.
    pub(crate) fn erase<'s, T: 'static>(
        &'s self,
        work: impl FnOnce() -> T + Send + 's,
    ) -> Box<dyn FnOnce() -> T + Send + 'static> {
        *self.outstanding.count.lock() += 1;
        let mut guarded = Guarded {
            work: Some(work),
            outstanding: self.outstanding.clone(),
        };
        let boxed: Box<dyn FnOnce() -> T + Send + 's> = Box::new(move || {
            let work = guarded.work.take().expect("a guarded closure runs once");
            work()
            // `guarded` drops after the closure was consumed: the count is left last.
        });
        // SAFETY: invariant 4. The two types differ only in the trait object's lifetime bound
        // (same layout and vtable). The closure's borrows are valid for `'s`, which ends before
        // `with_scope` returns (the eraser is only lent to its body); `with_scope` waits until
        // `Guarded` has dropped the closure and left the count; the value is `'static`.
        unsafe {
            std::mem::transmute::<
                Box<dyn FnOnce() -> T + Send + 's>,
                Box<dyn FnOnce() -> T + Send + 'static>,
            >(boxed)
        }
    }
}

/// The first field of every block: how to run, cancel, drop, identify and free it.
#[repr(C)]
pub(crate) struct Header {
    vtable: &'static VTable,
}

struct VTable {
    /// Consumes the job: runs it (or skips it when cancelled) and lets go of the block.
    run: unsafe fn(NonNull<Header>) -> RunOutcome,
    /// `run`, called by the worker loop for its top-level task, counted in the report.
    run_top: unsafe fn(NonNull<Header>, &Report<'_>) -> RunOutcome,
    /// Consumes the job without running it; a handle yields `Cancelled`.
    cancel: unsafe fn(NonNull<Header>),
    /// Consumes the job when it is dropped unrun: drops its contents, a handle yields
    /// `Cancelled`.
    drop_job: unsafe fn(NonNull<Header>),
    /// The block's type, so that a job is recovered only as what it was built as.
    type_id: fn() -> TypeId,
    /// Frees a cell block once its last reference is gone (unused for `Boxed` blocks).
    dealloc: unsafe fn(NonNull<Header>),
}

/// A unit of work as the pool holds it: one pointer wide, `Send`, consumed exactly once.
///
/// The pointer's lowest bit carries one hint for the pool: the job is CPU work (`pool/cpu.rs`).
/// Every block is aligned to at least 8 bytes (its header is a reference), so the bit is never
/// part of the address; [`block`](Job::block) masks it off before any use of the pointer.
pub(crate) struct Job {
    ptr: NonNull<Header>,
}

/// The bit of a job's pointer that marks CPU work.
const CPU_HINT: usize = 1;
const _: () = assert!(std::mem::align_of::<Header>() > CPU_HINT);

// SAFETY: a job's contents are `Send` (`Runnable: Send`, and `F`, `H`, `T: Send` for cell
// blocks), the job part is reached only through this one value, and the cell part is `Sync`.
unsafe impl Send for Job {}

impl Job {
    /// Boxes `job` (one allocation).
    pub(crate) fn new<R: Runnable>(job: R) -> Job {
        let block = Box::new(Boxed {
            header: Header {
                vtable: Boxed::<R>::VTABLE,
            },
            job,
        });
        Job {
            ptr: NonNull::from(Box::leak(block)).cast(),
        }
    }

    /// The block's address, without the hint bit.
    fn block(&self) -> NonNull<Header> {
        self.ptr.map_addr(|addr| {
            std::num::NonZeroUsize::new(addr.get() & !CPU_HINT)
                .expect("a block's address is not below its alignment")
        })
    }

    /// The job, marked as CPU work (`cpu`) or not: a hint the pool reads when a worker takes
    /// it. A job offered to another pool after a refusal is marked again there.
    pub(crate) fn with_cpu_hint(self, cpu: bool) -> Job {
        let ptr = ManuallyDrop::new(self).ptr;
        Job {
            ptr: ptr.map_addr(|addr| {
                let marked = if cpu {
                    addr.get() | CPU_HINT
                } else {
                    addr.get() & !CPU_HINT
                };
                std::num::NonZeroUsize::new(marked)
                    .expect("a block's address is not below its alignment")
            }),
        }
    }

    /// Whether the job is marked as CPU work ([`with_cpu_hint`](Self::with_cpu_hint)).
    pub(crate) fn is_cpu(&self) -> bool {
        self.ptr.addr().get() & CPU_HINT != 0
    }

    fn vtable(&self) -> &'static VTable {
        // SAFETY: the block lives while the job does (invariant 3) and its header is never
        // written after construction (invariant 1).
        unsafe { self.block().as_ref().vtable }
    }

    fn into_raw(self) -> NonNull<Header> {
        ManuallyDrop::new(self).block()
    }

    /// Runs the job on the current thread, catching panics.
    pub(crate) fn run(self) -> RunOutcome {
        let run = self.vtable().run;
        // SAFETY: `into_raw` gives up this job's ownership to `run`, which consumes it.
        unsafe { run(self.into_raw()) }
    }

    /// Runs the job as the worker's top-level task ([`Runnable::run_top`]); a job with a handle
    /// counts its end in `report` before it publishes it.
    pub(crate) fn run_top(self, report: &Report<'_>) -> RunOutcome {
        let run_top = self.vtable().run_top;
        // SAFETY: as in `run`.
        unsafe { run_top(self.into_raw(), report) }
    }

    /// Drops the job without running it; its handle (if any) yields `Cancelled`.
    pub(crate) fn cancel(self) {
        let cancel = self.vtable().cancel;
        // SAFETY: as in `run`.
        unsafe { cancel(self.into_raw()) }
    }

    fn is<B: 'static>(&self) -> bool {
        (self.vtable().type_id)() == TypeId::of::<B>()
    }

    /// Takes the value back out of a job built by [`Job::new`] with an `R`.
    ///
    /// # Panics
    /// If the job was built from anything else (a bug in the caller).
    pub(crate) fn recover<R: Runnable>(self) -> R {
        assert!(
            self.is::<Boxed<R>>(),
            "a job is recovered only as the type it was built with"
        );
        // SAFETY: the block is a `Boxed<R>` (checked above) and the job is consumed.
        unsafe { Boxed::<R>::take(self.into_raw()) }
    }

    /// Builds a job that runs `f` wrapped in `hooks` and reports to a cell, and the reference
    /// to that cell (one allocation for both).
    pub(crate) fn with_cell<F, T, H>(f: F, hooks: H) -> (Job, CellRef<T>)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        H: RunHooks,
    {
        let block = Box::new(WithCell {
            cell: TaskCell::<T>::new(WithCell::<F, T, H>::VTABLE),
            work: UnsafeCell::new(ManuallyDrop::new((f, hooks))),
        });
        let ptr = NonNull::from(Box::leak(block));
        (
            Job { ptr: ptr.cast() },
            CellRef {
                ptr: ptr.cast(),
                _owns: PhantomData,
            },
        )
    }

    /// Takes the closure back out of a job built by [`Job::with_cell`] with these types; the
    /// cell is marked cancelled, so a handle still held yields `Cancelled`.
    ///
    /// # Panics
    /// If the job was built from anything else (a bug in the caller).
    pub(crate) fn recover_with_cell<F, T, H>(self) -> F
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        H: RunHooks,
    {
        assert!(
            self.is::<WithCell<F, T, H>>(),
            "a job is recovered only as the type it was built with"
        );
        // SAFETY: the block is a `WithCell<F, T, H>` (checked above) and the job is consumed.
        let (f, hooks, cell) = unsafe { WithCell::<F, T, H>::take(self.into_raw()) };
        cell.try_cancel();
        drop(hooks);
        f
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let drop_job = self.vtable().drop_job;
        // SAFETY: the job is being dropped, so nothing uses `self.ptr` after this call.
        unsafe { drop_job(self.block()) }
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// A job without a cell.
#[repr(C)]
struct Boxed<R> {
    header: Header,
    job: R,
}

impl<R: Runnable> Boxed<R> {
    const VTABLE: &'static VTable = &VTable {
        run: Self::run,
        run_top: Self::run_top,
        cancel: Self::cancel,
        drop_job: Self::drop_job,
        type_id: TypeId::of::<Self>,
        dealloc: never_dealloc,
    };

    /// # Safety
    /// `ptr` is a consumed job whose block is a `Boxed<R>`.
    unsafe fn take(ptr: NonNull<Header>) -> R {
        // SAFETY: the block was leaked from a `Box<Boxed<R>>` in `Job::new` and is owned
        // by the consumed job alone.
        let block = unsafe { Box::from_raw(ptr.cast::<Self>().as_ptr()) };
        block.job
    }

    unsafe fn run(ptr: NonNull<Header>) -> RunOutcome {
        // SAFETY: the vtable is this type's, so the block is a `Boxed<R>`; the caller consumed
        // the job.
        unsafe { Self::take(ptr) }.run()
    }

    unsafe fn run_top(ptr: NonNull<Header>, report: &Report<'_>) -> RunOutcome {
        // SAFETY: as in `run`.
        unsafe { Self::take(ptr) }.run_top(report)
    }

    unsafe fn cancel(ptr: NonNull<Header>) {
        // SAFETY: as in `run`.
        unsafe { Self::take(ptr) }.cancel();
    }

    unsafe fn drop_job(ptr: NonNull<Header>) {
        // SAFETY: as in `run`.
        drop_contained("a job dropped unrun", unsafe { Self::take(ptr) });
    }
}

/// `Boxed` blocks are freed by their job, never through a reference count.
unsafe fn never_dealloc(_: NonNull<Header>) {
    unreachable!("a boxed job has no cell references")
}

/// The state a task and its handle share, at the start of its block.
///
/// `state` is the task word (`state.rs`): exactly one party claims the task (the runner or a
/// canceller), so a task either runs once or never; the claimer publishes the outcome into
/// `slot`, where it stays until the handle takes it, beside the waker of an awaiting future.
#[repr(C)]
pub(crate) struct TaskCell<T> {
    header: Header,
    /// References to the block (invariant 3).
    refs: AtomicUsize,
    pub(super) state: State,
    pub(super) slot: Mutex<Slot<T>>,
    /// Notified (with `slot` held) when the outcome is published.
    pub(super) done: Condvar,
}

impl<T> TaskCell<T> {
    /// A cell shared by two owners (job and handle, or completer and handle).
    fn new(vtable: &'static VTable) -> Self {
        Self {
            header: Header { vtable },
            refs: AtomicUsize::new(2),
            state: State::new(),
            slot: Mutex::new(Slot::new()),
            done: Condvar::new(),
        }
    }

    /// Drops what the slot still holds (an outcome nobody took), containing a panic from its
    /// `Drop`. Called by the last reference, which owns the block, just before freeing it.
    fn drop_leftovers(&mut self) {
        let slot = self.slot.get_mut();
        if let Some(outcome) = slot.outcome.take() {
            drop_contained("a task's result that nobody took", outcome);
        }
        if let Some(waker) = slot.waker.take() {
            drop_contained("a task handle's waker", waker);
        }
    }
}

/// A counted reference to a [`TaskCell`] (what `Arc<TaskCell<T>>` would be, sharing the
/// block with the job).
pub(crate) struct CellRef<T> {
    ptr: NonNull<TaskCell<T>>,
    _owns: PhantomData<TaskCell<T>>,
}

// SAFETY: `CellRef<T>` gives shared access to a `TaskCell<T>`, whose fields are atomics and a
// lock around `Slot<T>`: sending or sharing it is sound when `T: Send`, as for `Arc`.
unsafe impl<T: Send> Send for CellRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for CellRef<T> {}

impl<T: Send + 'static> CellRef<T> {
    /// A cell without a job, and two references to it (for a completer and its handle).
    pub(crate) fn new_pair() -> (CellRef<T>, CellRef<T>) {
        let block = Box::new(TaskCell::<T>::new(Self::BARE));
        let ptr = NonNull::from(Box::leak(block));
        let first = CellRef {
            ptr,
            _owns: PhantomData,
        };
        let second = CellRef {
            ptr,
            _owns: PhantomData,
        };
        (first, second)
    }

    const BARE: &'static VTable = &VTable {
        run: never_run,
        run_top: never_run_top,
        cancel: never_consume,
        drop_job: never_consume,
        type_id: TypeId::of::<TaskCell<T>>,
        dealloc: Self::dealloc_bare,
    };

    unsafe fn dealloc_bare(ptr: NonNull<Header>) {
        // SAFETY: called once, by the last reference, on a block leaked from a
        // `Box<TaskCell<T>>` in `new_pair`.
        let mut block = unsafe { Box::from_raw(ptr.cast::<TaskCell<T>>().as_ptr()) };
        block.drop_leftovers();
        drop(block);
    }
}

/// A bare cell is never turned into a job.
unsafe fn never_run(_: NonNull<Header>) -> RunOutcome {
    unreachable!("a bare task cell is never a job")
}

/// A bare cell is never turned into a job.
unsafe fn never_run_top(_: NonNull<Header>, _: &Report<'_>) -> RunOutcome {
    unreachable!("a bare task cell is never a job")
}

/// A bare cell is never turned into a job.
unsafe fn never_consume(_: NonNull<Header>) {
    unreachable!("a bare task cell is never a job")
}

impl<T> Deref for CellRef<T> {
    type Target = TaskCell<T>;

    fn deref(&self) -> &TaskCell<T> {
        // SAFETY: this reference keeps the block alive (invariant 3).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for CellRef<T> {
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            let dealloc = self.header.vtable.dealloc;
            // SAFETY: this was the last reference (job included), so no one uses the block
            // after this; `AcqRel` ordered every earlier use before the free.
            unsafe { dealloc(self.ptr.cast()) }
        }
    }
}

/// A job with a cell: the closure and its hooks after the cell, in one block.
#[repr(C)]
struct WithCell<F, T, H> {
    cell: TaskCell<T>,
    /// Owned by the job (invariant 2).
    work: UnsafeCell<ManuallyDrop<(F, H)>>,
}

impl<F, T, H> WithCell<F, T, H>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    H: RunHooks,
{
    const VTABLE: &'static VTable = &VTable {
        run: Self::run,
        run_top: Self::run_top,
        cancel: Self::cancel,
        drop_job: Self::drop_job,
        type_id: TypeId::of::<Self>,
        dealloc: Self::dealloc,
    };

    /// Takes the closure and hooks out, and turns the job's share of the block into a
    /// `CellRef` that lets go of it when dropped.
    ///
    /// # Safety
    /// `ptr` is a consumed job whose block is a `WithCell<F, T, H>`.
    unsafe fn take(ptr: NonNull<Header>) -> (F, H, CellRef<T>) {
        let block = ptr.cast::<Self>();
        // SAFETY: the job kept its reference, so the block is alive; the closure part is the
        // consumed job's alone and still holds its value (invariant 2).
        let (f, hooks) = unsafe { ManuallyDrop::take(&mut *(*block.as_ptr()).work.get()) };
        let cell = CellRef {
            ptr: block.cast(),
            _owns: PhantomData,
        };
        (f, hooks, cell)
    }

    unsafe fn run(ptr: NonNull<Header>) -> RunOutcome {
        // SAFETY: the vtable is this type's; the caller consumed the job.
        let (f, hooks, cell) = unsafe { Self::take(ptr) };
        super::run_with_cell(f, hooks, &cell, None)
    }

    unsafe fn run_top(ptr: NonNull<Header>, report: &Report<'_>) -> RunOutcome {
        // SAFETY: as in `run`.
        let (f, hooks, cell) = unsafe { Self::take(ptr) };
        super::run_with_cell(f, hooks, &cell, Some(report))
    }

    /// Cancelled by the pool: the handle resolves first, then the closure is dropped.
    unsafe fn cancel(ptr: NonNull<Header>) {
        // SAFETY: as in `run`.
        let (f, mut hooks, cell) = unsafe { Self::take(ptr) };
        cell.try_cancel();
        drop_contained("a cancelled task's closure", f);
        hooks.discard();
    }

    unsafe fn drop_job(ptr: NonNull<Header>) {
        // SAFETY: as in `run`.
        let (f, hooks, cell) = unsafe { Self::take(ptr) };
        cell.try_cancel();
        drop_contained("a task's closure dropped unrun", f);
        drop(hooks);
    }

    unsafe fn dealloc(ptr: NonNull<Header>) {
        // SAFETY: called once, by the last reference, on a block leaked from a `Box<Self>` in
        // `Job::with_cell`; the `ManuallyDrop` closure part was taken already.
        let mut block = unsafe { Box::from_raw(ptr.cast::<Self>().as_ptr()) };
        block.cell.drop_leftovers();
        drop(block);
    }
}

#[cfg(all(test, not(loom)))]
#[path = "raw_tests.rs"]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests {
    use super::super::{HandleJob, RunOutcome, TaskError};
    use crate::loom::thread;

    /// A cancel racing the run: exactly one wins, and the handle reports the winner.
    #[test]
    fn loom_run_and_cancel_race() {
        loom::model(|| {
            let (job, handle) = HandleJob::job(|| 5u8);
            let runner = thread::spawn(move || job.run());
            let cancelled = handle.cancel();
            let outcome = runner.join().unwrap();
            assert_eq!(cancelled, matches!(outcome, RunOutcome::Skipped));
            let expected = if cancelled {
                Err(TaskError::Cancelled)
            } else {
                Ok(5)
            };
            assert_eq!(handle.join(), expected);
        });
    }

    /// The handle dropped while the job runs: the value is dropped with the block, once.
    #[test]
    fn loom_handle_dropped_during_the_run() {
        loom::model(|| {
            let witness = std::sync::Arc::new(());
            let held = witness.clone();
            let (job, handle) = HandleJob::job(move || held);
            let runner = thread::spawn(move || {
                assert!(matches!(job.run(), RunOutcome::Completed));
            });
            drop(handle);
            runner.join().unwrap();
            assert_eq!(std::sync::Arc::strong_count(&witness), 1);
        });
    }

    /// A job dropped unrun on another thread while the handle waits: the handle wakes with
    /// `Cancelled`.
    #[test]
    fn loom_job_dropped_unrun_wakes_the_joiner() {
        loom::model(|| {
            let (job, handle) = HandleJob::job(|| 1u8);
            let dropper = thread::spawn(move || drop(job));
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
            dropper.join().unwrap();
        });
    }
}

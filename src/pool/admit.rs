//! Admission: how a submitted job enters the pool — to the queues, to a new thread, or back to
//! the caller — and what room is left (`free_slots`).
//!
//! The rules and the argument that no admitted task is lost are in `README.md` beside this file.
//! Admission never counts a refusal in `rejected`: whoever hands the job back to its caller for
//! good does ([`Shared::count_rejected`]), so a submission that waited and was accepted, or ran
//! on the caller's thread, is not a rejection.

use super::Shared;
use super::state::EnqueueError;
use super::worker;
use crate::loom::{Arc, Ordering};
use crate::rejected::RejectKind;
use crate::task::Job;

impl Shared {
    /// Admits `job`: to the queues if an idle thread or queue room is free for it, else to a new
    /// thread if the pool may grow. A refusal gives the job back with the reason; it is not
    /// counted (see the module docs).
    pub(crate) fn admit(this: &Arc<Self>, job: Job) -> Result<(), (Job, RejectKind)> {
        let job = job.with_cpu_hint(false);
        match this.state.try_enqueue(this.spec.queue_size) {
            Ok(after) => {
                Self::push(this, job);
                if after.needs_wake() {
                    Self::wake_for(this);
                }
                Ok(())
            }
            Err(EnqueueError::Shutdown) => Err((job, RejectKind::Shutdown)),
            Err(EnqueueError::Full) => Self::grow(this, job),
        }
    }

    /// Counts an admitted job and pushes it: to the calling worker's own deque if the caller is
    /// a thread of this pool, else to the injector.
    pub(super) fn push(this: &Arc<Self>, job: Job) {
        this.counters.submitted.fetch_add(1, Ordering::Relaxed);
        let job = worker::with_current(|current| match current {
            Some(ctx) if Arc::ptr_eq(&ctx.shared, this) => {
                ctx.local.push(job);
                None
            }
            _ => Some(job),
        });
        if let Some(job) = job {
            this.injector.push(job);
        }
    }

    /// Wakes one sleeper for a task just admitted, if the word (re-read under the sleep lock)
    /// still needs it.
    pub(super) fn wake_for(this: &Arc<Self>) {
        if this.sleep.wake_one(&this.state) {
            this.counters.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one submission refused for good: the job went back to its caller.
    pub(crate) fn count_rejected(&self) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a new thread for `job`, if the pool is below its maximum.
    pub(super) fn grow(this: &Arc<Self>, job: Job) -> Result<(), (Job, RejectKind)> {
        if let Err(kind) = this.reserve_thread() {
            return Err((job, kind));
        }
        this.counters.submitted.fetch_add(1, Ordering::Relaxed);
        match Self::spawn_thread(this, Some(job), false) {
            Ok(()) => Ok(()),
            Err((job, error)) => {
                this.counters.submitted.fetch_sub(1, Ordering::Relaxed);
                this.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
                this.release_reservation();
                tracing::warn!(pool = %this.name, %error, "could not start a pool thread; task refused as if the pool were full");
                let job = job.expect("a growth spawn always carries its first task");
                Err((job, RejectKind::Busy))
            }
        }
    }

    /// Reserves a slot in `threads` for a thread about to be started: `Busy` at `max_size`,
    /// `Shutdown` (the slot given back) once the pool shuts down.
    fn reserve_thread(&self) -> Result<(), RejectKind> {
        let max = self.spec.max_size;
        if self
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(RejectKind::Busy);
        }
        // The reservation is visible to a shutdown before this check (both SeqCst): either we
        // see the flag, or the shutdown waits for this thread.
        if self.state.load().is_shutdown() {
            self.release_reservation();
            return Err(RejectKind::Shutdown);
        }
        Ok(())
    }

    /// See [`ThreadPool::free_slots`](super::ThreadPool::free_slots).
    pub(crate) fn free_slots(&self) -> usize {
        let state = self.state.load();
        if state.is_shutdown() {
            return 0;
        }
        let growable = self
            .spec
            .max_size
            .saturating_sub(self.threads.load(Ordering::SeqCst));
        // CPU work queued behind the computing threads (`cpu.rs`) takes room a thread would
        // have had, so pending tasks are taken from the whole.
        (state.idle() + self.spec.queue_size)
            .saturating_add(growable)
            .saturating_sub(state.pending())
    }

    /// Starts one thread with no first task, counted idle before it exists (as the builder
    /// counts core threads), if the pool is below its maximum and not shutting down. The stall
    /// watch uses it (`cpu.rs`).
    #[cfg_attr(loom, allow(dead_code))] // the stall watch is left out under loom
    pub(super) fn start_idle_thread(this: &Arc<Self>) {
        if this.reserve_thread().is_err() {
            return;
        }
        this.state.add_idle(1);
        if let Err((_, error)) = Self::spawn_thread(this, None, true) {
            this.state.forget_idle();
            this.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
            this.release_reservation();
            tracing::warn!(pool = %this.name, %error, "could not start a pool thread for work queued behind blocked threads");
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::ThreadPool;
    use super::*;
    use crate::task::PlainJob;

    /// A pool whose only thread is busy until the returned sender is dropped.
    fn busy_pool() -> (ThreadPool, std::sync::mpsc::Sender<()>) {
        let pool = ThreadPool::builder().core_size(1).build().unwrap();
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        pool.execute(move || {
            started_tx.send(()).unwrap();
            let _ = released.recv();
        })
        .unwrap();
        started.recv().unwrap();
        (pool, release)
    }

    #[test]
    fn a_refused_admission_is_not_counted_as_a_rejection() {
        let (pool, release) = busy_pool();
        let refused = Shared::admit(pool.shared(), PlainJob::job(|| {}, ()));
        assert!(matches!(refused, Err((_, RejectKind::Busy))));
        assert_eq!(pool.metrics().rejected, 0, "admission never counts");
        drop(release);
    }

    #[test]
    fn the_pools_own_submit_and_execute_count_their_refusals() {
        let (pool, release) = busy_pool();
        assert!(pool.execute(|| {}).is_err());
        assert!(pool.submit(|| 1).is_err());
        assert_eq!(pool.metrics().rejected, 2);
        drop(release);
    }
}

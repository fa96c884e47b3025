//! Keeping CPU work to the cores: admission of tasks that compute rather than block, the count
//! of this pool's threads running such tasks, and the stall watch that adds a thread when
//! those threads stop making progress.
//!
//! A pool built with a CPU limit (`PoolBuilder::cpu_limit`, the number of cores; the service
//! sets it on the pools that serve CPU_LIGHT work, and marks CPU_LIGHT work only: see
//! `TaskClass::is_cpu`) admits a task marked as CPU work ([`Shared::admit_cpu`]) differently once `cpu_running ≥ limit`, that is once as many of
//! its threads run CPU work as there are cores: it neither wakes a sleeping thread nor starts
//! one for the task, because another computing thread would only take a core from one that
//! already has it. The task is queued instead and the computing threads take it when they
//! finish theirs — as Go's scheduler keeps computing goroutines to `GOMAXPROCS` threads. The
//! queue is bounded by the pool's own limit: a task is admitted this way only while the
//! tasks running and queued stay within `max_size` (so a hand-off pool still refuses exactly
//! when all of its `max_size` threads would be busy). Work not marked as CPU (IO, the bare
//! pool's own submissions) is admitted as before.
//!
//! Why no task is lost (the full argument is in `README.md`, "CPU work and the cores"): a
//! submitter that skips a wake re-reads `cpu_running` *after* its `pending += 1`; each thread
//! counted then is running a task and clears its mark only right before it searches the queues
//! again (`worker::idle_search`), after that `pending += 1`, so its search or its `try_sleep`
//! sees the task.
//!
//! A thread counted as computing may in fact be blocked (a CPU_LIGHT task that waits, against
//! its contract). The stall watch covers that: a submitter that queued a task behind the
//! computing threads registers the pool with one process-wide watcher thread, which looks every
//! [`STALL_CHECK`] while the pool has tasks pending; when no task of the pool ended since its
//! last look, it wakes a sleeping thread of the pool or starts a new one (within `max_size`).
//! So a blocked computing thread delays the tasks queued behind it by at most about one
//! `STALL_CHECK`, and never deadlocks them.

use std::cell::Cell;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::state::{EnqueueError, Snapshot};
use super::{Shared, Spec};
use crate::loom::{Arc, AtomicBool, AtomicUsize, Ordering};
use crate::rejected::RejectKind;
use crate::task::Job;

/// How often the stall watch looks at a pool with queued CPU work, and so about the longest a
/// queued task waits behind computing threads that are in fact blocked: Mule's budget for one
/// CPU_LIGHT task.
#[cfg_attr(loom, allow(dead_code))] // the stall watch is left out under loom
pub(crate) const STALL_CHECK: Duration = Duration::from_millis(10);

/// A pool's count of threads running CPU work, and its limit.
pub(crate) struct CpuLoad {
    /// Most threads running CPU work before further CPU work queues instead of taking a thread;
    /// 0 for no limit (every task is admitted alike).
    pub(crate) limit: usize,
    /// This pool's threads that run CPU work now (each thread counted once, however deep its
    /// inline runs nest). `SeqCst`: the no-lost-task argument orders it with the admission word.
    running: CachePadded<AtomicUsize>,
    /// The pool is on the stall watch's list (see the module docs).
    #[cfg_attr(loom, allow(dead_code))]
    watched: AtomicBool,
    /// Queued tasks at or below which a claim signals a waiting submitter
    /// ([`Shared::after_claim`]).
    low_water: usize,
}

impl CpuLoad {
    pub(crate) fn new(limit: usize, spec: &Spec) -> Self {
        Self {
            limit,
            running: CachePadded::new(AtomicUsize::new(0)),
            watched: AtomicBool::new(false),
            low_water: (spec.queue_size + spec.max_size) / 2,
        }
    }

    /// Threads of the pool running CPU work now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// As many threads run CPU work, or are about to (`coming`: idle workers that will take a
    /// queued task, or queued tasks that workers will take), as the limit allows.
    fn saturated(&self, coming: usize) -> bool {
        self.running() + coming >= self.limit
    }
}

/// A worker took `job` from the queues: it counts as running CPU work from now on if the job is
/// marked as CPU work, and stops counting if not. A worker's mark stays from one CPU task to
/// the next, so a worker running one CPU task after another is counted once, with no write per
/// task; it is cleared by [`clear_mark`] before the worker searches the queues as an idle one.
pub(super) fn mark_for(shared: &Shared, mark: &Cell<bool>, job: &Job) {
    if shared.cpu.limit == 0 {
        return;
    }
    let cpu = job.is_cpu();
    if mark.replace(cpu) != cpu {
        if cpu {
            shared.cpu.running.fetch_add(1, Ordering::SeqCst);
        } else {
            shared.cpu.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Clears the worker's CPU mark (see [`mark_for`]): called by the worker loop before it searches
/// the queues as an idle worker.
pub(super) fn clear_mark(shared: &Shared, mark: &Cell<bool>) {
    if mark.replace(false) {
        shared.cpu.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// A worker claimed a queued task, leaving `after`: room freed in the queue, so a caller
    /// waiting for room is signalled. A pool with a CPU limit may hold up to `max_size` CPU
    /// tasks queued; it signals once the queue has drained to half of that (`low_water`), so
    /// that a submitter faster than the pool sleeps while the pool works through half of its
    /// queue, rather than being woken for every task it claims.
    pub(super) fn after_claim(&self, after: Snapshot) {
        if self.cpu.limit > 0 {
            if after.pending() <= self.cpu.low_water {
                self.signal_capacity();
            }
        } else if self.spec.queue_size > 0 {
            self.signal_capacity();
        }
    }

    /// Admits `job` as CPU work ([`admit_cpu`](Self::admit_cpu)) when `cpu`, else as any task
    /// ([`admit`](Self::admit)).
    pub(crate) fn admit_as(this: &Arc<Self>, job: Job, cpu: bool) -> Result<(), (Job, RejectKind)> {
        if cpu {
            Self::admit_cpu(this, job)
        } else {
            Self::admit(this, job)
        }
    }

    /// Admits `job`, a task that computes rather than blocks, with the CPU limit applied (see
    /// the module docs); without a limit, as [`admit`](Self::admit).
    pub(crate) fn admit_cpu(this: &Arc<Self>, job: Job) -> Result<(), (Job, RejectKind)> {
        if this.cpu.limit == 0 {
            return Self::admit(this, job);
        }
        let mut job = job.with_cpu_hint(true);
        let queue = this.spec.queue_size;
        // One look at the word first, so that a pool whose threads are all busy computing (the
        // common case under load) admits with one read-modify-write, not a refused one first.
        let seen = this.state.load();
        let mut beyond = seen.pending() >= seen.idle() + queue;
        // That look serves the first pass only; a later pass (after a refused enqueue or
        // growth) looks again.
        let mut look = Some(seen);
        let mut grew = false;
        loop {
            let first_look = look.take();
            if beyond && !grew {
                let now = first_look.unwrap_or_else(|| this.state.load());
                if now.is_shutdown() {
                    return Err((job, RejectKind::Shutdown));
                }
                if !this.cpu.saturated(now.pending()) {
                    // A core is free (busy threads are blocked): a thread for the task, as a
                    // hand-off pool does.
                    match Self::grow(this, job) {
                        Err((back, RejectKind::Busy)) => {
                            // At the maximum. Refuse only on what a read-modify-write of the
                            // word says (the loads above may be older than a worker that just
                            // turned idle, which a waiting caller counts on seeing).
                            job = back;
                            grew = true;
                            beyond = false;
                            continue;
                        }
                        other => return other,
                    }
                }
            }
            // Behind the computing threads, the room a hand-off would have had: the threads
            // the pool may still start.
            let room = if beyond {
                let threads = this.threads.load(Ordering::SeqCst);
                queue + this.spec.max_size.saturating_sub(threads)
            } else {
                queue
            };
            match this.state.try_enqueue(room) {
                Ok(after) => {
                    Self::push(this, job);
                    Self::after_cpu_enqueue(this, after);
                    return Ok(());
                }
                Err(EnqueueError::Shutdown) => return Err((job, RejectKind::Shutdown)),
                Err(EnqueueError::Full) if beyond || grew => return Err((job, RejectKind::Busy)),
                Err(EnqueueError::Full) => beyond = true,
            }
        }
    }

    /// The wake decision after a CPU task's enqueue produced `after`. An awake idle worker takes
    /// the task: nothing to do. Otherwise, while fewer threads compute than the limit allows,
    /// wake a sleeper as any admission does; but once the computing threads (and the awake idle
    /// ones, which will compute) reach the limit, wake nobody: the task waits for one of them,
    /// and the stall watch is told, in case they are blocked.
    ///
    /// Except while more than one caller waits for room: then the pool, not one fast submitter,
    /// is what many callers wait for, and every thread it has is put to work (the threads the
    /// limit leaves asleep share the cores with the other pools' threads, and the callers' work
    /// gets its share of them). Measured on DEDICATED's cpuLight pool fed by IO threads.
    fn after_cpu_enqueue(this: &Arc<Self>, after: Snapshot) {
        if after.pending() <= after.awake_idle() {
            return;
        }
        // Safe to skip the wake: the limit is at least 1, so either a computing thread is
        // counted (it searches again after this enqueue) or an idle worker was awake at the
        // enqueue (it cannot park while a task is pending).
        if after.sleeping() > 0
            && (!this.cpu.saturated(after.awake_idle()) || this.capacity_waiters() > 1)
        {
            Self::wake_for(this);
        } else {
            watch(this);
        }
    }

    /// The stall watch found no task of this pool ended since its last look while tasks were
    /// pending: wake a sleeping thread, or start one, so that queued work goes on even if every
    /// computing thread is blocked.
    #[cfg_attr(loom, allow(dead_code))]
    fn relieve_stall(this: &Arc<Self>) {
        let state = this.state.load();
        if state.is_shutdown() || state.pending() == 0 {
            return;
        }
        if state.sleeping() > 0 && this.sleep.wake_any(&this.state) {
            this.counters.wakeups.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if state.awake_idle() > 0 {
            return;
        }
        Self::start_idle_thread(this);
    }
}

#[cfg(not(loom))]
mod watch {
    use std::sync::{Mutex, OnceLock, Weak};
    use std::thread::Thread;

    use super::{STALL_CHECK, Shared};
    use crate::loom::Ordering;

    /// A pool on the watch: the count of its ended tasks at the last look, and whether it was
    /// looked at yet (a pool put on the list just before a look has had no time to progress).
    struct Entry {
        pool: Weak<Shared>,
        ended: u64,
        looked: bool,
    }

    /// The pools with queued CPU work.
    struct Watched {
        pools: Mutex<Vec<Entry>>,
        thread: Thread,
    }

    fn watcher() -> Option<&'static Watched> {
        static WATCHER: OnceLock<Option<Watched>> = OnceLock::new();
        WATCHER
            .get_or_init(|| {
                let spawned = std::thread::Builder::new()
                    .name("uberpool-stall-watch".to_owned())
                    .spawn(run);
                match spawned {
                    Ok(handle) => Some(Watched {
                        pools: Mutex::new(Vec::new()),
                        thread: handle.thread().clone(),
                    }),
                    Err(error) => {
                        tracing::error!(%error, "could not start the stall watch thread; CPU work queued behind blocked threads waits for them");
                        None
                    }
                }
            })
            .as_ref()
    }

    fn ended(shared: &Shared) -> u64 {
        let tally = &shared.counters.tally;
        tally.completed.load(Ordering::Relaxed) + tally.cancelled.load(Ordering::Relaxed)
    }

    /// Puts `shared` on the watch list unless it is on it already.
    pub(super) fn watch(shared: &std::sync::Arc<Shared>) {
        let cpu = &shared.cpu;
        if cpu.watched.load(Ordering::Relaxed) || cpu.watched.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(watcher) = watcher() else { return };
        watcher
            .pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Entry {
                pool: std::sync::Arc::downgrade(shared),
                ended: ended(shared),
                looked: false,
            });
        watcher.thread.unpark();
    }

    fn run() {
        // Blocks until the thread that spawned this one has set the `OnceLock`.
        let Some(watcher) = watcher() else { return };
        loop {
            let empty = watcher
                .pools
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .is_empty();
            if empty {
                std::thread::park();
                continue;
            }
            std::thread::park_timeout(STALL_CHECK);
            let mut stalled = Vec::new();
            watcher
                .pools
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .retain_mut(|entry| {
                    let Some(shared) = entry.pool.upgrade() else {
                        return false;
                    };
                    if shared.state.load().pending() == 0 {
                        // Off the list; a submitter that queues after this store puts it back,
                        // and one that queued before it is seen by the second load.
                        shared.cpu.watched.store(false, Ordering::SeqCst);
                        if shared.state.load().pending() == 0
                            || shared.cpu.watched.swap(true, Ordering::SeqCst)
                        {
                            return false;
                        }
                    }
                    let now = ended(&shared);
                    if now == entry.ended && entry.looked {
                        stalled.push(shared);
                    }
                    entry.ended = now;
                    entry.looked = true;
                    true
                });
            // Outside the list's lock: starting a thread may run a spawn handler.
            for shared in stalled {
                Shared::relieve_stall(&shared);
            }
        }
    }
}

#[cfg(not(loom))]
use watch::watch;

/// Under loom the stall watch (a timed, process-wide thread) is left out of the models.
#[cfg(loom)]
fn watch(_shared: &Arc<Shared>) {}

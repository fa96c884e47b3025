//! A pool's threads from their start to their join: spawning (built-in or through a spawn
//! handler, [`ThreadSpawn`]), a spawn refused or dropped unrun, a thread's exit, and joining.
//!
//! A thread's slot in `Shared::threads` is reserved before the thread is asked for and given
//! back exactly once: when the thread exits, when the spawn is refused (the OS or the handler
//! returned an error, the handler panicked, or dropped the spawn before returning), or when a
//! spawn the handler accepted is dropped unrun later ([`Shared::thread_lost`]).
//!
//! Who settles a spawn is decided under the spawn's own lock (`Launch`):
//!
//! ```text
//!   Asked --run--------------------------------------------> Started  (the thread owns the slot)
//!   Asked --dropped unrun--> Dropped   (the asking thread sees it: refusal, slot given back)
//!   Asked --handler Err / panic, spawn still alive--> Refused  (refusal; a later run does nothing)
//!   Asked --handler Ok--> Promised --run--> Started
//!                         Promised --dropped unrun--> Dropped  (the dropper gives the slot back,
//!                                                               cancels the first task)
//! ```

use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Shared, worker};
use crate::loom::{Arc, Mutex, Ordering};
use crate::task::{Job, drop_payload, panic_message};

/// Threads that exited and are waiting to be joined, and this pool's threads that are waiting
/// inside a shutdown. Guarded by `Shared::exits`.
#[derive(Default)]
pub(crate) struct Exits {
    /// Join handles of threads started by the built-in spawner, by thread number.
    handles: Vec<(usize, crate::loom::thread::JoinHandle<()>)>,
    /// Numbers of built-in-spawned threads that have exited: joining them returns at once.
    exited: Vec<usize>,
    /// This pool's threads blocked in a shutdown wait (of this or any pool): a shutdown called
    /// from a pool thread does not wait for them (see `shutdown.rs`).
    pub(super) in_shutdown_wait: usize,
}

/// Where a spawn stands: who settles its slot (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The pool asked for the thread; the handler has not returned.
    Asked,
    /// The handler returned `Ok` without running or dropping the spawn yet.
    Promised,
    /// The thread runs (or ran) the worker loop.
    Started,
    /// The handler refused (error or panic) while keeping the spawn: running it does nothing.
    Refused,
    /// Dropped without running.
    Dropped,
}

/// What a [`ThreadSpawn`] and the pool that asked for it share.
struct Launch {
    shared: Arc<Shared>,
    seq: usize,
    /// Started by the built-in spawner: joined at shutdown.
    joinable: bool,
    /// A core thread, counted idle by the builder before it exists.
    core: bool,
    state: Mutex<LaunchState>,
}

struct LaunchState {
    phase: Phase,
    /// The task a growth thread is started for, until the thread takes it.
    first: Option<Job>,
}

/// Everything a spawn handler needs to start one pool thread
/// (see [`PoolBuilder::spawn_handler`](super::PoolBuilder::spawn_handler)).
///
/// The handler must either start a thread that calls [`run`](ThreadSpawn::run), or return an
/// error. Dropping a `ThreadSpawn` without running it counts as a refusal, like an error —
/// whenever it is dropped: before the handler returns, the submission that needed the thread is
/// refused; after, the thread's slot is given back and the task it was started for is cancelled.
pub struct ThreadSpawn {
    name: String,
    stack_size: Option<usize>,
    /// `None` once run.
    launch: Option<Arc<Launch>>,
}

impl ThreadSpawn {
    /// The name the thread should carry (`{pool}.{NN}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stack size configured for the pool, if any.
    pub fn stack_size(&self) -> Option<usize> {
        self.stack_size
    }

    /// Runs the pool thread's body; call it on the new thread. Does nothing if the pool
    /// already counted this spawn as refused (the handler returned an error or panicked).
    pub fn run(mut self) {
        let Some(launch) = self.launch.take() else {
            return;
        };
        let first = {
            let mut state = launch.state.lock();
            match state.phase {
                Phase::Asked | Phase::Promised => {
                    state.phase = Phase::Started;
                    state.first.take()
                }
                Phase::Refused | Phase::Dropped | Phase::Started => return,
            }
        };
        let (shared, seq, joinable) = (launch.shared.clone(), launch.seq, launch.joinable);
        drop(launch);
        worker::run(shared, first, seq, joinable);
    }
}

impl Drop for ThreadSpawn {
    fn drop(&mut self) {
        let Some(launch) = self.launch.take() else {
            return;
        };
        let lost = {
            let mut state = launch.state.lock();
            match state.phase {
                Phase::Asked => {
                    // the asking thread settles it when the handler returns
                    state.phase = Phase::Dropped;
                    None
                }
                Phase::Promised => {
                    state.phase = Phase::Dropped;
                    Some(state.first.take())
                }
                Phase::Started | Phase::Refused | Phase::Dropped => None,
            }
        };
        if let Some(first) = lost {
            launch.shared.thread_lost(launch.core, first);
        }
    }
}

impl fmt::Debug for ThreadSpawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadSpawn")
            .field("name", &self.name)
            .field("stack_size", &self.stack_size)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Starts one thread, whose slot in `threads` is already reserved; `first` is its first
    /// task (growth) and `core` says whether the builder counted it idle. On a refusal the
    /// caller gives the slot back; `first` comes back with the error.
    pub(super) fn spawn_thread(
        this: &Arc<Self>,
        first: Option<Job>,
        core: bool,
    ) -> Result<(), (Option<Job>, io::Error)> {
        this.join_exited(None, false);
        let seq = this.thread_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let launch = Arc::new(Launch {
            shared: Arc::clone(this),
            seq,
            joinable: this.hooks.spawn_handler.is_none(),
            core,
            state: Mutex::new(LaunchState {
                phase: Phase::Asked,
                first,
            }),
        });
        let spawn = ThreadSpawn {
            name: format!("{}.{:02}", this.name, seq),
            stack_size: this.hooks.stack_size,
            launch: Some(launch.clone()),
        };
        let answer = match &this.hooks.spawn_handler {
            None => {
                let mut builder = crate::loom::thread::Builder::new().name(spawn.name.clone());
                if let Some(size) = this.hooks.stack_size {
                    builder = builder.stack_size(size);
                }
                // Held across the spawn so the thread cannot report its exit before its handle
                // is stored.
                let mut exits = this.exits.lock();
                builder
                    .spawn(move || spawn.run())
                    .map(|handle| exits.handles.push((seq, handle)))
            }
            Some(handler) => match catch_unwind(AssertUnwindSafe(|| handler(spawn))) {
                Ok(answer) => answer,
                Err(payload) => {
                    let message = panic_message(&*payload);
                    drop_payload(payload);
                    Err(io::Error::other(format!(
                        "the spawn handler panicked: {message}"
                    )))
                }
            },
        };
        let mut state = launch.state.lock();
        let refused = match (state.phase, answer) {
            (Phase::Started, answer) => {
                if let Err(error) = answer {
                    tracing::warn!(pool = %this.name, %error, "the spawn handler reported an error but ran the thread; it is kept");
                }
                None
            }
            (Phase::Asked, Ok(())) => {
                state.phase = Phase::Promised;
                None
            }
            (Phase::Asked, Err(error)) => {
                state.phase = Phase::Refused;
                Some(error)
            }
            (Phase::Dropped, Ok(())) => Some(io::Error::other(
                "the spawn handler dropped the thread without running it",
            )),
            (Phase::Dropped, Err(error)) => Some(error),
            (Phase::Promised | Phase::Refused, _) => {
                unreachable!("only the asking thread leaves Asked for these")
            }
        };
        match refused {
            None => {
                this.counters
                    .peak_threads
                    .fetch_max(this.threads.load(Ordering::Relaxed), Ordering::Relaxed);
                Ok(())
            }
            Some(error) => Err((state.first.take(), error)),
        }
    }

    /// A spawn the handler accepted was dropped without running: a refusal after the fact.
    /// The slot is given back, a core thread's idle count (made before it existed) is taken
    /// back, and the task it was started for is cancelled (counted first, so its handle sees the
    /// count). Tasks admitted on the strength of a lost core thread are run by the pool's other
    /// threads; with none left, shutdown cancels them.
    fn thread_lost(&self, core: bool, first: Option<Job>) {
        self.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(pool = %self.name, "the spawn handler dropped a thread it had accepted; its slot is given back");
        if core {
            self.state.forget_idle();
        }
        if let Some(job) = first {
            self.counters.tally.count_cancelled();
            job.cancel();
        }
        self.release_reservation();
        // a slot was freed: a waiting submitter may grow the pool now
        self.signal_capacity();
    }

    /// Gives back a thread slot that never got a running thread (its spawn failed, or shutdown
    /// began) and wakes shutdown waiters. It does not signal waiting submitters: nothing was
    /// freed that they were waiting for, and a waiter whose own spawn failed must go back to
    /// sleep rather than retry at once in a loop.
    pub(super) fn release_reservation(&self) {
        self.threads.fetch_sub(1, Ordering::SeqCst);
        let _exits = self.exits.lock();
        self.exit_signal.notify_all();
    }

    /// Called by a worker as its very last act.
    pub(crate) fn thread_exited(&self, seq: usize, already_released: bool, joinable: bool) {
        if !already_released {
            self.threads.fetch_sub(1, Ordering::SeqCst);
        }
        {
            let mut exits = self.exits.lock();
            if joinable {
                exits.exited.push(seq);
            }
            self.exit_signal.notify_all();
        }
        self.signal_capacity();
    }

    /// Joins the built-in spawner's threads that have exited (or, with `all`, every one of
    /// them), except the calling thread `me`.
    pub(crate) fn join_exited(&self, me: Option<usize>, all: bool) {
        let joinable = {
            let mut exits = self.exits.lock();
            if exits.exited.is_empty() && !all {
                return;
            }
            let exited = std::mem::take(&mut exits.exited);
            let (done, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut exits.handles)
                .into_iter()
                .partition(|(seq, _)| (all || exited.contains(seq)) && Some(*seq) != me);
            exits.handles = alive;
            done
        };
        for (_, handle) in joinable {
            let _ = handle.join();
        }
    }
}

//! Proactor flows: chains of steps that each declare their class, run on the pool that suits
//! them, and switch threads only where it pays.
//!
//! A flow run is a small state machine (`run.rs`) that moves from thread to thread: it runs
//! steps on the current thread for as long as the policy lets it stay in place, and at a switch
//! it is handed to the next step's pool as one job. A step that meets a full pool follows the
//! caller-aware policy of the thread at hand: an IO (or uber, or foreign) thread waits for
//! capacity, a CPU thread before a CPU_LIGHT step runs it in place, and otherwise the run is
//! offered again from the service's timer (`dispatch::offer_or_retry`) — no CPU thread ever
//! blocks on it. `max_concurrency` is a concurrency gate of the same kind a throttled
//! scheduler has (`throttle.rs`), without a queue. The builders are in `builder.rs`, fallible
//! steps among them: a step that returns `Err` ends the run, and the handle yields the error.

mod builder;
mod run;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::TaskClass;
use crate::dispatch::{Offered, Patience};
use crate::loom::Ordering;
use crate::rejected::Rejected;
use crate::role::current_role;
use crate::service::SchedulerService;
use crate::task::{Completer, Job, TaskHandle};

pub use builder::{FallibleFlowBuilder, FlowBuilder};
use run::{FlowCore, FlowJob, FlowRun, Permit};

/// Where a flow switches threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProactorPolicy {
    /// Mule's rule: the entry switches to the first step's pool; an IO or CPU_INTENSIVE step is
    /// dispatched to its pool; a CPU_LIGHT step runs in place on whatever thread finished the
    /// previous step. A step dispatched to the pool of the thread that finished the previous one
    /// (UBER) is handed to that pool as the finishing task's tail: the pool takes it without
    /// starting or waking a thread, and usually the finishing thread runs it.
    #[default]
    Mule,
    /// Like `Mule`, and also stays in place when the current thread's pool already serves the
    /// next step's class (under UBER, every step after the entry runs in place).
    Affinity,
    /// Switches at every step: the baseline that shows what elision buys.
    Always,
    /// Runs every step on the thread that took the entry, like a transactional flow.
    Pinned,
}

/// A chain of classed steps from `I` to `O`, run on a [`SchedulerService`]'s pools. Cheap to
/// clone and to share across threads.
///
/// ```
/// use uberpool::{Flow, SchedulerService, TaskClass, current_class};
///
/// let service = SchedulerService::builder().build()?;
/// let campaign = Flow::builder(&service)
///     .name("send")
///     .io(|id: u32| format!("subscriber-{id}@example.com"))      // fetch the address
///     .intensive(|to: String| format!("To: {to}\n\nHello!"))       // render the message
///     .light(|msg: String| (current_class(), msg.len()))           // log it, in place
///     .build();
/// let (class, len) = campaign.run(7)?.join()?;
/// assert_eq!(class, Some(TaskClass::CpuLight));
/// assert_eq!(len, 36);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Flow<I, O> {
    core: Arc<FlowCore>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Flow<I, O> {
    fn clone(&self) -> Self {
        Flow {
            core: self.core.clone(),
            _types: PhantomData,
        }
    }
}

impl<I, O> fmt::Debug for Flow<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let classes: Vec<TaskClass> = self.core.steps.iter().map(|s| s.class).collect();
        f.debug_struct("Flow")
            .field("name", &self.core.name)
            .field("policy", &self.core.policy)
            .field("steps", &classes)
            .finish()
    }
}

impl<I: Send + 'static> Flow<I, I> {
    /// A builder for a flow on `service`'s pools; the input type is fixed by the first step.
    pub fn builder(service: &SchedulerService) -> FlowBuilder<I, I> {
        FlowBuilder::new(service)
    }
}

impl<I: Send + 'static, O: Send + 'static> Flow<I, O> {
    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The flow's policy.
    pub fn policy(&self) -> ProactorPolicy {
        self.core.policy
    }

    /// How many more runs the flow would start right now without making the caller wait or
    /// refusing: the room of its first step's pool, and no more than the free places under its
    /// [`max_concurrency`](FlowBuilder::max_concurrency). A snapshot (see
    /// [`Scheduler::free_slots`](crate::Scheduler::free_slots)); zero once the service is shut
    /// down.
    ///
    /// ```
    /// use uberpool::{Flow, SchedulerService};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let send = Flow::builder(&service).io(|id: u32| id).max_concurrency(8).build();
    /// assert_eq!(send.free_slots(), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_slots(&self) -> usize {
        let core = &self.core;
        let pool_free = match core.steps.first() {
            Some(step) => core.pool(step.class).pool.free_slots(),
            None => usize::MAX,
        };
        match &core.gate {
            None => pool_free,
            Some(gate) => gate.free_slots(pool_free),
        }
    }

    /// Starts a run: the entry dispatches the first step to its class's pool.
    ///
    /// When that pool is full (or the flow is at its `max_concurrency`), the calling thread's
    /// role decides, as for [`Scheduler::submit`](crate::Scheduler::submit): wait, run the
    /// first steps on this thread, or refuse with the input returned in [`Rejected`].
    pub fn run(&self, input: I) -> Result<TaskHandle<O>, Rejected<I>> {
        self.start(input, true)
    }

    /// Starts a run only if it can start now: never waits and never runs on this thread. A full
    /// pool or flow returns the input.
    pub fn try_run(&self, input: I) -> Result<TaskHandle<O>, Rejected<I>> {
        self.start(input, false)
    }

    fn start(&self, input: I, patient: bool) -> Result<TaskHandle<O>, Rejected<I>> {
        let core = &self.core;
        let may_wait = patient && current_role().may_block();
        let permit = match &core.gate {
            None => None,
            Some(gate) => match gate.acquire(may_wait, None, &|| core.is_shut()) {
                Ok(()) => Some(Permit(core.clone())),
                Err(kind) => return Err(Rejected::new(input, kind, core.name.as_str())),
            },
        };
        let (done, handle) = Completer::new();
        let run = FlowRun {
            core: core.clone(),
            next: 0,
            value: Box::new(input),
            done,
            tail: false,
            _permit: permit,
        };
        if core.steps.is_empty() {
            let mut run = run;
            let input = std::mem::replace(&mut run.value, Box::new(()));
            run.finish(Ok(input));
            return Ok(handle);
        }
        let class = core.steps[0].class;
        let entry = core.pool(class).clone();
        let patience = if patient {
            Patience::Policy
        } else {
            Patience::Never
        };
        let (job, kind) = match entry.offer(Job::new(FlowJob { run }), patience, class) {
            Offered::Accepted => {
                entry.counts.hops_switched.fetch_add(1, Ordering::Relaxed);
                return Ok(handle);
            }
            Offered::RunHere(job, inline) => {
                job.run();
                drop(inline);
                return Ok(handle);
            }
            Offered::Refused(job, kind) => (job, kind),
        };
        let run = FlowJob::<O>::recover(job);
        match run.value.downcast::<I>() {
            Ok(input) => Err(Rejected::new(*input, kind, core.name.as_str())),
            Err(_) => unreachable!("a refused entry still holds the flow's input"),
        }
    }
}

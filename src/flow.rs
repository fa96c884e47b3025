//! Proactor flows: chains of steps that each declare their class, run on the pool that suits
//! them, and switch threads only where it pays.
//!
//! A flow run is a small state machine ([`FlowRun`]) that moves from thread to thread: it runs
//! steps on the current thread for as long as the policy lets it stay in place, and at a switch
//! it is handed to the next step's pool as one job. A step that meets a full pool follows the
//! caller-aware policy of the thread at hand: an IO (or uber, or foreign) thread waits for
//! capacity, a CPU thread before a CPU_LIGHT step runs it in place, and otherwise the run is
//! retried from the service's timer with a short back-off — no CPU thread ever blocks on it.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::TaskClass;
use crate::policy::{self, ThreadRole};
use crate::rejected::{RejectKind, Rejected};
use crate::scheduler::{CURRENT_TASK, Offered, Patience, PoolEntry};
use crate::service::{SchedulerService, WeakService};
use crate::task::{
    Completer, Job, Report, RunOutcome, Runnable, TaskError, TaskHandle, panic_message,
};
use crate::timer::Fire;

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

type StepFn = dyn Fn(Box<dyn Any + Send>) -> Box<dyn Any + Send> + Send + Sync;

struct Step {
    class: TaskClass,
    f: Box<StepFn>,
}

/// Bounds flows in flight ([`FlowBuilder::max_concurrency`]).
struct Gate {
    limit: usize,
    in_flight: Mutex<usize>,
    freed: Condvar,
}

/// One flow's slot under its concurrency limit; released when the run ends.
struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        let mut in_flight = self.0.in_flight.lock();
        *in_flight -= 1;
        self.0.freed.notify_one();
    }
}

struct FlowCore {
    name: String,
    policy: ProactorPolicy,
    steps: Vec<Step>,
    /// Pools by class: CPU_LIGHT, CPU_INTENSIVE, IO.
    pools: [Arc<PoolEntry>; 3],
    service: WeakService,
    gate: Option<Arc<Gate>>,
}

fn class_index(class: TaskClass) -> usize {
    match class {
        TaskClass::CpuLight => 0,
        TaskClass::CpuIntensive => 1,
        TaskClass::Io => 2,
    }
}

impl FlowCore {
    fn pool(&self, class: TaskClass) -> &Arc<PoolEntry> {
        &self.pools[class_index(class)]
    }

    /// Whether the step of class `next` runs in place on the current thread.
    fn stays_in_place(&self, next: TaskClass) -> bool {
        match self.policy {
            ProactorPolicy::Mule => next == TaskClass::CpuLight,
            ProactorPolicy::Affinity => {
                next == TaskClass::CpuLight
                    || matches!(
                        (policy::current_role(), next),
                        (ThreadRole::Uber, _)
                            | (ThreadRole::CpuLight, TaskClass::CpuLight)
                            | (ThreadRole::Io, TaskClass::Io)
                            | (ThreadRole::CpuIntensive, TaskClass::CpuIntensive)
                    )
            }
            ProactorPolicy::Always => false,
            ProactorPolicy::Pinned => true,
        }
    }
}

/// One run of a flow: the next step to run and the value it takes.
struct FlowRun<O> {
    core: Arc<FlowCore>,
    next: usize,
    value: Box<dyn Any + Send>,
    done: Completer<O>,
    retries: u32,
    /// Whether this run is the top-level task of the pool thread running it: its hop at the end
    /// of a step is then the task's last act, and may go to the same pool as a tail hand-off.
    tail: bool,
    _permit: Option<Permit>,
}

/// First retry delay of a step whose pool was full (offered by a thread that must not block);
/// doubles up to [`RETRY_MAX`]. Mule retries every 2 ms.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(4);

impl<O: Send + 'static> FlowRun<O> {
    /// Runs steps on this thread from `next` until the flow ends or must switch. `report` is the
    /// pool's count of the worker task this runs in, if any: counted before the flow's outcome
    /// is published.
    fn drive(mut self, report: Option<&Report<'_>>) {
        loop {
            let index = self.next;
            let step = &self.core.steps[index];
            let value = std::mem::replace(&mut self.value, Box::new(()));
            let saved = CURRENT_TASK.with(|c| c.replace(Some((step.class, 0))));
            let result = catch_unwind(AssertUnwindSafe(|| (step.f)(value)));
            CURRENT_TASK.with(|c| c.set(saved));
            match result {
                Ok(value) => self.value = value,
                Err(payload) => {
                    let message = format!(
                        "flow '{}' step {} ({}) panicked: {}",
                        self.core.name,
                        index + 1,
                        step.class,
                        panic_message(&*payload)
                    );
                    tracing::warn!(flow = %self.core.name, step = index + 1, "{message}");
                    count_completed(report);
                    self.done.complete(Err(TaskError::Panicked(message)));
                    return;
                }
            }
            self.next += 1;
            if self.next == self.core.steps.len() {
                count_completed(report);
                self.finish();
                return;
            }
            let next_class = self.core.steps[self.next].class;
            if self.core.stays_in_place(next_class) {
                self.core
                    .pool(next_class)
                    .dispatch
                    .hops_elided
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.dispatch(report);
            return;
        }
    }

    fn finish(self) {
        let FlowRun { value, done, .. } = self;
        match value.downcast::<O>() {
            Ok(value) => done.complete(Ok(*value)),
            Err(_) => unreachable!("the builder types each step's output as the next input"),
        }
    }

    /// Hands the run to the next step's pool. A full pool is met as the caller-aware policy says
    /// for the thread at hand: a thread that may wait (IO, uber, your own) waits for capacity; a
    /// thread that may run the work inline (a CPU thread before a CPU_LIGHT step) runs it in
    /// place; any other thread (CPU threads, the timer) never blocks — the run is retried from the
    /// timer. A pool that is shut down cancels the flow.
    ///
    /// A run that is its thread's top-level task, hopping to that thread's own pool (UBER, or an
    /// IO step after an IO step), hands the step off as its tail
    /// ([`Shared::admit_as_tail`](crate::pool::Shared::admit_as_tail)): the pool takes it
    /// without growing or waking anyone, and the finishing thread (or a thief) runs it. Not under
    /// `Always`, the policy whose point is a real switch at every step.
    fn dispatch(mut self, report: Option<&Report<'_>>) {
        let entry = self.core.pool(self.core.steps[self.next].class).clone();
        let counters = &entry.dispatch;
        let tail = std::mem::replace(&mut self.tail, false);
        let hand_off = tail && self.core.policy != ProactorPolicy::Always;
        let mut job = Job::new(FlowJob { run: self });
        if hand_off {
            match crate::pool::Shared::admit_as_tail(entry.shared(), job) {
                Ok(()) => {
                    counters.hops_switched.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(back) => job = back,
            }
        }
        match entry.offer(job, Patience::Policy) {
            Offered::Accepted => {
                counters.hops_switched.fetch_add(1, Ordering::Relaxed);
            }
            Offered::RunHere(job) => {
                counters.hops_elided.fetch_add(1, Ordering::Relaxed);
                let mut run = FlowJob::<O>::recover(job);
                run.tail = tail;
                run.drive(report);
            }
            Offered::Refused(job, RejectKind::Busy) => FlowJob::<O>::recover(job).retry_later(),
            Offered::Refused(job, _) => FlowJob::<O>::recover(job)
                .done
                .complete(Err(TaskError::Cancelled)),
        }
    }

    /// Dispatches again after a back-off, from the service's timer thread.
    fn retry_later(mut self) {
        let delay = RETRY_FIRST
            .saturating_mul(1 << self.retries.min(5))
            .min(RETRY_MAX);
        self.retries = self.retries.saturating_add(1);
        match self.core.service.upgrade() {
            Some(service) => service.defer(
                delay,
                Box::new(move |fire| match fire {
                    Fire::Due => self.dispatch(None),
                    Fire::Cancelled => self.done.complete(Err(TaskError::Cancelled)),
                }),
            ),
            None => self.done.complete(Err(TaskError::Cancelled)),
        }
    }
}

/// Counts the worker task a flow runs in as completed, before the flow publishes its outcome.
fn count_completed(report: Option<&Report<'_>>) {
    if let Some(report) = report {
        report.count(&RunOutcome::Completed);
    }
}

/// A flow run as a pool job.
struct FlowJob<O> {
    run: FlowRun<O>,
}

impl<O: Send + 'static> FlowJob<O> {
    fn recover(job: Job) -> FlowRun<O> {
        job.recover::<FlowJob<O>>().run
    }
}

impl<O: Send + 'static> Runnable for FlowJob<O> {
    fn run(self) -> RunOutcome {
        self.start(None)
    }

    /// Run by the worker loop itself (not inline inside another task): the flow's last hop may
    /// then be a tail hand-off to this worker's pool, and the end of the flow is counted in the
    /// pool's report before it is published.
    fn run_top(self, report: &Report<'_>) -> RunOutcome {
        self.start(Some(report))
    }

    fn cancel(self) {
        self.run.done.complete(Err(TaskError::Cancelled));
    }
}

impl<O: Send + 'static> FlowJob<O> {
    fn start(self, report: Option<&Report<'_>>) -> RunOutcome {
        let mut run = self.run;
        run.tail = report.is_some();
        if run.done.is_cancelled() || !run.done.start() {
            return RunOutcome::Skipped;
        }
        run.drive(report);
        RunOutcome::Completed
    }
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
        FlowBuilder {
            service: service.clone(),
            name: "flow".to_owned(),
            policy: ProactorPolicy::Mule,
            steps: Vec::new(),
            max_concurrency: None,
            _types: PhantomData,
        }
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
            Some(gate) => gate
                .limit
                .saturating_sub(*gate.in_flight.lock())
                .min(pool_free),
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
        let role = policy::current_role();
        let may_wait = patient && (role == ThreadRole::Foreign || role.may_wait());
        let permit = match &core.gate {
            None => None,
            Some(gate) => {
                let mut in_flight = gate.in_flight.lock();
                while *in_flight >= gate.limit {
                    if !may_wait {
                        return Err(Rejected::new(
                            input,
                            RejectKind::Throttled,
                            core.name.as_str(),
                        ));
                    }
                    gate.freed.wait(&mut in_flight);
                }
                *in_flight += 1;
                Some(Permit(gate.clone()))
            }
        };
        let (done, handle) = Completer::new();
        let run = FlowRun {
            core: core.clone(),
            next: 0,
            value: Box::new(input),
            done,
            retries: 0,
            tail: false,
            _permit: permit,
        };
        if core.steps.is_empty() {
            run.finish();
            return Ok(handle);
        }
        let entry = core.pool(core.steps[0].class).clone();
        let patience = if patient {
            Patience::Policy
        } else {
            Patience::Never
        };
        let (job, kind) = match entry.offer(Job::new(FlowJob { run }), patience) {
            Offered::Accepted => {
                entry.dispatch.hops_switched.fetch_add(1, Ordering::Relaxed);
                return Ok(handle);
            }
            Offered::RunHere(job) => {
                job.run();
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

/// Builds a [`Flow`] step by step; each step's output type is the next step's input.
pub struct FlowBuilder<I, O> {
    service: SchedulerService,
    name: String,
    policy: ProactorPolicy,
    steps: Vec<Step>,
    max_concurrency: Option<usize>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> fmt::Debug for FlowBuilder<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowBuilder")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl<I: Send + 'static, O: Send + 'static> FlowBuilder<I, O> {
    /// Appends a step of `class`.
    pub fn step<O2, F>(mut self, class: TaskClass, f: F) -> FlowBuilder<I, O2>
    where
        F: Fn(O) -> O2 + Send + Sync + 'static,
        O2: Send + 'static,
    {
        self.steps.push(Step {
            class,
            f: Box::new(
                move |value: Box<dyn Any + Send>| match value.downcast::<O>() {
                    Ok(value) => Box::new(f(*value)) as Box<dyn Any + Send>,
                    Err(_) => unreachable!("the builder types each step's input"),
                },
            ),
        });
        FlowBuilder {
            service: self.service,
            name: self.name,
            policy: self.policy,
            steps: self.steps,
            max_concurrency: self.max_concurrency,
            _types: PhantomData,
        }
    }

    /// Appends a CPU_LIGHT step (runs in place after the previous step under the Mule policy).
    pub fn light<O2, F>(self, f: F) -> FlowBuilder<I, O2>
    where
        F: Fn(O) -> O2 + Send + Sync + 'static,
        O2: Send + 'static,
    {
        self.step(TaskClass::CpuLight, f)
    }

    /// Appends an IO step (dispatched to the IO pool).
    pub fn io<O2, F>(self, f: F) -> FlowBuilder<I, O2>
    where
        F: Fn(O) -> O2 + Send + Sync + 'static,
        O2: Send + 'static,
    {
        self.step(TaskClass::Io, f)
    }

    /// Appends a CPU_INTENSIVE step (dispatched to the CPU_INTENSIVE pool).
    pub fn intensive<O2, F>(self, f: F) -> FlowBuilder<I, O2>
    where
        F: Fn(O) -> O2 + Send + Sync + 'static,
        O2: Send + 'static,
    {
        self.step(TaskClass::CpuIntensive, f)
    }

    /// The flow's name, used in logs and in the message of a panicking step.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Where the flow switches threads (default [`ProactorPolicy::Mule`]).
    pub fn policy(mut self, policy: ProactorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// At most `n` runs in flight (at least 1); beyond it, `run` waits (or refuses, per the
    /// caller's role) and `try_run` returns the input.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// Builds the flow.
    pub fn build(self) -> Flow<I, O> {
        let pools = [
            self.service.pool_for(TaskClass::CpuLight),
            self.service.pool_for(TaskClass::CpuIntensive),
            self.service.pool_for(TaskClass::Io),
        ];
        Flow {
            core: Arc::new(FlowCore {
                name: self.name,
                policy: self.policy,
                steps: self.steps,
                pools,
                service: self.service.downgrade(),
                gate: self.max_concurrency.map(|limit| {
                    Arc::new(Gate {
                        limit,
                        in_flight: Mutex::new(0),
                        freed: Condvar::new(),
                    })
                }),
            }),
            _types: PhantomData,
        }
    }
}

//! One run of a flow: the state machine that carries a value from step to step, running steps in
//! place while the policy allows and handing the run to the next step's pool at a switch.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::TaskClass;
use crate::dispatch::{Attempt, Offered, Patience, Redeliver, ServicePool, retry_later};
use crate::loom::Ordering;
use crate::pool::Shared;
use crate::rejected::RejectKind;
use crate::role::{ThreadRole, current_role};
use crate::task::{Completer, Job, Panic, Report, RunOutcome, Runnable, TaskError, panic_message};
use crate::throttle::Throttle;
use crate::timer::Timer;
use crate::view::run_as;

use super::ProactorPolicy;

/// A step, type-erased: its input in, its output (`Ok`) or a fallible step's error (`Err`) out.
pub(super) type StepFn = dyn Fn(Value) -> Result<Value, Value> + Send + Sync;

/// Makes the flow's output from the last step's value (`Ok`) or a fallible step's error
/// (`Err`).
pub(super) type FinishFn = dyn Fn(Result<Value, Value>) -> Value + Send + Sync;

/// A value between steps.
pub(super) type Value = Box<dyn Any + Send>;

pub(super) struct Step {
    pub(super) class: TaskClass,
    pub(super) f: Box<StepFn>,
}

/// One run's place under its flow's `max_concurrency`; given back when the run ends.
pub(super) struct Permit(pub(super) Arc<FlowCore>);

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = &self.0.gate {
            let pump = gate.release();
            debug_assert!(
                pump.start.is_empty() && pump.arm_at.is_none(),
                "a flow's gate has no queue and no rate"
            );
        }
    }
}

pub(super) struct FlowCore {
    pub(super) name: String,
    pub(super) policy: ProactorPolicy,
    pub(super) steps: Vec<Step>,
    /// Builds the flow's output at the end of a run (see [`FinishFn`]).
    pub(super) finish: Box<FinishFn>,
    /// Pools by class: CPU_LIGHT, CPU_INTENSIVE, IO.
    pub(super) pools: [Arc<ServicePool>; 3],
    /// The service's timer, for hops a full pool refused.
    pub(super) timer: Timer,
    /// `max_concurrency`: a gate with that many slots, no queue, no rate.
    pub(super) gate: Option<Throttle>,
}

fn class_index(class: TaskClass) -> usize {
    match class {
        TaskClass::CpuLight => 0,
        TaskClass::CpuIntensive => 1,
        TaskClass::Io => 2,
    }
}

impl FlowCore {
    pub(super) fn pool(&self, class: TaskClass) -> &Arc<ServicePool> {
        &self.pools[class_index(class)]
    }

    /// The service is shutting down (its pools refuse work).
    pub(super) fn is_shut(&self) -> bool {
        self.pools.iter().any(|pool| pool.pool.is_shutdown())
    }

    /// Whether the step of class `next` runs in place on the current thread.
    fn stays_in_place(&self, next: TaskClass) -> bool {
        match self.policy {
            ProactorPolicy::Mule => next == TaskClass::CpuLight,
            ProactorPolicy::Affinity => {
                next == TaskClass::CpuLight
                    || matches!(
                        (current_role(), next),
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
pub(super) struct FlowRun<O> {
    pub(super) core: Arc<FlowCore>,
    pub(super) next: usize,
    pub(super) value: Value,
    pub(super) done: Completer<O>,
    /// Whether this run is the top-level task of the pool thread running it: its hop at the end
    /// of a step is then the task's last act, and may go to the same pool as a tail hand-off.
    pub(super) tail: bool,
    pub(super) _permit: Option<Permit>,
}

impl<O: Send + 'static> FlowRun<O> {
    /// Runs steps on this thread from `next` until the flow ends or must switch.
    ///
    /// `report` is the pool's count of the worker task this runs in, when the run is that task:
    /// the task is counted before the flow's outcome is published, so a caller whose `join`
    /// returned finds it in the pool's counters.
    fn drive(mut self, report: Option<&Report<'_>>) {
        loop {
            let index = self.next;
            let step = &self.core.steps[index];
            let value = std::mem::replace(&mut self.value, Box::new(()));
            let result = catch_unwind(AssertUnwindSafe(|| {
                run_as(step.class, 0, || (step.f)(value))
            }));
            match result {
                Ok(Ok(value)) => self.value = value,
                Ok(Err(error)) => {
                    // A fallible step failed: the run ends here with its error.
                    count_completed(report);
                    self.finish(Err(error));
                    return;
                }
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
                    let panic = Panic::with_message(message, payload);
                    self.done.complete(Err(TaskError::Panicked(panic)));
                    return;
                }
            }
            self.next += 1;
            if self.next == self.core.steps.len() {
                let value = std::mem::replace(&mut self.value, Box::new(()));
                count_completed(report);
                self.finish(Ok(value));
                return;
            }
            let next_class = self.core.steps[self.next].class;
            if self.core.stays_in_place(next_class) {
                self.core
                    .pool(next_class)
                    .counts
                    .hops_elided
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.dispatch(report);
            return;
        }
    }

    /// Ends the run with the last step's value, or a fallible step's error.
    pub(super) fn finish(self, last: Result<Value, Value>) {
        let output = (self.core.finish)(last);
        match output.downcast::<O>() {
            Ok(output) => self.done.complete(Ok(*output)),
            Err(_) => unreachable!("the builder types the flow's output"),
        }
    }

    /// Hands the run to the next step's pool: from this thread first, then from the timer
    /// while the pool is full (see [`Redeliver for FlowRun`](#impl-Redeliver-for-FlowRun<O>)).
    pub(super) fn dispatch(self, report: Option<&Report<'_>>) {
        let timer = self.core.timer.clone();
        if let Attempt::Busy(run) = self.hop(report) {
            retry_later(&timer, run, 0);
        }
    }
}

/// A hop meets a full pool as the caller-aware policy says for the thread at hand: a thread
/// that may wait (IO, uber, your own) waits for capacity; a thread that may run the work inline
/// (a CPU thread before a CPU_LIGHT step) runs it in place; any other thread (CPU threads, the
/// timer) never blocks — the run is offered again from the timer. A pool that is shut down
/// cancels the flow.
///
/// A run that is its thread's top-level task, hopping to that thread's own pool (UBER, or an IO
/// step after an IO step), hands the step off as its tail ([`Shared::admit_as_tail`]): the pool
/// takes it without growing or waking anyone, and the finishing thread (or a thief) runs it. Not
/// under `Always`, the policy whose point is a real switch at every step.
impl<O: Send + 'static> Redeliver for FlowRun<O> {
    /// A flow run is accounted for by its handle, not by the shutdown report.
    const IS_TASK: bool = false;

    fn attempt(self) -> Attempt<Self> {
        self.hop(None)
    }

    fn abandon(self) {
        self.done.complete(Err(TaskError::Cancelled));
    }
}

impl<O: Send + 'static> FlowRun<O> {
    /// One offer of the next step to its pool (`report`: see [`drive`](Self::drive)).
    fn hop(mut self, report: Option<&Report<'_>>) -> Attempt<Self> {
        let class = self.core.steps[self.next].class;
        let pool = self.core.pool(class).clone();
        let tail = std::mem::replace(&mut self.tail, false);
        let hand_off = tail && self.core.policy != ProactorPolicy::Always;
        let mut job = Job::new(FlowJob { run: self });
        if hand_off {
            // Admitted as the tail without `offer`: the job carries its class's hint itself.
            job = job.with_cpu_hint(class.is_cpu());
            match Shared::admit_as_tail(pool.shared(), job) {
                Ok(()) => {
                    pool.counts.hops_switched.fetch_add(1, Ordering::Relaxed);
                    return Attempt::Taken;
                }
                Err(back) => job = back,
            }
        }
        match pool.offer(job, Patience::Policy, class) {
            Offered::Accepted => {
                pool.counts.hops_switched.fetch_add(1, Ordering::Relaxed);
            }
            Offered::RunHere(job, inline) => {
                pool.counts.hops_elided.fetch_add(1, Ordering::Relaxed);
                let mut run = FlowJob::<O>::recover(job);
                run.tail = tail;
                run.drive(report);
                drop(inline);
            }
            Offered::Refused(job, RejectKind::Busy) => {
                return Attempt::Busy(FlowJob::<O>::recover(job));
            }
            Offered::Refused(job, _) => FlowJob::<O>::recover(job).abandon(),
        }
        Attempt::Taken
    }
}

/// Counts the worker task a flow runs in as completed, before the flow publishes its outcome.
fn count_completed(report: Option<&Report<'_>>) {
    if let Some(report) = report {
        report.count(&RunOutcome::Completed);
    }
}

/// A flow run as a pool job.
pub(super) struct FlowJob<O> {
    pub(super) run: FlowRun<O>,
}

impl<O: Send + 'static> FlowJob<O> {
    pub(super) fn recover(job: Job) -> FlowRun<O> {
        job.recover::<FlowJob<O>>().run
    }
}

impl<O: Send + 'static> Runnable for FlowJob<O> {
    fn run(self) -> RunOutcome {
        self.start(None)
    }

    /// Run by the worker loop itself (not inline inside another task): the flow's last hop may
    /// then be a tail hand-off to this worker's pool.
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

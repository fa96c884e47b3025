//! Building a [`Flow`]: [`FlowBuilder`] for steps that cannot fail, and [`FallibleFlowBuilder`]
//! once a step returns a `Result` — a step's `Err` ends the run, and the handle yields it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::TaskClass;
use crate::service::SchedulerService;
use crate::throttle::Throttle;

use super::run::{FinishFn, FlowCore, Step, Value};
use super::{Flow, ProactorPolicy};

/// What both builders hold: the steps so far and the flow's options.
struct Chain {
    service: SchedulerService,
    name: String,
    policy: ProactorPolicy,
    steps: Vec<Step>,
    max_concurrency: Option<usize>,
}

impl Chain {
    /// Appends a step from `A` to `B` that may fail with `E`.
    fn push<A, B, E>(
        mut self,
        class: TaskClass,
        f: impl Fn(A) -> Result<B, E> + Send + Sync + 'static,
    ) -> Self
    where
        A: Send + 'static,
        B: Send + 'static,
        E: Send + 'static,
    {
        self.steps.push(Step {
            class,
            f: Box::new(move |value: Value| {
                let input = match value.downcast::<A>() {
                    Ok(input) => *input,
                    Err(_) => unreachable!("the builder types each step's input"),
                };
                f(input)
                    .map(|output| Box::new(output) as Value)
                    .map_err(|error| Box::new(error) as Value)
            }),
        });
        self
    }

    fn build<I, O>(self, finish: Box<FinishFn>) -> Flow<I, O> {
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
                finish,
                pools,
                timer: self.service.timer().clone(),
                gate: self
                    .max_concurrency
                    .map(|limit| Throttle::new(Some(limit), None, 0)),
            }),
            _types: PhantomData,
        }
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flow")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("steps", &self.steps.len())
            .finish()
    }
}

/// The options both builders share.
macro_rules! options {
    () => {
        /// The flow's name, used in logs and in the message of a panicking step.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.chain.name = name.into();
            self
        }

        /// Where the flow switches threads (default [`ProactorPolicy::Mule`]).
        pub fn policy(mut self, policy: ProactorPolicy) -> Self {
            self.chain.policy = policy;
            self
        }

        /// At most `n` runs in flight (at least 1); beyond it, `run` waits (or refuses, per the
        /// caller's role) and `try_run` returns the input.
        pub fn max_concurrency(mut self, n: usize) -> Self {
            self.chain.max_concurrency = Some(n.max(1));
            self
        }
    };
}

/// Builds a [`Flow`] step by step; each step's output type is the next step's input.
///
/// Steps that may fail (`try_light`, `try_io`, `try_intensive`, `try_step`) turn it into a
/// [`FallibleFlowBuilder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct FlowBuilder<I, O> {
    chain: Chain,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> fmt::Debug for FlowBuilder<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FlowBuilder").field(&self.chain).finish()
    }
}

impl<I: Send + 'static> FlowBuilder<I, I> {
    pub(super) fn new(service: &SchedulerService) -> Self {
        FlowBuilder {
            chain: Chain {
                service: service.clone(),
                name: "flow".to_owned(),
                policy: ProactorPolicy::Mule,
                steps: Vec::new(),
                max_concurrency: None,
            },
            _types: PhantomData,
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> FlowBuilder<I, O> {
    /// Appends a step of `class`.
    pub fn step<O2, F>(self, class: TaskClass, f: F) -> FlowBuilder<I, O2>
    where
        F: Fn(O) -> O2 + Send + Sync + 'static,
        O2: Send + 'static,
    {
        FlowBuilder {
            chain: self
                .chain
                .push(class, move |value| Ok::<_, Never>(f(value))),
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

    /// Appends a step of `class` that may fail. From here on the flow's output is
    /// `Result<_, E>`: a step's `Err` ends the run at once (no later step runs, no further hop
    /// is made or counted) and the handle yields `Ok(Err(error))`.
    ///
    /// ```
    /// use uberpool::{Flow, SchedulerService};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let send = Flow::builder(&service)
    ///     .try_io(|id: u32| if id == 0 { Err("no such subscriber") } else { Ok(id) })
    ///     .intensive(|id: u32| format!("To: subscriber-{id}@example.com"))
    ///     .light(|message: String| message.len())
    ///     .build();
    /// assert_eq!(send.run(7)?.join()?, Ok(28));
    /// assert_eq!(send.run(0)?.join()?, Err("no such subscriber"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_step<O2, E, F>(self, class: TaskClass, f: F) -> FallibleFlowBuilder<I, O2, E>
    where
        F: Fn(O) -> Result<O2, E> + Send + Sync + 'static,
        O2: Send + 'static,
        E: Send + 'static,
    {
        FallibleFlowBuilder {
            chain: self.chain.push(class, f),
            _types: PhantomData,
        }
    }

    /// Appends a CPU_LIGHT step that may fail (see [`try_step`](Self::try_step)).
    pub fn try_light<O2, E, F>(self, f: F) -> FallibleFlowBuilder<I, O2, E>
    where
        F: Fn(O) -> Result<O2, E> + Send + Sync + 'static,
        O2: Send + 'static,
        E: Send + 'static,
    {
        self.try_step(TaskClass::CpuLight, f)
    }

    /// Appends an IO step that may fail (see [`try_step`](Self::try_step)).
    pub fn try_io<O2, E, F>(self, f: F) -> FallibleFlowBuilder<I, O2, E>
    where
        F: Fn(O) -> Result<O2, E> + Send + Sync + 'static,
        O2: Send + 'static,
        E: Send + 'static,
    {
        self.try_step(TaskClass::Io, f)
    }

    /// Appends a CPU_INTENSIVE step that may fail (see [`try_step`](Self::try_step)).
    pub fn try_intensive<O2, E, F>(self, f: F) -> FallibleFlowBuilder<I, O2, E>
    where
        F: Fn(O) -> Result<O2, E> + Send + Sync + 'static,
        O2: Send + 'static,
        E: Send + 'static,
    {
        self.try_step(TaskClass::CpuIntensive, f)
    }

    options!();

    /// Builds the flow.
    pub fn build(self) -> Flow<I, O> {
        self.chain
            .build(Box::new(|last: Result<Value, Value>| match last {
                Ok(value) => value,
                Err(_) => unreachable!("only a fallible step ends a run with an error"),
            }))
    }
}

/// The error type of steps that cannot fail.
enum Never {}

/// Builds a flow whose steps may fail with `E`: its output is `Result<T, E>`, where `T` is the
/// last step's output. Every step takes the previous step's `Ok` value; the first `Err` ends the
/// run. Fallible steps may fail with any error that converts into `E` (`E: From<E2>`, as `?`
/// converts).
///
/// ```
/// use uberpool::{Flow, SchedulerService};
///
/// #[derive(Debug, PartialEq)]
/// enum SendError {
///     Unknown(u32),
///     Refused(u16),
/// }
///
/// impl From<u16> for SendError {
///     fn from(code: u16) -> Self {
///         SendError::Refused(code)
///     }
/// }
///
/// let service = SchedulerService::builder().build()?;
/// let send = Flow::builder(&service)
///     .try_io(|id: u32| if id < 100 { Ok(id) } else { Err(SendError::Unknown(id)) })
///     .light(|id: u32| format!("subscriber-{id}@example.com"))
///     .try_io(|to: String| if to.starts_with("subscriber-13@") { Err(421u16) } else { Ok(250u16) })
///     .build();
/// assert_eq!(send.run(7)?.join()?, Ok(250));
/// assert_eq!(send.run(13)?.join()?, Err(SendError::Refused(421)));
/// assert_eq!(send.run(500)?.join()?, Err(SendError::Unknown(500)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct FallibleFlowBuilder<I, T, E> {
    chain: Chain,
    _types: PhantomData<fn(I) -> Result<T, E>>,
}

impl<I, T, E> fmt::Debug for FallibleFlowBuilder<I, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FallibleFlowBuilder")
            .field(&self.chain)
            .finish()
    }
}

impl<I: Send + 'static, T: Send + 'static, E: Send + 'static> FallibleFlowBuilder<I, T, E> {
    /// Appends a step of `class` that cannot fail.
    pub fn step<T2, F>(self, class: TaskClass, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> T2 + Send + Sync + 'static,
        T2: Send + 'static,
    {
        FallibleFlowBuilder {
            chain: self.chain.push(class, move |value| Ok::<_, E>(f(value))),
            _types: PhantomData,
        }
    }

    /// Appends a CPU_LIGHT step that cannot fail.
    pub fn light<T2, F>(self, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> T2 + Send + Sync + 'static,
        T2: Send + 'static,
    {
        self.step(TaskClass::CpuLight, f)
    }

    /// Appends an IO step that cannot fail.
    pub fn io<T2, F>(self, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> T2 + Send + Sync + 'static,
        T2: Send + 'static,
    {
        self.step(TaskClass::Io, f)
    }

    /// Appends a CPU_INTENSIVE step that cannot fail.
    pub fn intensive<T2, F>(self, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> T2 + Send + Sync + 'static,
        T2: Send + 'static,
    {
        self.step(TaskClass::CpuIntensive, f)
    }

    /// Appends a step of `class` that may fail with an error convertible into `E`.
    pub fn try_step<T2, E2, F>(self, class: TaskClass, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> Result<T2, E2> + Send + Sync + 'static,
        T2: Send + 'static,
        E: From<E2>,
    {
        FallibleFlowBuilder {
            chain: self
                .chain
                .push(class, move |value| f(value).map_err(E::from)),
            _types: PhantomData,
        }
    }

    /// Appends a CPU_LIGHT step that may fail.
    pub fn try_light<T2, E2, F>(self, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> Result<T2, E2> + Send + Sync + 'static,
        T2: Send + 'static,
        E: From<E2>,
    {
        self.try_step(TaskClass::CpuLight, f)
    }

    /// Appends an IO step that may fail.
    pub fn try_io<T2, E2, F>(self, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> Result<T2, E2> + Send + Sync + 'static,
        T2: Send + 'static,
        E: From<E2>,
    {
        self.try_step(TaskClass::Io, f)
    }

    /// Appends a CPU_INTENSIVE step that may fail.
    pub fn try_intensive<T2, E2, F>(self, f: F) -> FallibleFlowBuilder<I, T2, E>
    where
        F: Fn(T) -> Result<T2, E2> + Send + Sync + 'static,
        T2: Send + 'static,
        E: From<E2>,
    {
        self.try_step(TaskClass::CpuIntensive, f)
    }

    options!();

    /// Builds the flow: its handle yields `Ok(Ok(last value))`, or `Ok(Err(error))` from the
    /// first step that failed.
    pub fn build(self) -> Flow<I, Result<T, E>> {
        self.chain.build(Box::new(|last: Result<Value, Value>| {
            let output: Result<T, E> = match last {
                Ok(value) => Ok(*value
                    .downcast::<T>()
                    .unwrap_or_else(|_| unreachable!("the builder types the last step"))),
                Err(error) => Err(*error
                    .downcast::<E>()
                    .unwrap_or_else(|_| unreachable!("the builder types every step's error"))),
            };
            Box::new(output) as Value
        }))
    }
}

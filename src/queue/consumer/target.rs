//! Where a consumer runs its jobs: a scheduler with a handler, or a flow from [`Delivery`] to
//! [`Outcome`]. Both answer "how much room now" and "start this if there is room", never
//! waiting and never running the job on the consumer's thread.

use std::fmt;
use std::sync::Arc;

use crate::queue::{Delivery, Outcome};
use crate::{Flow, RejectKind, Scheduler, TaskHandle};

/// A handler: runs one delivery and says what became of it.
pub(crate) type Handler = Arc<dyn Fn(&Delivery) -> Outcome + Send + Sync + 'static>;

pub(crate) enum Target {
    Scheduler {
        scheduler: Scheduler,
        handler: Handler,
    },
    Flow(Flow<Delivery, Outcome>),
}

impl Target {
    /// Jobs the target would start now without waiting or refusing (a snapshot).
    pub(crate) fn free_slots(&self) -> usize {
        match self {
            Target::Scheduler { scheduler, .. } => scheduler.free_slots(),
            Target::Flow(flow) => flow.free_slots(),
        }
    }

    /// Starts `delivery` if the target takes it now; `Err` with the reason otherwise.
    pub(crate) fn try_start(&self, delivery: Delivery) -> Result<TaskHandle<Outcome>, RejectKind> {
        match self {
            Target::Scheduler { scheduler, handler } => {
                let handler = handler.clone();
                scheduler
                    .try_submit(move || handler(&delivery))
                    .map_err(|refused| refused.kind())
            }
            Target::Flow(flow) => flow.try_run(delivery).map_err(|refused| refused.kind()),
        }
    }

    /// The scheduler's or flow's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            Target::Scheduler { scheduler, .. } => scheduler.name(),
            Target::Flow(flow) => flow.name(),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Scheduler { scheduler, .. } => {
                f.debug_tuple("Scheduler").field(&scheduler.name()).finish()
            }
            Target::Flow(flow) => f.debug_tuple("Flow").field(&flow.name()).finish(),
        }
    }
}

//! Who waits, who runs inline, who is refused: the caller-aware rejection decision.
//!
//! When a pool cannot accept a task, what happens depends on the role of the *calling* thread
//! and on the target, exactly as in Mule 4's scheduler service. This module holds that decision
//! as a pure function of (caller role, target) so it can be tested cell by cell against the table
//! in the crate documentation; the schedulers carry it out.
//!
//! The rules, in order:
//! 1. **Run inline** when the caller may run CPU_LIGHT work directly and the target is the pool
//!    that serves CPU_LIGHT (the cpuLight pool, or the uber pool), or when the caller belongs to a
//!    pool whose threads may wait and the target is that same pool (an IO thread submitting to the
//!    full IO pool would otherwise deadlock).
//! 2. **Wait** when the caller is not a scheduler thread at all, or belongs to a pool whose threads
//!    may wait.
//! 3. **Refuse** otherwise: CPU threads never block.
//!
//! Threads that may wait: uber threads, IO threads, custom schedulers with `wait_allowed`.
//! Threads that may run CPU_LIGHT work inline: cpuLight and cpuIntensive threads (DEDICATED) and
//! custom schedulers with `direct_run_cpu_light_when_target_busy`.
//!
//! A throttled scheduler's gate has its own, smaller decision ([`decide_at_gate`]). Roles
//! themselves (and which thread has which) live in `role.rs`; carrying a decision out (waiting,
//! running inline within a bounded depth, refusing) is `dispatch.rs`'s job.

use crate::role::ThreadRole;

/// The pool a task is offered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// The UBER pool.
    Uber,
    /// The DEDICATED cpuLight pool.
    CpuLight,
    /// The DEDICATED io pool.
    Io,
    /// The DEDICATED cpuIntensive pool.
    CpuIntensive,
    /// A custom scheduler's pool.
    Custom {
        /// The custom pool's identity.
        id: usize,
    },
}

/// What to do with a task the target refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Decision {
    /// Run it on the calling thread, now.
    RunInline,
    /// Block the caller until the target accepts it (or the caller's deadline passes).
    Wait,
    /// Hand it back to the caller as `Rejected`.
    Refuse,
}

/// Whether `caller` is a thread of the pool that `target` names.
fn belongs_to(caller: ThreadRole, target: Target) -> bool {
    match (caller, target) {
        (ThreadRole::Uber, Target::Uber)
        | (ThreadRole::CpuLight, Target::CpuLight)
        | (ThreadRole::Io, Target::Io)
        | (ThreadRole::CpuIntensive, Target::CpuIntensive) => true,
        (ThreadRole::Custom { id, .. }, Target::Custom { id: target }) => id == target,
        _ => false,
    }
}

impl Target {
    /// The pool that serves CPU_LIGHT work.
    fn serves_cpu_light(self) -> bool {
        matches!(self, Target::Uber | Target::CpuLight)
    }
}

/// The decision for a task that `target` refused, offered by a thread in role `caller`.
pub(crate) fn decide(caller: ThreadRole, target: Target) -> Decision {
    if (caller.may_run_cpu_light() && target.serves_cpu_light())
        || (caller.may_wait() && belongs_to(caller, target))
    {
        Decision::RunInline
    } else if caller.may_block() {
        Decision::Wait
    } else {
        Decision::Refuse
    }
}

/// The decision for a task that a throttled scheduler's gate cannot let through (no free slot
/// and no room in the scheduler's own queue), offered by a thread in role `caller`.
///
/// `holds_a_slot` says that the calling thread is itself running a task of that scheduler: it
/// holds one of the gate's slots. Such a caller must not wait for a slot (it may hold the only
/// one: it would wait for itself), so when its role lets it block it runs the task inline, on
/// the slot it already holds — as an IO thread runs IO work inline when the io pool is full.
/// Otherwise callers that may block wait, and the others are refused (CPU threads never block).
pub(crate) fn decide_at_gate(caller: ThreadRole, holds_a_slot: bool) -> Decision {
    match (caller.may_block(), holds_a_slot) {
        (true, true) => Decision::RunInline,
        (true, false) => Decision::Wait,
        (false, _) => Decision::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::{Refuse as REFUSE, RunInline as RUN, Wait as WAIT};
    use super::*;

    const OTHER: usize = 1;
    const SAME: usize = 2;

    fn custom(wait_allowed: bool, direct_run_cpu_light: bool) -> ThreadRole {
        ThreadRole::Custom {
            id: SAME,
            wait_allowed,
            direct_run_cpu_light,
        }
    }

    /// The DEDICATED table: columns cpuLight, io, cpuIntensive, custom (other), custom (same).
    #[test]
    fn dedicated_table() {
        let targets = [
            Target::CpuLight,
            Target::Io,
            Target::CpuIntensive,
            Target::Custom { id: OTHER },
            Target::Custom { id: SAME },
        ];
        let rows: [(ThreadRole, [Decision; 5]); 9] = [
            (ThreadRole::CpuLight, [RUN, REFUSE, REFUSE, REFUSE, REFUSE]),
            (
                ThreadRole::CpuIntensive,
                [RUN, REFUSE, REFUSE, REFUSE, REFUSE],
            ),
            (ThreadRole::Io, [WAIT, RUN, WAIT, WAIT, WAIT]),
            (
                custom(false, false),
                [REFUSE, REFUSE, REFUSE, REFUSE, REFUSE],
            ),
            (custom(true, false), [WAIT, WAIT, WAIT, WAIT, RUN]),
            (custom(false, true), [RUN, REFUSE, REFUSE, REFUSE, REFUSE]),
            (custom(true, true), [RUN, WAIT, WAIT, WAIT, RUN]),
            (ThreadRole::Timer, [REFUSE, REFUSE, REFUSE, REFUSE, REFUSE]),
            (ThreadRole::Foreign, [WAIT, WAIT, WAIT, WAIT, WAIT]),
        ];
        for (caller, expected) in rows {
            for (target, want) in targets.iter().zip(expected) {
                assert_eq!(decide(caller, *target), want, "{caller:?} -> {target:?}");
            }
        }
    }

    /// The UBER table: columns uber, custom (other), custom (same).
    #[test]
    fn uber_table() {
        let targets = [
            Target::Uber,
            Target::Custom { id: OTHER },
            Target::Custom { id: SAME },
        ];
        let rows: [(ThreadRole, [Decision; 3]); 7] = [
            (ThreadRole::Uber, [RUN, WAIT, WAIT]),
            (custom(false, false), [REFUSE, REFUSE, REFUSE]),
            (custom(true, false), [WAIT, WAIT, RUN]),
            (custom(false, true), [RUN, REFUSE, REFUSE]),
            (custom(true, true), [RUN, WAIT, RUN]),
            (ThreadRole::Timer, [REFUSE, REFUSE, REFUSE]),
            (ThreadRole::Foreign, [WAIT, WAIT, WAIT]),
        ];
        for (caller, expected) in rows {
            for (target, want) in targets.iter().zip(expected) {
                assert_eq!(decide(caller, *target), want, "{caller:?} -> {target:?}");
            }
        }
    }

    #[test]
    fn a_gate_runs_a_task_of_its_own_scheduler_inline_for_callers_that_may_block() {
        let roles = [
            ThreadRole::Uber,
            ThreadRole::CpuLight,
            ThreadRole::Io,
            ThreadRole::CpuIntensive,
            custom(false, false),
            custom(true, false),
            custom(false, true),
            ThreadRole::Timer,
            ThreadRole::Foreign,
        ];
        for role in roles {
            let (own, other) = if role.may_block() {
                (RUN, WAIT)
            } else {
                (REFUSE, REFUSE)
            };
            assert_eq!(decide_at_gate(role, true), own, "{role:?} holding a slot");
            assert_eq!(decide_at_gate(role, false), other, "{role:?}");
        }
    }
}

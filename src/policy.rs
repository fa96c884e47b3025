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

/// What the calling thread is, as far as rejection is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ThreadRole {
    /// A thread of the UBER pool (whatever class of task it is running).
    Uber,
    /// A thread of the DEDICATED cpuLight pool.
    CpuLight,
    /// A thread of the DEDICATED io pool.
    Io,
    /// A thread of the DEDICATED cpuIntensive pool.
    CpuIntensive,
    /// A thread of a custom scheduler's own pool.
    Custom {
        /// Identifies the custom pool (unique within the process).
        id: usize,
        /// The custom scheduler was configured with `wait_allowed`.
        wait_allowed: bool,
        /// The custom scheduler was configured with `direct_run_cpu_light_when_target_busy`.
        direct_run_cpu_light: bool,
    },
    /// The service's timer thread, which only dispatches and must never block.
    Timer,
    /// Any other thread: `main`, the application's own threads.
    Foreign,
}

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

impl ThreadRole {
    /// Threads that may block waiting for a busy target (Mule's wait groups).
    pub(crate) fn may_wait(self) -> bool {
        matches!(
            self,
            ThreadRole::Uber
                | ThreadRole::Io
                | ThreadRole::Custom {
                    wait_allowed: true,
                    ..
                }
        )
    }

    /// Threads that run CPU_LIGHT work inline when its pool is busy.
    pub(crate) fn may_run_cpu_light(self) -> bool {
        matches!(
            self,
            ThreadRole::CpuLight
                | ThreadRole::CpuIntensive
                | ThreadRole::Custom {
                    direct_run_cpu_light: true,
                    ..
                }
        )
    }

    /// Threads of the pool that `target` names.
    fn belongs_to(self, target: Target) -> bool {
        match (self, target) {
            (ThreadRole::Uber, Target::Uber)
            | (ThreadRole::CpuLight, Target::CpuLight)
            | (ThreadRole::Io, Target::Io)
            | (ThreadRole::CpuIntensive, Target::CpuIntensive) => true,
            (ThreadRole::Custom { id, .. }, Target::Custom { id: target }) => id == target,
            _ => false,
        }
    }

    /// `true` for threads that run CPU work: uber threads (whatever they run), cpuLight and
    /// cpuIntensive threads.
    pub(crate) fn is_for_cpu_work(self) -> bool {
        matches!(
            self,
            ThreadRole::Uber | ThreadRole::CpuLight | ThreadRole::CpuIntensive
        )
    }
}

impl Target {
    /// The pool that serves CPU_LIGHT work.
    fn serves_cpu_light(self) -> bool {
        matches!(self, Target::Uber | Target::CpuLight)
    }
}

/// `true` for callers that may block waiting for capacity: foreign threads and the wait groups
/// (a throttled scheduler's gate makes exactly these wait, and refuses the others).
pub(crate) fn may_block(caller: ThreadRole) -> bool {
    caller == ThreadRole::Foreign || caller.may_wait()
}

/// The decision for a task that `target` refused, offered by a thread in role `caller`.
pub(crate) fn decide(caller: ThreadRole, target: Target) -> Decision {
    if (caller.may_run_cpu_light() && target.serves_cpu_light())
        || (caller.may_wait() && caller.belongs_to(target))
    {
        Decision::RunInline
    } else if caller == ThreadRole::Foreign || caller.may_wait() {
        Decision::Wait
    } else {
        Decision::Refuse
    }
}

thread_local! {
    /// The role the thread was given: by the timer thread for itself, by the service for its pool
    /// threads (from their start hook). Unset on foreign threads.
    static ROLE_OVERRIDE: std::cell::Cell<Option<ThreadRole>> = const { std::cell::Cell::new(None) };
}

/// Gives the calling thread `role` for the rest of its life (the timer thread calls this with
/// [`ThreadRole::Timer`] when it starts; the service's pools call it from their thread-start
/// hook).
pub(crate) fn set_thread_role(role: ThreadRole) {
    ROLE_OVERRIDE.with(|r| r.set(Some(role)));
}

/// The calling thread's role: the role it was given ([`set_thread_role`]), else `Foreign`.
pub(crate) fn current_role() -> ThreadRole {
    ROLE_OVERRIDE
        .with(|r| r.get())
        .unwrap_or(ThreadRole::Foreign)
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
    fn cpu_work_and_wait_group_answers_per_role() {
        let answers = [
            (ThreadRole::Uber, true, true),
            (ThreadRole::CpuLight, true, false),
            (ThreadRole::CpuIntensive, true, false),
            (ThreadRole::Io, false, true),
            (custom(false, false), false, false),
            (custom(true, false), false, true),
            (custom(false, true), false, false),
            (ThreadRole::Timer, false, false),
            (ThreadRole::Foreign, false, false),
        ];
        for (role, cpu, wait) in answers {
            assert_eq!(role.is_for_cpu_work(), cpu, "{role:?}");
            assert_eq!(role.may_wait(), wait, "{role:?}");
        }
    }

    #[test]
    fn a_foreign_thread_has_the_foreign_role() {
        let role = std::thread::spawn(current_role).join().unwrap();
        assert_eq!(role, ThreadRole::Foreign);
    }

    #[test]
    fn a_thread_may_set_its_own_role() {
        let role = std::thread::spawn(|| {
            set_thread_role(ThreadRole::Timer);
            current_role()
        })
        .join()
        .unwrap();
        assert_eq!(role, ThreadRole::Timer);
        assert_eq!(
            current_role(),
            ThreadRole::Foreign,
            "other threads keep theirs"
        );
    }
}

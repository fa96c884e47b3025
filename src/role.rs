//! The role of the calling thread in the rejection policy, kept in a thread-local.
//!
//! A leaf: this file knows nothing of pools, schedulers or the policy's table. The service gives
//! each of its pool threads a role from the pool's thread-start hook (so the pool itself knows
//! nothing of roles), the timer thread gives itself [`ThreadRole::Timer`], and every other
//! thread — `main`, the application's own threads, the threads of a bare
//! [`ThreadPool`](crate::pool::ThreadPool) — is [`ThreadRole::Foreign`].

use std::cell::Cell;

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

    /// Callers that may block waiting for capacity: foreign threads and the wait groups. A
    /// throttled scheduler's gate makes exactly these wait, and refuses the others.
    pub(crate) fn may_block(self) -> bool {
        self == ThreadRole::Foreign || self.may_wait()
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

    /// `true` for threads that run CPU work: uber threads (whatever they run), cpuLight and
    /// cpuIntensive threads.
    pub(crate) fn is_for_cpu_work(self) -> bool {
        matches!(
            self,
            ThreadRole::Uber | ThreadRole::CpuLight | ThreadRole::CpuIntensive
        )
    }
}

#[cfg(not(loom))]
std::thread_local! {
    /// The role the thread gave itself; `None` means foreign.
    static ROLE: Cell<Option<ThreadRole>> = const { Cell::new(None) };
}

#[cfg(loom)]
loom::thread_local! {
    static ROLE: Cell<Option<ThreadRole>> = Cell::new(None);
}

/// Gives the calling thread `role` for the rest of its life (pool threads from their start hook,
/// the timer thread when it starts).
pub(crate) fn set_thread_role(role: ThreadRole) {
    ROLE.with(|r| r.set(Some(role)));
}

/// The calling thread's role: the one it set for itself, else [`ThreadRole::Foreign`].
pub(crate) fn current_role() -> ThreadRole {
    ROLE.with(Cell::get).unwrap_or(ThreadRole::Foreign)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn custom(wait_allowed: bool, direct_run_cpu_light: bool) -> ThreadRole {
        ThreadRole::Custom {
            id: 1,
            wait_allowed,
            direct_run_cpu_light,
        }
    }

    #[test]
    fn cpu_work_wait_group_and_blocking_answers_per_role() {
        // (role, for CPU work, in a wait group, may block at a gate, runs CPU_LIGHT inline)
        let answers = [
            (ThreadRole::Uber, true, true, true, false),
            (ThreadRole::CpuLight, true, false, false, true),
            (ThreadRole::CpuIntensive, true, false, false, true),
            (ThreadRole::Io, false, true, true, false),
            (custom(false, false), false, false, false, false),
            (custom(true, false), false, true, true, false),
            (custom(false, true), false, false, false, true),
            (ThreadRole::Timer, false, false, false, false),
            (ThreadRole::Foreign, false, false, true, false),
        ];
        for (role, cpu, wait, block, light) in answers {
            assert_eq!(role.is_for_cpu_work(), cpu, "{role:?}");
            assert_eq!(role.may_wait(), wait, "{role:?}");
            assert_eq!(role.may_block(), block, "{role:?}");
            assert_eq!(role.may_run_cpu_light(), light, "{role:?}");
        }
    }

    #[test]
    fn a_thread_is_foreign_until_it_sets_a_role() {
        let role = std::thread::spawn(current_role).join().unwrap();
        assert_eq!(role, ThreadRole::Foreign);
    }

    #[test]
    fn a_role_is_the_setting_threads_own() {
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

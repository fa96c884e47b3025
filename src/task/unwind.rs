//! Containing panics that user code raises where the library, not the user, is on the stack.
//!
//! A task's own panic is caught around its closure and becomes `TaskError::Panicked`. But user
//! code also runs elsewhere: a panic payload's `Drop`, a captured value's `Drop` when a closure is
//! dropped unrun, a result's `Drop` when nobody took it, a waker's `wake`. When that happens on a
//! pool thread, or inside a shutdown, the panic must not unwind through the pool's bookkeeping.
//! These helpers run such code under `catch_unwind`, log what was caught, and carry on.
//!
//! A panic payload is user data too, so a caught payload is dropped the same way; should *its*
//! `Drop` panic as well, the payload of that panic is dropped in turn, and so on up to
//! [`PAYLOAD_DROPS`] deep, after which the last payload is leaked (one allocation, in a case that
//! needs that many nested misbehaving `Drop`s).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::panic_message;

/// Runs `f`, containing a panic: logs it (saying `what` panicked) and returns `false`.
pub(crate) fn contain(what: &'static str, f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            tracing::warn!(
                panic = %panic_message(&*payload),
                "{what} panicked; the panic was contained"
            );
            drop_payload(payload);
            false
        }
    }
}

/// Drops `value`, containing a panic from its `Drop` (see [`contain`]).
pub(crate) fn drop_contained<T>(what: &'static str, value: T) {
    contain(what, move || drop(value));
}

/// How many nested payloads [`drop_payload`] drops before it leaks the next one.
const PAYLOAD_DROPS: usize = 4;

/// Drops a caught panic payload; a panic from the payload's own `Drop` is contained, and its
/// payload dropped the same way (see the module docs).
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    let mut payload = payload;
    for _ in 0..PAYLOAD_DROPS {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(nested) => {
                tracing::warn!("a panic payload's Drop panicked; its own payload is dropped next");
                payload = nested;
            }
        }
    }
    tracing::warn!("panic payloads kept panicking in Drop; the last one is leaked");
    std::mem::forget(payload);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            std::panic::panic_any(Bomb2);
        }
    }

    struct Bomb2;

    impl Drop for Bomb2 {
        fn drop(&mut self) {
            panic!("the nested payload's Drop panics too");
        }
    }

    #[test]
    fn a_panicking_drop_is_contained() {
        drop_contained("a test value", Bomb);
    }

    #[test]
    fn a_payload_whose_drop_panics_is_contained() {
        let payload = catch_unwind(|| std::panic::panic_any(Bomb)).unwrap_err();
        drop_payload(payload);
    }

    /// A payload whose `Drop` panics with a payload whose `Drop` panics, without end.
    struct Endless;

    impl Drop for Endless {
        fn drop(&mut self) {
            std::panic::panic_any(Endless);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "leaks one payload on purpose; Miri reports the leak")]
    fn an_endless_chain_of_panicking_payloads_ends() {
        drop_payload(Box::new(Endless));
    }

    #[test]
    fn contain_reports_whether_the_closure_returned() {
        assert!(contain("nothing", || {}));
        assert!(!contain("a test closure", || panic!("caught")));
    }
}

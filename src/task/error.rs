//! Why a task produced no value: [`TaskError`], and the [`Panic`] it carries when the task
//! panicked — its message, and the original payload for `resume_unwind`.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::Mutex;

use super::panic_message;

/// Why a task produced no value.
///
/// `TaskError` is `Send + Sync + 'static`, so `?` turns it into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>`.
///
/// ```
/// use uberpool::{SchedulerService, TaskError};
///
/// let service = SchedulerService::builder().build()?;
/// let failed = service.io().submit(|| -> u32 { panic!("relay unreachable") })?.join();
/// match failed {
///     Err(TaskError::Panicked(panic)) => assert_eq!(panic.message(), "relay unreachable"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked: [`Panic`] holds the message and the original payload.
    #[error("task panicked: {0}")]
    Panicked(Panic),
    /// The task was cancelled before it started (by [`TaskHandle::cancel`](crate::TaskHandle::cancel),
    /// by a shutdown whose grace period ended first, or because its scheduler or service shut
    /// down before it could start).
    #[error("task cancelled before it started")]
    Cancelled,
}

impl TaskError {
    /// `true` if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// `true` if the task was cancelled before it started.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }

    /// The panic's payload, to re-raise it with [`std::panic::resume_unwind`] — the task's own
    /// payload when this error still holds it, else its message as a `String`. A task that did
    /// not panic comes back as `Err(self)`.
    ///
    /// ```
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let error = service.io().submit(|| std::panic::panic_any(404u16))?.join().unwrap_err();
    /// let payload = error.try_into_panic().unwrap();
    /// assert_eq!(payload.downcast_ref::<u16>(), Some(&404));
    /// // std::panic::resume_unwind(payload) would carry the panic on in this thread.
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, TaskError> {
        match self {
            TaskError::Panicked(panic) => Ok(panic.into_payload()),
            other => Err(other),
        }
    }
}

/// A task's panic: the message (the payload when it was a string) and the payload itself.
///
/// It reads as its message (`Deref<Target = str>`, `Display`), compares by message, and can be
/// turned back into the payload ([`into_payload`](Self::into_payload), [`resume`](Self::resume)).
/// A clone carries the message only: the payload is moved, never copied.
pub struct Panic {
    message: String,
    /// The original payload, until it is taken. Behind a mutex (never contended) so that the
    /// error is `Sync` whatever the payload is; it is only ever moved out, never shared.
    payload: Mutex<Option<Box<dyn Any + Send + 'static>>>,
}

impl Panic {
    /// A panic caught from a task: its payload, whose message is read now.
    pub(crate) fn caught(payload: Box<dyn Any + Send + 'static>) -> Self {
        Panic {
            message: panic_message(&*payload),
            payload: Mutex::new(Some(payload)),
        }
    }

    /// A panic with `message`, its payload kept (flows prefix the step that panicked).
    pub(crate) fn with_message(message: String, payload: Box<dyn Any + Send + 'static>) -> Self {
        Panic {
            message,
            payload: Mutex::new(Some(payload)),
        }
    }

    /// The panic's message: the payload when it was a `&str` or a `String`, else
    /// `"non-string panic payload"`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The original payload (or the message as a `String` when this is a clone, which carries
    /// no payload).
    pub fn into_payload(mut self) -> Box<dyn Any + Send + 'static> {
        let payload = self
            .payload
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        payload.unwrap_or_else(|| Box::new(std::mem::take(&mut self.message)))
    }

    /// Re-raises the panic in the calling thread with its original payload, as
    /// [`std::panic::resume_unwind`] does.
    pub fn resume(self) -> ! {
        std::panic::resume_unwind(self.into_payload())
    }
}

impl From<&str> for Panic {
    fn from(message: &str) -> Self {
        Panic::from(message.to_owned())
    }
}

impl From<String> for Panic {
    fn from(message: String) -> Self {
        Panic {
            message,
            payload: Mutex::new(None),
        }
    }
}

impl Clone for Panic {
    fn clone(&self) -> Self {
        Panic::from(self.message.clone())
    }
}

impl PartialEq for Panic {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Panic {}

impl Deref for Panic {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Panic").field(&self.message).finish()
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Drop for Panic {
    /// A payload nobody took back is user data whose `Drop` may panic: contained.
    fn drop(&mut self) {
        let payload = self
            .payload
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(payload) = payload {
            super::drop_payload(payload);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn a_task_error_is_send_sync_and_static() {
        assert_send_sync::<TaskError>();
    }

    #[test]
    fn a_caught_panic_keeps_its_payload_and_reads_as_its_message() {
        let payload = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        let panic = Panic::caught(payload);
        assert_eq!(panic.message(), "non-string panic payload");
        assert_eq!(panic.into_payload().downcast_ref::<u8>(), Some(&7));
        let payload = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        let panic = Panic::caught(payload);
        assert!(panic.contains("boom 1"));
        assert_eq!(panic.to_string(), "boom 1");
        assert_eq!(panic, Panic::from("boom 1"));
    }

    #[test]
    fn a_clone_carries_the_message_only() {
        let payload = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        let panic = Panic::caught(payload);
        let copy = panic.clone();
        assert_eq!(copy, panic);
        let message = copy.into_payload();
        assert_eq!(
            message.downcast_ref::<String>().map(String::as_str),
            Some("non-string panic payload")
        );
    }

    #[test]
    fn resume_carries_the_original_payload_on() {
        let payload = std::panic::catch_unwind(|| std::panic::panic_any(42u32)).unwrap_err();
        let error = TaskError::Panicked(Panic::caught(payload));
        let again = std::panic::catch_unwind(AssertUnwindSafe(move || match error {
            TaskError::Panicked(panic) => panic.resume(),
            TaskError::Cancelled => unreachable!(),
        }))
        .unwrap_err();
        assert_eq!(again.downcast_ref::<u32>(), Some(&42));
    }

    #[test]
    fn try_into_panic_hands_back_other_errors() {
        assert_eq!(
            TaskError::Cancelled.try_into_panic().unwrap_err(),
            TaskError::Cancelled
        );
    }

    use std::panic::AssertUnwindSafe;
}

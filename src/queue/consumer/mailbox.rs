//! The consumer thread's mailbox: the one place other threads reach it. Pool threads post
//! "job finished" (from the task handle's waker) and the [`Consumer`](super::Consumer) handle
//! posts "stop"; the consumer thread takes what was posted and waits when there is nothing.
//!
//! Protocol (see `README.md`): every post happens under the lock and notifies while holding
//! it; the consumer thread checks for posts under the same lock before it waits. So a post is
//! either seen by that check or wakes the wait that follows it — never lost.

use std::time::Instant;

use crate::loom::{Condvar, Mutex};

/// What was posted since the last [`Mailbox::take`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Inbox {
    /// Keys of held jobs whose task finished (may repeat; unknown keys are ignored).
    pub(crate) finished: Vec<u64>,
    /// A stop was asked for: drain, and give up on what still runs at this instant. When
    /// several stops come, the earliest deadline holds.
    pub(crate) stop: Option<Instant>,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.finished.is_empty() && self.stop.is_none()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    /// Posts not yet taken. Invariant: the consumer thread only waits on `signal` after
    /// seeing this empty under the lock.
    inbox: Mutex<Inbox>,
    /// Notified (under the lock) by every post.
    signal: Condvar,
}

impl Mailbox {
    pub(crate) fn new() -> Mailbox {
        Mailbox::default()
    }

    /// A held job's task finished (called by its waker, on the thread that finished it).
    pub(crate) fn post_finished(&self, key: u64) {
        let mut inbox = self.inbox.lock();
        inbox.finished.push(key);
        self.signal.notify_one();
    }

    /// Asks the consumer thread to stop, giving up on running jobs at `deadline`.
    pub(crate) fn post_stop(&self, deadline: Instant) {
        let mut inbox = self.inbox.lock();
        inbox.stop = Some(inbox.stop.map_or(deadline, |d| d.min(deadline)));
        self.signal.notify_one();
    }

    /// Takes everything posted so far.
    pub(crate) fn take(&self) -> Inbox {
        std::mem::take(&mut *self.inbox.lock())
    }

    /// Waits until something is posted or `until` passes (`None`: no time limit). Returns at
    /// once if something is already waiting to be taken.
    pub(crate) fn wait(&self, until: Option<Instant>) {
        let mut inbox = self.inbox.lock();
        if !inbox.is_empty() {
            return;
        }
        match until {
            None => self.signal.wait(&mut inbox),
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    crate::loom::wait_timeout(&self.signal, &mut inbox, left);
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn posts_are_taken_once_and_the_earliest_stop_holds() {
        let mailbox = Mailbox::new();
        let soon = Instant::now() + Duration::from_secs(1);
        mailbox.post_finished(3);
        mailbox.post_stop(soon + Duration::from_secs(5));
        mailbox.post_stop(soon);
        mailbox.post_finished(4);
        assert_eq!(
            mailbox.take(),
            Inbox {
                finished: vec![3, 4],
                stop: Some(soon)
            }
        );
        assert_eq!(mailbox.take(), Inbox::default());
    }

    #[test]
    fn a_wait_returns_at_once_when_something_is_posted() {
        let mailbox = Mailbox::new();
        mailbox.post_finished(1);
        // Would block for an hour if the post were not seen.
        mailbox.wait(Some(Instant::now() + Duration::from_secs(3600)));
        assert_eq!(mailbox.take().finished, vec![1]);
    }

    #[test]
    fn a_post_from_another_thread_ends_a_wait() {
        let mailbox = Arc::new(Mailbox::new());
        let poster = {
            let mailbox = mailbox.clone();
            std::thread::spawn(move || mailbox.post_finished(7))
        };
        let guard = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while seen.is_empty() && Instant::now() < guard {
            mailbox.wait(Some(guard));
            seen.extend(mailbox.take().finished);
        }
        poster.join().unwrap();
        assert_eq!(seen, vec![7]);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{Arc, thread};

    /// Two pool threads finish jobs and the handle asks for a stop while the consumer thread
    /// takes and waits: it sees every post and never sleeps through one.
    #[test]
    fn no_post_is_lost_to_a_waiting_consumer() {
        crate::loom::model(3, || {
            let mailbox = Arc::new(Mailbox::new());
            let posters: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|key| {
                    let mailbox = mailbox.clone();
                    thread::spawn(move || mailbox.post_finished(key))
                })
                .collect();
            let stopper = {
                let mailbox = mailbox.clone();
                thread::spawn(move || mailbox.post_stop(Instant::now()))
            };
            let mut finished = Vec::new();
            let mut stopped = false;
            while finished.len() < 2 || !stopped {
                let inbox = mailbox.take();
                finished.extend(inbox.finished);
                stopped |= inbox.stop.is_some();
                if finished.len() < 2 || !stopped {
                    mailbox.wait(None);
                }
            }
            finished.sort_unstable();
            assert_eq!(finished, vec![1, 2]);
            for poster in posters {
                poster.join().unwrap();
            }
            stopper.join().unwrap();
        });
    }
}

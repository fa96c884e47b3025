//! The task queues: one shared injector and one local deque per worker.
//!
//! Normally these are crossbeam-deque's lock-free `Injector`, `Worker` and `Stealer`. Under
//! `cfg(loom)` they are mutex-protected `VecDeque`s built from the loom shim, so the models can
//! explore every interleaving of the protocol around them (crossbeam-deque is not loom-aware).
//!
//! The queues carry tasks only; counting them is the admission word's job (`state.rs`).

#[cfg(not(loom))]
mod imp {
    use crossbeam_deque::Steal;

    /// The shared FIFO that submitters from outside the pool push to.
    #[derive(Debug)]
    pub(crate) struct Injector<T>(crossbeam_deque::Injector<T>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Self(crossbeam_deque::Injector::new())
        }
        pub(crate) fn push(&self, task: T) {
            self.0.push(task);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            loop {
                match self.0.steal() {
                    Steal::Success(task) => return Some(task),
                    Steal::Empty => return None,
                    Steal::Retry => {}
                }
            }
        }
    }

    /// A worker's own deque, for tasks its thread submits to its own pool.
    #[derive(Debug)]
    pub(crate) struct Local<T>(crossbeam_deque::Worker<T>);

    /// The other workers' access to a [`Local`].
    #[derive(Debug)]
    pub(crate) struct Stealer<T>(crossbeam_deque::Stealer<T>);

    impl<T> Local<T> {
        pub(crate) fn new() -> Self {
            Self(crossbeam_deque::Worker::new_fifo())
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.stealer())
        }
        pub(crate) fn push(&self, task: T) {
            self.0.push(task);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.pop()
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal(&self) -> Option<T> {
            // `steal` pins the epoch before it looks; an empty deque is the common case when a
            // searcher scans hundreds of workers' deques, and `is_empty` costs two loads.
            if self.0.is_empty() {
                return None;
            }
            loop {
                match self.0.steal() {
                    Steal::Success(task) => return Some(task),
                    Steal::Empty => return None,
                    Steal::Retry => {}
                }
            }
        }
    }
}

#[cfg(loom)]
mod imp {
    use crate::loom::{Arc, Mutex};
    use std::collections::VecDeque;

    #[derive(Debug)]
    pub(crate) struct Injector<T>(Mutex<VecDeque<T>>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Self(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, task: T) {
            self.0.lock().push_back(task);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().pop_front()
        }
    }

    #[derive(Debug)]
    pub(crate) struct Local<T>(Arc<Mutex<VecDeque<T>>>);

    #[derive(Debug)]
    pub(crate) struct Stealer<T>(Arc<Mutex<VecDeque<T>>>);

    impl<T> Local<T> {
        pub(crate) fn new() -> Self {
            Self(Arc::new(Mutex::new(VecDeque::new())))
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.clone())
        }
        pub(crate) fn push(&self, task: T) {
            self.0.lock().push_back(task);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().pop_front()
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal(&self) -> Option<T> {
            self.0.lock().pop_front()
        }
    }
}

pub(crate) use imp::*;

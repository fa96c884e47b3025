//! Shared by the benches: a latch that signals once when the last of `n` tasks ran.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// Counts tasks down and signals once when the last one ran. Every contender's tasks use it, so
/// its cost is the same on every side of a comparison.
#[derive(Clone)]
pub struct Latch(Arc<(AtomicUsize, Mutex<Option<Sender<()>>>)>);

impl Latch {
    pub fn new(n: usize) -> (Self, Receiver<()>) {
        let (tx, rx) = channel();
        (
            Latch(Arc::new((AtomicUsize::new(n), Mutex::new(Some(tx))))),
            rx,
        )
    }

    pub fn count_down(&self) {
        if self.0.0.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(tx) = self.0.1.lock().unwrap().take()
        {
            tx.send(()).unwrap();
        }
    }
}

//! An idempotent effect sink on loopback for the queue tests: workers (threads or processes)
//! deliver `WORKER KEY` lines; the sink records each key once, counts repeats as duplicates,
//! and answers `OK` (new) or `DUP` (seen). It can hold the answers to one worker — the worker's
//! effect is done but it cannot acknowledge its job — so a test can kill it at that moment.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Key → the worker whose delivery was accepted.
    accepted: HashMap<String, String>,
    duplicates: u64,
    per_worker: HashMap<String, u64>,
    /// Workers whose answers are held.
    paused: HashSet<String>,
    /// Answers held now, per worker.
    held: HashMap<String, u64>,
    closed: bool,
}

/// The sink; its threads end when it is dropped.
pub struct Sink {
    port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

/// What the sink has seen.
#[derive(Clone, Debug, Default)]
pub struct SinkLog {
    pub accepted: HashMap<String, String>,
    pub duplicates: u64,
    pub per_worker: HashMap<String, u64>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let accept_state = state.clone();
        std::thread::Builder::new()
            .name("test-sink".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_state.0.lock().unwrap().closed {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = accept_state.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &state);
                    });
                }
            })
            .expect("sink thread");
        Sink { port, state }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Holds the answers to `worker` until [`resume_all`](Self::resume_all).
    pub fn pause(&self, worker: &str) {
        self.state
            .0
            .lock()
            .unwrap()
            .paused
            .insert(worker.to_owned());
    }

    pub fn resume_all(&self) {
        self.state.0.lock().unwrap().paused.clear();
        self.state.1.notify_all();
    }

    /// Answers held for `worker` now.
    pub fn held(&self, worker: &str) -> u64 {
        let state = self.state.0.lock().unwrap();
        state.held.get(worker).copied().unwrap_or(0)
    }

    pub fn log(&self) -> SinkLog {
        let state = self.state.0.lock().unwrap();
        SinkLog {
            accepted: state.accepted.clone(),
            duplicates: state.duplicates,
            per_worker: state.per_worker.clone(),
        }
    }

    pub fn accepted(&self) -> usize {
        self.state.0.lock().unwrap().accepted.len()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.state.0.lock().unwrap().closed = true;
        self.state.1.notify_all();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, state: &(Mutex<State>, Condvar)) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let Some((worker, key)) = line.split_once(' ') else {
            writer.write_all(b"ERR\n")?;
            continue;
        };
        let (lock, signal) = state;
        let mut guard = lock.lock().unwrap();
        let fresh = !guard.accepted.contains_key(key);
        if fresh {
            guard.accepted.insert(key.to_owned(), worker.to_owned());
            *guard.per_worker.entry(worker.to_owned()).or_insert(0) += 1;
        } else {
            guard.duplicates += 1;
        }
        if guard.paused.contains(worker) {
            *guard.held.entry(worker.to_owned()).or_insert(0) += 1;
            while guard.paused.contains(worker) && !guard.closed {
                guard = signal
                    .wait_timeout(guard, Duration::from_millis(200))
                    .unwrap()
                    .0;
            }
            *guard.held.entry(worker.to_owned()).or_insert(1) -= 1;
        }
        drop(guard);
        writer.write_all(if fresh { b"OK\n" } else { b"DUP\n" })?;
    }
    Ok(())
}

/// Delivers `key` as `worker`'s effect: one connection per delivery. `Ok(true)` when it was
/// new at the sink.
pub fn deliver(sink: &str, worker: &str, key: &str) -> io::Result<bool> {
    let mut stream = TcpStream::connect(sink)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.write_all(format!("{worker} {key}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    match answer.trim() {
        "OK" => Ok(true),
        "DUP" => Ok(false),
        other => Err(io::Error::other(format!("sink answered {other:?}"))),
    }
}

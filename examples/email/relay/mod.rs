//! An SMTP relay on loopback for the email examples and tests: a small SMTP server of our own on
//! a std `TcpListener` (no TLS, nothing to compile beyond std and parking_lot) that records every
//! accepted message per recipient. It can refuse a fixed share of recipients on their first try
//! (`450`, a transient refusal) so that the sender's retries are exercised, drops a message whose
//! `X-Idempotency-Key` it has already accepted (counting it as a duplicate), and can model a relay
//! with limited capacity ([`Capacity`]). What lives elsewhere: the SMTP dialogue of one session
//! (`session.rs`), the campaign that sends to it (`../campaign.rs`).
//!
//! One thread accepts connections; each session runs on its own thread. [`Relay::stop`] (or
//! dropping the relay) stops accepting, closes the open sessions and joins every thread.

mod session;

use std::collections::{HashMap, HashSet};
use std::io::{self, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

/// The header that names a message's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-Idempotency-Key";

/// The name the relay gives itself in its replies.
pub const RELAY_NAME: &str = "relay.example.com";

/// How the relay behaves.
#[derive(Clone, Debug, Default)]
pub struct RelayOptions {
    /// Share of recipients, in percent, refused with `450` on their first try (chosen by a hash
    /// of the address, so the same ones on every run; see [`refused_on_first_try`]).
    pub refuse_first_percent: u32,
    /// The capacity model; `None`: every message is answered at once and no session is refused.
    pub capacity: Option<Capacity>,
}

/// A relay with limited capacity. With `n` sessions open, a message's end of `DATA` is answered
/// after [`latency(n)`](Capacity::latency): `base_latency` while `n <= soft_limit`, plus
/// `latency_per_excess` for every session beyond `soft_limit`. A connection that would make more
/// than `hard_limit` sessions is answered `421` and closed. A session counts from the moment it
/// is accepted until its connection closes, idle or not. `soft_limit` can be changed while the
/// relay runs ([`Relay::set_soft_limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Sessions served at the base latency (K).
    pub soft_limit: usize,
    /// The latency of a message while at most `soft_limit` sessions are open.
    pub base_latency: Duration,
    /// Latency added per session beyond `soft_limit`.
    pub latency_per_excess: Duration,
    /// The most sessions open at once; further connections are answered `421`.
    pub hard_limit: usize,
}

impl Capacity {
    /// The latency of a message answered while `sessions` sessions are open.
    pub fn latency(&self, sessions: usize) -> Duration {
        let excess = u32::try_from(sessions.saturating_sub(self.soft_limit)).unwrap_or(u32::MAX);
        self.base_latency
            .saturating_add(self.latency_per_excess.saturating_mul(excess))
    }
}

/// What the relay has seen so far.
#[derive(Clone, Debug, Default)]
pub struct RelayLog {
    /// Messages accepted (end of `DATA` answered `250`, duplicates not included), per recipient
    /// address.
    pub accepted: HashMap<String, u32>,
    /// Messages accepted in all (duplicates not included).
    pub messages: u64,
    /// Bytes of the accepted messages, as stored: dot-unstuffed, lines ending in CRLF.
    pub bytes: u64,
    /// Recipients refused with `450` on their first try.
    pub refused_first: HashSet<String>,
    /// Messages dropped because a message with the same `X-Idempotency-Key` was accepted before
    /// (answered `250`: for the sender it was delivered).
    pub duplicates: u64,
    /// Connections answered `421` because `hard_limit` sessions were open.
    pub refused_busy: u64,
    /// The most sessions open at once.
    pub peak_sessions: usize,
    /// For every message answered at the end of `DATA` (duplicates included), in order: the
    /// sessions open then and the latency the capacity model applied (zero without one).
    pub answered: Vec<(usize, Duration)>,
}

impl RelayLog {
    /// Checks that every address in `expected` received exactly one message and that no other
    /// address received any; the error lists what differs.
    pub fn verify_exactly_once<'a>(
        &self,
        expected: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut wanted = HashSet::new();
        for address in expected {
            wanted.insert(address.to_owned());
            match self.accepted.get(address).copied().unwrap_or(0) {
                1 => {}
                n => problems.push(format!("{address}: {n} messages")),
            }
        }
        for (address, n) in &self.accepted {
            if !wanted.contains(address) {
                problems.push(format!("{address}: {n} unexpected messages"));
            }
        }
        let delivered: u64 = self.accepted.values().map(|&n| u64::from(n)).sum();
        if delivered != self.messages {
            problems.push(format!(
                "{} messages accepted but {delivered} recipient deliveries recorded",
                self.messages
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            problems.sort();
            let shown = problems.len().min(10);
            Err(format!(
                "{} problems, first {shown}: {}",
                problems.len(),
                problems[..shown].join("; ")
            ))
        }
    }
}

/// A running relay on `127.0.0.1`.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the acceptor, the sessions and the handle share.
struct Shared {
    log: Mutex<RelayLog>,
    /// Keys of the messages accepted so far.
    keys: Mutex<HashSet<String>>,
    refuse_first_percent: u32,
    capacity: Option<Capacity>,
    /// The capacity model's current `soft_limit` (the one field that changes while running).
    soft_limit: AtomicUsize,
    /// Open sessions: their count, and a handle on each stream so that `stop` can close them.
    sessions: Mutex<Sessions>,
    /// Set once by `stop`; the acceptor exits when it sees it.
    stopping: AtomicBool,
}

#[derive(Default)]
struct Sessions {
    next_id: u64,
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay on `127.0.0.1` on a free port.
    pub fn start(options: RelayOptions) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            log: Mutex::new(RelayLog::default()),
            keys: Mutex::new(HashSet::new()),
            refuse_first_percent: options.refuse_first_percent,
            soft_limit: AtomicUsize::new(options.capacity.map_or(usize::MAX, |c| c.soft_limit)),
            capacity: options.capacity,
            sessions: Mutex::new(Sessions::default()),
            stopping: AtomicBool::new(false),
        });
        let acceptor_shared = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("smtp-relay".into())
            .spawn(move || accept_loop(&listener, &acceptor_shared))?;
        Ok(Relay {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port the relay listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of what the relay has recorded so far.
    pub fn log(&self) -> RelayLog {
        self.shared.log.lock().clone()
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.shared.sessions.lock().open.len()
    }

    /// The capacity model as it stands now (with the current `soft_limit`), if there is one.
    pub fn capacity(&self) -> Option<Capacity> {
        self.shared.capacity.map(|c| Capacity {
            soft_limit: self.shared.soft_limit.load(Ordering::Relaxed),
            ..c
        })
    }

    /// Changes the capacity model's `soft_limit` (K) while the relay runs; messages answered from
    /// now on use it. Without a capacity model this does nothing.
    pub fn set_soft_limit(&self, soft_limit: usize) {
        if self.shared.capacity.is_some() {
            self.shared.soft_limit.store(soft_limit, Ordering::Relaxed);
        }
    }

    /// Stops accepting, closes the open sessions, waits for every thread and returns the log.
    pub fn stop(mut self) -> RelayLog {
        self.shut_down();
        self.log()
    }

    fn shut_down(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor from `accept`; it sees `stopping` and exits. If the connection
        // fails the acceptor has already stopped on an error.
        let _ = TcpStream::connect(self.addr);
        let _ = acceptor.join();
        let threads = {
            let mut sessions = self.shared.sessions.lock();
            for stream in sessions.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut sessions.threads)
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Whether `address` is one of the recipients refused on the first try.
pub fn refused_on_first_try(address: &str, refuse_first_percent: u32) -> bool {
    fnv1a(address.as_bytes()) % 100 < u64::from(refuse_first_percent)
}

/// FNV-1a, 64 bits: a stable hash of `bytes` (which recipients are refused; the campaign's
/// content digests).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else {
            // A connection that failed before it was accepted; the next one may be fine.
            continue;
        };
        let mut sessions = shared.sessions.lock();
        sessions.threads.retain(|t| !t.is_finished());
        let hard_limit = shared.capacity.map_or(usize::MAX, |c| c.hard_limit);
        if sessions.open.len() >= hard_limit {
            drop(sessions);
            shared.log.lock().refused_busy += 1;
            let _ = stream.write_all(
                format!("421 4.3.2 {RELAY_NAME} too many sessions, try again later\r\n").as_bytes(),
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = sessions.next_id;
        sessions.next_id += 1;
        sessions.open.insert(id, handle);
        let open = sessions.open.len();
        {
            let mut log = shared.log.lock();
            log.peak_sessions = log.peak_sessions.max(open);
        }
        let session_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("smtp-session".into())
            .spawn(move || {
                // The dialogue ends with the connection (QUIT, EOF, an IO error or `stop`).
                let _ = session::serve(stream, &session_shared);
                session_shared.sessions.lock().open.remove(&id);
            });
        match spawned {
            Ok(thread) => sessions.threads.push(thread),
            Err(_) => {
                if let Some(stream) = sessions.open.remove(&id) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

//! An SMTP relay on loopback for the email examples and tests: a real SMTP server
//! (mailin-embedded) that records every accepted message per recipient, and that can refuse a
//! fixed share of recipients on their first try (`450`, a transient refusal) so that the sender's
//! retries are exercised. What lives elsewhere: the campaign that sends to it (`campaign.rs`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::Arc;

use mailin_embedded::{Handler, Response, Server, response};
use parking_lot::Mutex;

use super::campaign::content_digest;

/// What the relay has seen so far.
#[derive(Clone, Debug, Default)]
pub struct RelayLog {
    /// Messages accepted (DATA completed with `250`), per recipient address.
    pub accepted: HashMap<String, u32>,
    /// Messages accepted in all.
    pub messages: u64,
    /// Recipients refused with `450` on their first try.
    pub refused_first: HashSet<String>,
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

/// A running relay. The server thread runs until the process exits (mailin-embedded has no
/// stop); its sessions end when the sender closes its connections.
pub struct Relay {
    port: u16,
    log: Arc<Mutex<RelayLog>>,
}

impl Relay {
    /// Starts a relay on `127.0.0.1` on a free port, serving up to `sessions` SMTP connections at
    /// once, and refusing `refuse_first_percent` % of recipients (chosen by a hash of the
    /// address, so the same ones on every run) on their first try.
    pub fn start(sessions: u32, refuse_first_percent: u32) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let log = Arc::new(Mutex::new(RelayLog::default()));
        let handler = RecordingHandler {
            log: log.clone(),
            refuse_first_percent,
            to: Vec::new(),
            bytes: 0,
        };
        let mut server = Server::new(handler);
        server
            .with_name("relay.example.com")
            .with_num_threads(sessions.max(1))
            .with_tcp_listener(listener);
        std::thread::Builder::new()
            .name("smtp-relay".into())
            .spawn(move || {
                if let Err(error) = server.serve() {
                    eprintln!("smtp relay stopped: {error}");
                }
            })?;
        Ok(Relay { port, log })
    }

    /// The port the relay listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A copy of what the relay has recorded so far.
    pub fn log(&self) -> RelayLog {
        self.log.lock().clone()
    }
}

/// Whether `address` is one of the recipients refused on the first try.
pub fn refused_on_first_try(address: &str, refuse_first_percent: u32) -> bool {
    content_digest(address.as_bytes()) % 100 < u64::from(refuse_first_percent)
}

/// One SMTP session's state; mailin-embedded clones the handler for every connection.
#[derive(Clone)]
struct RecordingHandler {
    log: Arc<Mutex<RelayLog>>,
    refuse_first_percent: u32,
    /// The current transaction's recipients, from `DATA`.
    to: Vec<String>,
    /// The current message's size so far.
    bytes: usize,
}

fn bare(address: &str) -> String {
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

impl Handler for RecordingHandler {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let address = bare(to);
        if refused_on_first_try(&address, self.refuse_first_percent)
            && self.log.lock().refused_first.insert(address)
        {
            return Response::custom(450, "Mailbox busy, try again later".to_owned());
        }
        response::OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.iter().map(|address| bare(address)).collect();
        self.bytes = 0;
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.bytes += buf.len();
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if self.bytes == 0 {
            return response::TRANSACTION_FAILED;
        }
        let mut log = self.log.lock();
        log.messages += 1;
        for address in self.to.drain(..) {
            *log.accepted.entry(address).or_insert(0) += 1;
        }
        response::OK
    }
}

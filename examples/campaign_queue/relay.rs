//! The demo's use of the email relay (`examples/email/relay.rs`), in one place: start it, read
//! how many messages it accepted, and check at the end that every recipient got exactly one.
//!
//! The relay drops a message whose `X-Idempotency-Key` header it has already accepted, so a
//! job delivered again after a worker died mid-send reaches the recipient once.

use std::io;

use crate::email::relay::{Relay, RelayOptions};

pub struct DemoRelay {
    relay: Relay,
}

/// What the relay saw, at the end.
pub struct Verdict {
    /// Messages the relay accepted.
    pub sent: u64,
    /// Messages the relay dropped for a repeated idempotency key.
    pub duplicates_dropped: u64,
    /// `Ok`, or what differs from "every recipient exactly once".
    pub exactly_once: Result<(), String>,
}

impl DemoRelay {
    /// A relay on loopback refusing `refuse_first_percent` % of recipients once with `450`
    /// (so retries happen).
    pub fn start(refuse_first_percent: u32) -> io::Result<DemoRelay> {
        Ok(DemoRelay {
            relay: Relay::start(RelayOptions {
                refuse_first_percent,
                capacity: None,
            })?,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.relay.port())
    }

    /// Messages accepted so far.
    pub fn sent(&self) -> u64 {
        self.relay.log().messages
    }

    /// Checks the relay's record against the campaign's recipients.
    pub fn verdict<'a>(&self, recipients: impl IntoIterator<Item = &'a str>) -> Verdict {
        let log = self.relay.log();
        Verdict {
            sent: log.messages,
            duplicates_dropped: log.duplicates,
            exactly_once: log.verify_exactly_once(recipients),
        }
    }
}

//! The rounds of one exchange after the first: reading the replies of a round, claiming
//! entries idle past the lease, and filling what is left of the budget from the shards a probe
//! found entries in.

use std::time::Duration;

use redis::{Cmd, Value};

use super::{Purpose, RedisBackend, Taken};
use crate::queue::redis::error::Error;
use crate::queue::redis::keys::job_id;
use crate::queue::redis::queue::{is_transient, server_error};
use crate::queue::redis::reply::{self, Entry};
use crate::queue::redis::shards::shares;
use crate::queue::{Exchange, JobId, Reserved, Settlement};

impl RedisBackend {
    /// Reads the replies of a round into `exchange` and `taken`; `empty` collects shards whose
    /// read returned fewer entries than it asked for (they have no more now).
    pub(super) fn absorb(
        &mut self,
        settlements: &[Settlement],
        purposes: &[Purpose],
        replies: Vec<Value>,
        exchange: &mut Exchange,
        taken: &mut Taken,
        empty: &mut Vec<u16>,
    ) -> Result<(), Error> {
        for (purpose, value) in purposes.iter().zip(replies) {
            match *purpose {
                Purpose::Settlement(i) => {
                    let settled = self.settled(&settlements[i].action, &value)?;
                    exchange.settled[i] = settled;
                }
                Purpose::Heartbeat => self.take_members(&value)?,
                Purpose::Upkeep => {
                    if let Value::ServerError(error) = &value {
                        if error.code() == "NOGROUP" {
                            self.groups_missing = true;
                        } else if is_transient(error.code()) {
                            return Err(server_error("an upkeep script", error));
                        } else {
                            tracing::warn!(queue = %self.queue.name(), error = %error, "a Redis upkeep script failed");
                        }
                    }
                }
                Purpose::Claim(index) => {
                    if let Some(claimed) = self.check_read(&value, "the claim script")? {
                        let (cursor, entries) = reply::claim_reply(&claimed)
                            .map_err(|e| self.confused("the claim script", e))?;
                        self.cursors.insert(index, cursor);
                        for (entry, deliveries) in entries {
                            let key = (index, entry.id.clone());
                            if self.held.contains(&key) || taken.keys.contains(&key) {
                                continue; // ours already: the claim only renewed it
                            }
                            let deliveries = entry.prior.saturating_add(deliveries);
                            self.take(index, entry, deliveries, taken);
                        }
                    }
                }
                Purpose::Probe(index) => {
                    if let Some(found) = self.check_read(&value, "the probe script")? {
                        let (ready, claimable) = reply::probe(&found)
                            .map_err(|e| self.confused("the probe script", e))?;
                        if ready > 0 {
                            taken.ready.push((index, ready));
                        }
                        if claimable {
                            taken.claimable.push(index);
                        }
                    }
                }
                Purpose::Read(index, count) => {
                    if let Some(read) = self.check_read(&value, "XREADGROUP")? {
                        let streams =
                            reply::read_reply(&read).map_err(|e| self.confused("XREADGROUP", e))?;
                        let mut got = 0;
                        for (_, entries) in streams {
                            for entry in entries {
                                got += 1;
                                let deliveries = entry.prior.saturating_add(1);
                                self.take(index, entry, deliveries, taken);
                            }
                        }
                        if got < count {
                            empty.push(index);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A read's or claim's reply, unless it is an error reply: a missing group is noted (and
    /// reads as nothing), a transient error fails the exchange.
    pub(super) fn check_read(
        &mut self,
        value: &Value,
        command: &'static str,
    ) -> Result<Option<Value>, Error> {
        match value {
            Value::ServerError(error) if error.code() == "NOGROUP" => {
                self.groups_missing = true;
                Ok(None)
            }
            Value::ServerError(error) => Err(server_error(command, error)),
            other => Ok(Some(other.clone())),
        }
    }

    pub(super) fn take(&self, index: u16, entry: Entry, deliveries: u32, taken: &mut Taken) {
        taken.keys.push((index, entry.id.clone()));
        taken.reserved.push(Reserved {
            id: JobId::text(job_id(index, &entry.id)),
            body: entry.body,
            deliveries: deliveries.max(1),
            lease: self.lease,
        });
    }

    /// One round: sends `commands` and reads their replies.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_round(
        &mut self,
        settlements: &[Settlement],
        commands: &[(u16, Cmd)],
        purposes: &[Purpose],
        block: Option<Duration>,
        exchange: &mut Exchange,
        taken: &mut Taken,
        empty: &mut Vec<u16>,
    ) -> Result<(), Error> {
        if commands.is_empty() {
            return Ok(());
        }
        let replies = self.link.round(commands, block)?;
        self.absorb(settlements, purposes, replies, exchange, taken, empty)
    }

    /// The rounds after the first: their failure leaves what the first round took standing
    /// (entries this round may have moved into the consumer's pending list are claimed after
    /// the lease, by whoever reads the shard).
    pub(super) fn later_round(
        &mut self,
        commands: &[(u16, Cmd)],
        purposes: &[Purpose],
        block: Option<Duration>,
        exchange: &mut Exchange,
        taken: &mut Taken,
        empty: &mut Vec<u16>,
    ) -> bool {
        match self.run_round(&[], commands, purposes, block, exchange, taken, empty) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(consumer = %self.consumer, %error, "a Redis read failed; its entries come back after the lease");
                false
            }
        }
    }

    /// Claims up to `max` entries idle past the lease from the shards the probes found them
    /// in, the budget shared among those shards.
    pub(super) fn claim(&mut self, max: usize, exchange: &mut Exchange, taken: &mut Taken) {
        let claimable = std::mem::take(&mut taken.claimable);
        let (mut commands, mut purposes) = (Vec::new(), Vec::new());
        let plan = shares(&claimable, max, self.claim_rotate);
        self.claim_rotate = self.claim_rotate.wrapping_add(1);
        for (index, count) in plan {
            if let Some(shard) = self.shard(index) {
                commands.push((shard.slot, self.claim_cmd(shard, count)));
                purposes.push(Purpose::Claim(index));
            }
        }
        let mut empty = Vec::new();
        self.later_round(&commands, &purposes, None, exchange, taken, &mut empty);
    }

    /// Reads what is left of `max` from shards known to have entries: a probe of every shard
    /// (one round), then reads from this consumer's shards that have entries or, when none
    /// has, from other consumers' (the group hands each entry to one consumer, so helping is
    /// safe; it drains a dead consumer's shards before the split moves on).
    pub(super) fn fill(&mut self, max: usize, exchange: &mut Exchange, taken: &mut Taken) {
        if taken.reserved.len() >= max {
            return;
        }
        let (mut commands, mut purposes) = (Vec::new(), Vec::new());
        for shard in &self.opened.shards {
            commands.push((shard.slot, self.probe_cmd(shard, false)));
            purposes.push(Purpose::Probe(shard.index));
        }
        taken.ready.clear();
        let mut empty = Vec::new();
        if !self.later_round(&commands, &purposes, None, exchange, taken, &mut empty) {
            return;
        }
        let ready = std::mem::take(&mut taken.ready);
        let mine: Vec<u16> = ready
            .iter()
            .map(|&(k, _)| k)
            .filter(|k| self.owned.contains(k))
            .collect();
        let targets: Vec<u16> = if mine.is_empty() {
            ready.iter().map(|&(k, _)| k).collect()
        } else {
            mine
        };
        let left = max - taken.reserved.len();
        let (mut commands, mut purposes) = (Vec::new(), Vec::new());
        for (index, count) in shares(&targets, left, self.rotate) {
            if let Some(shard) = self.shard(index) {
                commands.push((shard.slot, self.read_cmd(shard, count, None)));
                purposes.push(Purpose::Read(index, count));
            }
        }
        self.rotate = self.rotate.wrapping_add(1);
        self.later_round(&commands, &purposes, None, exchange, taken, &mut empty);
    }
}

//! [`RedisBackend`]: a queue on Redis Streams as a [`Backend`] for the consumer. One exchange
//! is one round trip in the common case: the settlements (as scripts, see `scripts.rs`), the
//! due upkeep (heartbeat, moving due retries, trimming) and the reads of the consumer's shards
//! go out as one pipeline per node. A second round follows only to claim abandoned entries,
//! to read more from shards that had more, or to wait on an empty queue.
//!
//! What lives where: the settings (`builder.rs`), the commands and their replies
//! (`commands.rs`), the rounds after the first (`rounds.rs`); the protocol in `../README.md`.

mod builder;
mod commands;
mod rounds;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use super::error::Error;
use super::keys::{ShardKeys, parse_job_id};
use super::link::{Link, Timeouts};
use super::queue::{self, Opened, QueueStats, RedisQueue, eval, server_error};
use super::reply;
use super::scripts;
use crate::queue::{Backend, Exchange, Reserved, Settle, Settled, Settlement};

pub use builder::RedisBackendBuilder;
pub(crate) use builder::split_urls;

/// Retried jobs moved from a shard's delayed set per pass, at most.
const MOVE_LIMIT: usize = 256;
/// How often due retries are moved back into the streams.
const MOVE_EVERY: Duration = Duration::from_millis(200);
/// How often the consumer trims the streams it reads and prunes idle consumers.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// A consumer's view of a queue on Redis Streams, single server or cluster.
///
/// - **Reserve:** `XREADGROUP … COUNT n STREAMS shard >` on the shards this consumer reads,
///   `n` shared among them so that all of them together never hand over more than the
///   consumer asked for (its target's free slots plus the prefetch). With nothing to read, one
///   read waits in Redis (`BLOCK`, at most [`max_block`](RedisBackendBuilder::max_block)).
/// - **Acknowledge:** `XACK`. Acknowledged entries are trimmed later (`XTRIM MINID ~` below
///   the oldest entry still pending or undelivered in any group).
/// - **Retry:** a script acknowledges and deletes the entry and adds its body back, with its
///   delivery count, to the shard's delayed set, due after the back-off; the consumer moves due
///   entries back into the stream, where they are read as new entries.
/// - **Lease:** `XCLAIM … 0 id JUSTID` by the entry's owner, which resets its idle time.
/// - **Claim:** `XAUTOCLAIM` of entries idle past the lease, on the shards this consumer reads.
/// - **Dead letter:** the entry, its deliveries and the reason go to the shard's dead-letter
///   stream, in the same script that acknowledges it.
/// - **Shards:** consumers record heartbeats in a sorted set and share the shards out by name
///   (see [`RedisQueue`]); a consumer that stops leaves at once, one that dies when its
///   heartbeat ages past the lease.
///
/// Leases live in Redis under the consumer's name, so they survive reconnects:
/// [`session`](Backend::session) never changes.
///
/// ```no_run
/// use uberpool::queue::redis::{RedisBackend, RedisQueue};
/// use uberpool::queue::{Consumer, Outcome};
/// use uberpool::SchedulerService;
///
/// let service = SchedulerService::builder().build()?;
/// let queue = RedisQueue::new("emails");
/// let backend = RedisBackend::connect("redis://10.0.0.5:7000,redis://10.0.0.6:7000", &queue)?;
/// let consumer = Consumer::builder(backend).start(&service.io(), |job| {
///     println!("sending {:?}", job.text());
///     Outcome::Done
/// })?;
/// let report = consumer.stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisBackend {
    link: Link,
    queue: RedisQueue,
    opened: Opened,
    consumer: String,
    lease: Duration,
    max_block: Duration,
    /// The shards this consumer reads now (from the last heartbeat).
    owned: Vec<u16>,
    /// Live consumers at the last heartbeat.
    members: usize,
    /// Where the next share of reads starts among `owned`.
    rotate: usize,
    /// Where the next claim pass starts among `owned`.
    claim_rotate: usize,
    /// Entries handed to the consumer and not yet settled: a claim that finds one of them
    /// (its lease ran out here) only renews it, never hands it over twice.
    held: HashSet<(u16, String)>,
    /// `XAUTOCLAIM` cursors per shard.
    cursors: HashMap<u16, String>,
    next_heartbeat: Instant,
    next_move: Instant,
    next_claim: Instant,
    next_trim: Instant,
    /// A read found the group missing (the stream was deleted): create it again.
    groups_missing: bool,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("link", &self.link)
            .field("queue", &self.queue)
            .field("consumer", &self.consumer)
            .field("owned", &self.owned)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

/// What each command of a round is for.
#[derive(Clone, Copy, Debug)]
enum Purpose {
    Settlement(usize),
    Heartbeat,
    Upkeep,
    Claim(u16),
    Read(u16, usize),
    Probe(u16),
}

/// Entries reserved in this exchange, before they are handed over, and what the probes found.
#[derive(Default)]
struct Taken {
    reserved: Vec<Reserved>,
    keys: Vec<(u16, String)>,
    /// Shards a probe found with undelivered entries, and how many.
    ready: Vec<(u16, u64)>,
    /// Shards a probe found with entries idle past the lease.
    claimable: Vec<u16>,
}

impl RedisBackend {
    /// Settings for a consumer of `queue` at `urls` (comma-separated; several are seeds of a
    /// cluster).
    pub fn builder(urls: &str, queue: &RedisQueue) -> RedisBackendBuilder {
        RedisBackendBuilder {
            urls: split_urls(urls),
            queue: queue.clone(),
            consumer: None,
            lease: Duration::from_secs(30),
            max_block: Duration::from_secs(2),
            timeouts: Timeouts {
                connect: Duration::from_secs(5),
                io: Duration::from_secs(5),
            },
        }
    }

    /// Connects with the default settings.
    pub fn connect(urls: &str, queue: &RedisQueue) -> Result<RedisBackend, Error> {
        RedisBackend::builder(urls, queue).connect()
    }

    /// The consumer's name in the group.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// The queue's shard count.
    pub fn shard_count(&self) -> u16 {
        self.opened.shards.len() as u16
    }

    /// The shards this consumer reads now.
    pub fn owned_shards(&self) -> &[u16] {
        &self.owned
    }

    /// The queue's figures now.
    pub fn stats(&mut self) -> Result<QueueStats, Error> {
        queue::stats(&mut self.link, &self.opened)
    }

    /// Trims every shard now (the consumer does so every 10 s on the shards it reads): removes
    /// acknowledged entries below the oldest entry still pending or undelivered in any group,
    /// whole stream nodes at a time (`MINID ~`). Returns the entries removed.
    pub fn trim(&mut self) -> Result<u64, Error> {
        let commands: Vec<(u16, Cmd)> = self
            .opened
            .shards
            .iter()
            .map(|s| (s.slot, eval(scripts::TRIM, &[&s.stream], &[])))
            .collect();
        let mut removed = 0;
        for value in self.link.round(&commands, None)? {
            if let Value::ServerError(error) = &value {
                return Err(server_error("the trim script", error));
            }
            removed += reply::count(&value).map_err(|e| self.confused("the trim script", e))?;
        }
        Ok(removed)
    }

    fn shard(&self, index: u16) -> Option<&ShardKeys> {
        self.opened.shards.get(usize::from(index))
    }
}

impl Backend for RedisBackend {
    type Error = Error;

    fn source(&self) -> String {
        format!(
            "{} queue {} group {} consumer {}",
            self.link.describe(),
            self.queue.name(),
            self.queue.group_name(),
            self.consumer
        )
    }

    fn exchange(
        &mut self,
        settlements: &[Settlement],
        max: usize,
        wait: Duration,
    ) -> Result<Exchange, Error> {
        let now = Instant::now();
        if self.groups_missing {
            queue::create_groups(&mut self.link, &self.queue, &self.opened.shards)?;
            self.groups_missing = false;
        }
        let mut exchange = Exchange {
            settled: vec![Settled::Gone; settlements.len()],
            ..Exchange::default()
        };
        let mut commands = Vec::with_capacity(settlements.len() + self.owned.len() * 2 + 1);
        let mut purposes = Vec::with_capacity(commands.capacity());
        for (i, settlement) in settlements.iter().enumerate() {
            if settlement.action != Settle::ExtendLease
                && let Some((index, entry)) = parse_job_id(&settlement.job.to_string())
            {
                self.held.remove(&(index, entry.to_owned()));
            }
            match self.settlement_cmd(settlement) {
                Ok(command) => {
                    commands.push(command);
                    purposes.push(Purpose::Settlement(i));
                }
                Err(reason) => exchange.settled[i] = Settled::Failed(reason),
            }
        }
        if now >= self.next_heartbeat {
            commands.push(self.heartbeat_cmd("join"));
            purposes.push(Purpose::Heartbeat);
        }
        self.upkeep(now, &mut commands, &mut purposes);
        let claim_due = max > 0 && now >= self.next_claim;
        if claim_due {
            self.next_claim = now + (self.lease / 4).max(Duration::from_millis(25));
            // Every shard this consumer reads is probed for entries idle past the lease; the
            // claims follow, only where there are some, within the budget.
            for &index in &self.owned {
                if let Some(shard) = self.shard(index) {
                    commands.push((shard.slot, self.probe_cmd(shard, true)));
                    purposes.push(Purpose::Probe(index));
                }
            }
        } else {
            self.reads(max, &mut commands, &mut purposes);
        }
        let mut taken = Taken::default();
        let mut empty = Vec::new();
        self.run_round(
            settlements,
            &commands,
            &purposes,
            None,
            &mut exchange,
            &mut taken,
            &mut empty,
        )?;
        if claim_due && !taken.claimable.is_empty() {
            self.claim(max, &mut exchange, &mut taken);
        }
        // Claims took part of the budget, or some shards had fewer than their share: read the
        // rest from the shards that have more.
        if max > 0 {
            self.fill(max, &mut exchange, &mut taken);
        }
        // Nothing anywhere: wait in Redis on one shard (in turn) for the next entry.
        if taken.reserved.is_empty() && max > 0 && !wait.is_zero() && !self.owned.is_empty() {
            let index = self.owned[self.rotate % self.owned.len()];
            if let Some(shard) = self.shard(index) {
                let block = wait.min(self.max_block);
                let command = (shard.slot, self.read_cmd(shard, max, Some(block)));
                let mut ignored = Vec::new();
                self.later_round(
                    &[command],
                    &[Purpose::Read(index, max)],
                    Some(block),
                    &mut exchange,
                    &mut taken,
                    &mut ignored,
                );
            }
        }
        self.held.extend(taken.keys);
        exchange.reserved = taken.reserved;
        Ok(exchange)
    }

    fn reconnect(&mut self) -> Result<(), Error> {
        self.link.disconnect();
        self.link.rediscover()?;
        self.next_heartbeat = Instant::now();
        if self.groups_missing {
            queue::create_groups(&mut self.link, &self.queue, &self.opened.shards)?;
            self.groups_missing = false;
        }
        Ok(())
    }

    fn session(&self) -> u64 {
        0
    }
}

impl Drop for RedisBackend {
    /// Leaves the shard split at once (the others re-balance at their next heartbeat) and
    /// removes this consumer from the groups of shards where it holds nothing. Best effort:
    /// a failure here only means the others wait for the heartbeat to lapse.
    fn drop(&mut self) {
        let mut commands = vec![self.heartbeat_cmd("leave")];
        let group = self.queue.group_name().as_bytes();
        for shard in &self.opened.shards {
            commands.push((
                shard.slot,
                eval(
                    scripts::LEAVE,
                    &[&shard.stream],
                    &[group, self.consumer.as_bytes()],
                ),
            ));
        }
        if let Err(error) = self.link.round(&commands, None) {
            tracing::debug!(consumer = %self.consumer, %error, "could not leave the queue's consumers");
        }
    }
}

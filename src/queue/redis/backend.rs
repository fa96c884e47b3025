//! [`RedisBackend`]: a queue on Redis Streams as a [`Backend`] for the consumer. One exchange
//! is one round trip in the common case: the settlements (as scripts, see `scripts.rs`), the
//! due upkeep (heartbeat, moving due retries, trimming) and the reads of the consumer's shards
//! go out as one pipeline per node. A second round follows only to claim abandoned entries,
//! to read more from shards that had more, or to wait on an empty queue.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use super::error::Error;
use super::keys::{ShardKeys, check_name, job_id, parse_job_id};
use super::link::{Link, Timeouts};
use super::queue::{self, Opened, QueueStats, RedisQueue, eval, is_transient, server_error};
use super::reply::{self, Entry};
use super::scripts;
use super::shards::{assign, shares};
use crate::queue::{Backend, Exchange, JobId, Reserved, Settle, Settled, Settlement};

/// Retried jobs moved from a shard's delayed set per pass, at most.
const MOVE_LIMIT: usize = 256;
/// How often due retries are moved back into the streams.
const MOVE_EVERY: Duration = Duration::from_millis(200);
/// How often the consumer trims the streams it reads and prunes idle consumers.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Settings of a [`RedisBackend`]; made by [`RedisBackend::builder`].
#[derive(Clone, Debug)]
pub struct RedisBackendBuilder {
    urls: Vec<String>,
    queue: RedisQueue,
    consumer: Option<String>,
    lease: Duration,
    max_block: Duration,
    timeouts: Timeouts,
}

impl RedisBackendBuilder {
    /// The consumer's name in the group (default: `c-PID-RANDOM`, new for every backend). A
    /// name must be unique among live consumers; a process that restarts under its old name
    /// takes back its old pending entries when their lease runs out, like anyone else.
    pub fn consumer_name(mut self, name: &str) -> Self {
        self.consumer = Some(name.to_owned());
        self
    }

    /// How long an entry stays this consumer's without a lease extension (default 30 s, at
    /// least 100 ms). The consumer extends a running job's lease at half of it; an entry idle
    /// past it — its consumer died or stalled — is claimed by the consumer that reads its
    /// shard. A consumer whose heartbeat is older than the lease leaves the shard split.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// The longest a read waits in Redis for a new entry (default 2 s; the consumer's own
    /// `reserve_wait` is shorter by default).
    pub fn max_block(mut self, block: Duration) -> Self {
        self.max_block = block.clamp(Duration::from_millis(1), Duration::from_secs(60));
        self
    }

    /// Connect and IO timeouts (default 5 s each, at least 1 ms). A blocking read waits its
    /// block time on top of the IO timeout.
    pub fn timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.timeouts = Timeouts {
            connect: connect.max(Duration::from_millis(1)),
            io: io.max(Duration::from_millis(1)),
        };
        self
    }

    /// Connects, opens the queue (creating its group where missing) and joins its consumers.
    pub fn connect(self) -> Result<RedisBackend, Error> {
        let consumer = match self.consumer {
            Some(name) => {
                check_name("consumer", &name)?;
                name
            }
            None => default_consumer_name(),
        };
        let mut link = Link::connect(&self.urls, self.timeouts)?;
        let opened = queue::open(&mut link, &self.queue)?;
        let now = Instant::now();
        let mut backend = RedisBackend {
            link,
            queue: self.queue,
            opened,
            consumer,
            lease: self.lease,
            max_block: self.max_block,
            owned: Vec::new(),
            members: 0,
            rotate: 0,
            claim_rotate: 0,
            held: HashSet::new(),
            cursors: HashMap::new(),
            next_heartbeat: now,
            next_move: now,
            next_claim: now,
            next_trim: now + TRIM_EVERY,
            groups_missing: false,
        };
        backend.heartbeat("join")?;
        Ok(backend)
    }
}

fn default_consumer_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("c-{}-{:08x}", std::process::id(), hasher.finish() as u32)
}

/// Splits `urls` at commas: `redis://host:port` or `host:port`, one or more (several: seeds of
/// a cluster).
pub(crate) fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

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

    fn heartbeat_cmd(&self, mode: &str) -> (u16, Cmd) {
        let ttl = self.lease.as_millis().to_string();
        (
            self.opened.keys.slot,
            eval(
                scripts::HEARTBEAT,
                &[&self.opened.keys.members],
                &[self.consumer.as_bytes(), ttl.as_bytes(), mode.as_bytes()],
            ),
        )
    }

    /// Sends a heartbeat on its own and takes the shard split it returns.
    fn heartbeat(&mut self, mode: &str) -> Result<(), Error> {
        let (slot, cmd) = self.heartbeat_cmd(mode);
        let value = self.link.query(slot, cmd)?;
        self.take_members(&value)
    }

    fn take_members(&mut self, value: &Value) -> Result<(), Error> {
        if let Value::ServerError(error) = value {
            return Err(server_error("the heartbeat script", error));
        }
        let members =
            reply::strings(value).map_err(|e| self.confused("the heartbeat script", e))?;
        let owned = assign(&members, &self.consumer, self.shard_count());
        if owned != self.owned {
            tracing::debug!(consumer = %self.consumer, members = members.len(), ?owned, "shards re-balanced");
            self.rotate = 0;
        }
        self.owned = owned;
        self.members = members.len();
        self.next_heartbeat = Instant::now() + (self.lease / 4).max(Duration::from_millis(25));
        Ok(())
    }

    /// A reply that does not answer its command: the connections are dropped.
    fn confused(&mut self, command: &'static str, detail: String) -> Error {
        self.link.disconnect();
        Error::reply(command, detail)
    }

    /// The command carrying `settlement` out, or why it cannot be.
    fn settlement_cmd(&self, settlement: &Settlement) -> Result<(u16, Cmd), String> {
        let text = settlement.job.to_string();
        let Some((index, entry)) = parse_job_id(&text) else {
            return Err(format!("{text} is not a Redis queue job id"));
        };
        let Some(shard) = self.shard(index) else {
            return Err(format!("{text}: the queue has no shard {index}"));
        };
        let group = self.queue.group_name().as_bytes();
        let me = self.consumer.as_bytes();
        let cmd = match &settlement.action {
            Settle::Ack => {
                let mut cmd = redis::cmd("XACK");
                cmd.arg(&shard.stream).arg(group).arg(entry);
                cmd
            }
            Settle::Retry { delay } => {
                let ms = delay.as_millis().min(u128::from(u64::MAX)).to_string();
                eval(
                    scripts::RETRY,
                    &[&shard.stream, &shard.delayed],
                    &[group, me, entry.as_bytes(), ms.as_bytes()],
                )
            }
            Settle::DeadLetter { reason } => eval(
                scripts::DEAD_LETTER,
                &[&shard.stream, &shard.dead],
                &[group, me, entry.as_bytes(), reason.as_bytes()],
            ),
            Settle::ExtendLease => eval(
                scripts::EXTEND,
                &[&shard.stream],
                &[group, me, entry.as_bytes()],
            ),
        };
        Ok((shard.slot, cmd))
    }

    fn read_cmd(&self, shard: &ShardKeys, count: usize, block: Option<Duration>) -> Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(self.queue.group_name())
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&shard.stream).arg(">");
        cmd
    }

    fn claim_cmd(&self, shard: &ShardKeys, count: usize) -> Cmd {
        let cursor = self.cursors.get(&shard.index).map_or("0-0", String::as_str);
        let idle = self.lease.as_millis().to_string();
        let count = count.to_string();
        eval(
            scripts::CLAIM,
            &[&shard.stream],
            &[
                self.queue.group_name().as_bytes(),
                self.consumer.as_bytes(),
                idle.as_bytes(),
                cursor.as_bytes(),
                count.as_bytes(),
            ],
        )
    }

    /// The upkeep due now, per shard read: moving due retries, trimming, pruning.
    fn upkeep(
        &mut self,
        now: Instant,
        commands: &mut Vec<(u16, Cmd)>,
        purposes: &mut Vec<Purpose>,
    ) {
        let move_due = now >= self.next_move;
        let trim_due = now >= self.next_trim;
        if move_due {
            self.next_move = now + MOVE_EVERY;
        }
        if trim_due {
            self.next_trim = now + TRIM_EVERY;
        }
        let limit = MOVE_LIMIT.to_string();
        let group = self.queue.group_name().as_bytes();
        let idle = (self.lease * 2).as_millis().to_string();
        for &index in &self.owned {
            let Some(shard) = self.shard(index) else {
                continue;
            };
            if move_due {
                commands.push((
                    shard.slot,
                    eval(
                        scripts::MOVE_DUE,
                        &[&shard.delayed, &shard.stream],
                        &[limit.as_bytes()],
                    ),
                ));
                purposes.push(Purpose::Upkeep);
            }
            if trim_due {
                commands.push((shard.slot, eval(scripts::TRIM, &[&shard.stream], &[])));
                purposes.push(Purpose::Upkeep);
                commands.push((
                    shard.slot,
                    eval(scripts::PRUNE, &[&shard.stream], &[group, idle.as_bytes()]),
                ));
                purposes.push(Purpose::Upkeep);
            }
        }
    }

    /// Reads of `budget` entries shared among the shards this consumer reads.
    fn reads(
        &mut self,
        budget: usize,
        commands: &mut Vec<(u16, Cmd)>,
        purposes: &mut Vec<Purpose>,
    ) {
        let plan = shares(&self.owned, budget, self.rotate);
        self.rotate = self.rotate.wrapping_add(1);
        for (index, count) in plan {
            if let Some(shard) = self.shard(index) {
                commands.push((shard.slot, self.read_cmd(shard, count, None)));
                purposes.push(Purpose::Read(index, count));
            }
        }
    }

    /// Reads the replies of a round into `exchange` and `taken`; `empty` collects shards whose
    /// read returned fewer entries than it asked for (they have no more now).
    fn absorb(
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
    fn check_read(&mut self, value: &Value, command: &'static str) -> Result<Option<Value>, Error> {
        match value {
            Value::ServerError(error) if error.code() == "NOGROUP" => {
                self.groups_missing = true;
                Ok(None)
            }
            Value::ServerError(error) => Err(server_error(command, error)),
            other => Ok(Some(other.clone())),
        }
    }

    fn take(&self, index: u16, entry: Entry, deliveries: u32, taken: &mut Taken) {
        taken.keys.push((index, entry.id.clone()));
        taken.reserved.push(Reserved {
            id: JobId::text(job_id(index, &entry.id)),
            body: entry.body,
            deliveries: deliveries.max(1),
            lease: self.lease,
        });
    }

    /// What a settlement's reply says.
    fn settled(&mut self, action: &Settle, value: &Value) -> Result<Settled, Error> {
        let command = match action {
            Settle::Ack => "XACK",
            Settle::Retry { .. } => "the retry script",
            Settle::DeadLetter { .. } => "the dead-letter script",
            Settle::ExtendLease => "the lease script",
        };
        match value {
            Value::Int(0) => Ok(Settled::Gone),
            Value::Int(_) => Ok(Settled::Applied),
            Value::ServerError(error) if error.code() == "NOGROUP" => Ok(Settled::Gone),
            Value::ServerError(error) if is_transient(error.code()) => {
                Err(server_error(command, error))
            }
            Value::ServerError(error) => {
                Ok(Settled::Failed(server_error(command, error).to_string()))
            }
            other => Err(self.confused(command, reply::describe(other))),
        }
    }

    /// One round: sends `commands` and reads their replies.
    #[allow(clippy::too_many_arguments)]
    fn run_round(
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
    fn later_round(
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

    fn probe_cmd(&self, shard: &ShardKeys, claims: bool) -> Cmd {
        let idle = if claims {
            self.lease.as_millis().to_string()
        } else {
            String::new()
        };
        eval(
            scripts::PROBE,
            &[&shard.stream],
            &[self.queue.group_name().as_bytes(), idle.as_bytes()],
        )
    }

    /// Claims up to `max` entries idle past the lease from the shards the probes found them
    /// in, the budget shared among those shards.
    fn claim(&mut self, max: usize, exchange: &mut Exchange, taken: &mut Taken) {
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
    fn fill(&mut self, max: usize, exchange: &mut Exchange, taken: &mut Taken) {
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

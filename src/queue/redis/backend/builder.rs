//! [`RedisBackendBuilder`]: the settings of a [`RedisBackend`] and connecting it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{RedisBackend, TRIM_EVERY};
use crate::queue::redis::error::Error;
use crate::queue::redis::keys::check_name;
use crate::queue::redis::link::{Link, Timeouts};
use crate::queue::redis::queue::{self, RedisQueue};

/// Settings of a [`RedisBackend`]; made by [`RedisBackend::builder`].
#[derive(Clone, Debug)]
pub struct RedisBackendBuilder {
    pub(super) urls: Vec<String>,
    pub(super) queue: RedisQueue,
    pub(super) consumer: Option<String>,
    pub(super) lease: Duration,
    pub(super) max_block: Duration,
    pub(super) timeouts: Timeouts,
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

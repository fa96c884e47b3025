//! [`Producer`]: adds jobs to a queue's shards, in turn, pipelined — one round trip per batch
//! however many nodes the shards live on — and reads the queue's figures and dead letters.

use std::time::Duration;

use redis::{Cmd, Value};

use super::error::Error;
use super::keys::job_id;
use super::link::{Link, Timeouts};
use super::queue::{self, Opened, QueueStats, RedisQueue, server_error};
use super::reply::{self, BODY_FIELD};

/// Jobs per round trip at most in [`Producer::put_batch`].
pub const BATCH_JOBS: usize = 512;

/// Adds jobs to a queue on Redis Streams, spreading them over its shards in turn.
///
/// ```no_run
/// use uberpool::queue::redis::{Producer, RedisQueue};
///
/// let mut producer = Producer::connect("redis://127.0.0.1:6379", &RedisQueue::new("emails"))?;
/// let bodies: Vec<Vec<u8>> = (0..1000).map(|i| format!("recipient {i}").into_bytes()).collect();
/// let results = producer.put_batch(bodies.iter().map(|b| &b[..]));
/// assert!(results.iter().all(Result::is_ok));
/// # Ok::<(), uberpool::queue::redis::Error>(())
/// ```
pub struct Producer {
    link: Link,
    queue: RedisQueue,
    opened: Opened,
    next: usize,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("link", &self.link)
            .field("queue", &self.queue)
            .field("shards", &self.opened.shards.len())
            .finish_non_exhaustive()
    }
}

/// One dead letter: a job given up, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The shard it came from.
    pub shard: u16,
    /// Its entry id in the shard's stream when it was given up.
    pub entry: String,
    /// The job's body.
    pub body: Vec<u8>,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// Why it was given up.
    pub reason: String,
}

impl Producer {
    /// Connects to `urls` (comma-separated; several are seeds of a cluster) and opens `queue`
    /// (fixing its shard count and creating its group where missing).
    pub fn connect(urls: &str, queue: &RedisQueue) -> Result<Producer, Error> {
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            io: Duration::from_secs(10),
        };
        let mut link = Link::connect(&super::backend::split_urls(urls), timeouts)?;
        let opened = queue::open(&mut link, queue)?;
        Ok(Producer {
            link,
            queue: queue.clone(),
            opened,
            next: 0,
        })
    }

    /// The queue.
    pub fn queue(&self) -> &RedisQueue {
        &self.queue
    }

    /// The queue's shard count.
    pub fn shard_count(&self) -> u16 {
        self.opened.shards.len() as u16
    }

    /// `true` when connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.link.is_cluster()
    }

    /// The node serving `shard`, `host:port`.
    pub fn node_of(&self, shard: u16) -> Option<&str> {
        let shard = self.opened.shards.get(usize::from(shard))?;
        self.link.node_of(shard.slot)
    }

    /// Adds one job; returns its id (`SHARD/ENTRY-ID`, as the consumer's deliveries show it).
    pub fn put(&mut self, body: &[u8]) -> Result<String, Error> {
        self.put_batch([body])
            .pop()
            .unwrap_or_else(|| Err(Error::Unavailable("no reply to the put".into())))
    }

    /// Adds every job of `bodies`, spread over the shards in turn, [`BATCH_JOBS`] per round
    /// trip. Returns one result per job, in order: its id, or why it was not added. When a
    /// round fails, its jobs get the error: each may or may not be in the queue, and only an
    /// idempotent consumer may safely add them again.
    pub fn put_batch<'a>(
        &mut self,
        bodies: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<Result<String, Error>> {
        let mut results = Vec::new();
        let mut chunk: Vec<(u16, Cmd)> = Vec::new();
        let mut shards: Vec<u16> = Vec::new();
        for body in bodies {
            let count = self.opened.shards.len().max(1);
            let shard = &self.opened.shards[self.next % count];
            self.next = self.next.wrapping_add(1);
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&shard.stream).arg("*").arg(BODY_FIELD).arg(body);
            chunk.push((shard.slot, cmd));
            shards.push(shard.index);
            if chunk.len() >= BATCH_JOBS {
                self.send(&chunk, &shards, &mut results);
                chunk.clear();
                shards.clear();
            }
        }
        if !chunk.is_empty() {
            self.send(&chunk, &shards, &mut results);
        }
        results
    }

    fn send(
        &mut self,
        chunk: &[(u16, Cmd)],
        shards: &[u16],
        results: &mut Vec<Result<String, Error>>,
    ) {
        match self.link.round(chunk, None) {
            Ok(replies) => {
                for (&shard, value) in shards.iter().zip(replies) {
                    results.push(match value {
                        Value::ServerError(error) => Err(server_error("XADD", &error)),
                        other => reply::entry_id(&other)
                            .map(|id| job_id(shard, &id))
                            .map_err(|e| Error::reply("XADD", e)),
                    });
                }
            }
            Err(error) => {
                let message = error.to_string();
                results.push(Err(error));
                for _ in 1..chunk.len() {
                    results.push(Err(Error::Unavailable(message.clone())));
                }
            }
        }
    }

    /// The queue's figures now.
    pub fn stats(&mut self) -> Result<QueueStats, Error> {
        queue::stats(&mut self.link, &self.opened)
    }

    /// Up to `limit` dead letters of every shard, oldest first per shard.
    pub fn dead_letters(&mut self, limit: usize) -> Result<Vec<DeadLetter>, Error> {
        let commands: Vec<(u16, Cmd)> = self
            .opened
            .shards
            .iter()
            .map(|s| {
                let mut cmd = redis::cmd("XRANGE");
                cmd.arg(&s.dead).arg("-").arg("+").arg("COUNT").arg(limit);
                (s.slot, cmd)
            })
            .collect();
        let replies = self.link.round(&commands, None)?;
        let mut out = Vec::new();
        for (shard, value) in self.opened.shards.iter().zip(replies) {
            if let Value::ServerError(error) = &value {
                return Err(server_error("XRANGE", error));
            }
            let entries = reply::array(&value).map_err(|e| Error::reply("XRANGE", e))?;
            for entry in entries {
                let letter =
                    dead_letter(shard.index, entry).map_err(|e| Error::reply("XRANGE", e))?;
                out.push(letter);
            }
        }
        Ok(out)
    }
}

/// One dead-letter entry `[id, [field, value…]]`.
pub(crate) fn dead_letter(shard: u16, value: &Value) -> reply::ReplyResult<DeadLetter> {
    let items = reply::array(value)?;
    let [_, fields] = items else {
        return Err(format!("a dead letter of {} items", items.len()));
    };
    let fields = reply::array(fields)?;
    let mut letter = DeadLetter {
        shard,
        entry: String::new(),
        body: Vec::new(),
        deliveries: 0,
        reason: String::new(),
    };
    for pair in fields.chunks_exact(2) {
        let value = &pair[1];
        match reply::bytes(&pair[0])? {
            b"id" => letter.entry = reply::text(value)?,
            b"b" => letter.body = reply::bytes(value)?.to_vec(),
            b"n" => {
                letter.deliveries = u32::try_from(reply::count(value)?).unwrap_or(u32::MAX);
            }
            b"reason" => letter.reason = String::from_utf8_lossy(reply::bytes(value)?).into_owned(),
            _ => {}
        }
    }
    Ok(letter)
}

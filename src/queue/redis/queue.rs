//! [`RedisQueue`]: what names a queue on Redis (its name, consumer group and shard count),
//! opening it (the shard count fixed by the first user, the group created on every shard), and
//! reading its figures ([`QueueStats`]).

use redis::{Cmd, Value};

use super::error::Error;
use super::keys::{MAX_SHARDS, QueueKeys, ShardKeys, check_name};
use super::link::Link;
use super::reply::{self, ShardFigures};
use super::scripts;

/// A queue on Redis Streams: a name, the consumer group that works it, and how many shards
/// (streams) it spreads over.
///
/// Shards carry their own hash tags (`uq:{NAME:shard-K}:…`), so a Redis Cluster places them
/// on different nodes; the queue's shard count is fixed by whoever opens it first (producer or
/// consumer) and adopted by everyone after, whatever they ask for.
///
/// ```
/// use uberpool::queue::redis::RedisQueue;
///
/// let queue = RedisQueue::new("campaign-7").group("mailers").shards(12);
/// assert_eq!(queue.name(), "campaign-7");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisQueue {
    name: String,
    group: String,
    shards: Option<u16>,
}

impl RedisQueue {
    /// The queue `name`, worked by the group `uberpool`, with the default shard count (1 on a
    /// single server, 16 on a cluster). Names must not contain braces, spaces or control
    /// characters.
    pub fn new(name: &str) -> RedisQueue {
        RedisQueue {
            name: name.to_owned(),
            group: "uberpool".to_owned(),
            shards: None,
        }
    }

    /// The consumer group (one per kind of job handling: every group sees every job).
    pub fn group(mut self, group: &str) -> RedisQueue {
        self.group = group.to_owned();
        self
    }

    /// The shard count to create the queue with (1 to 1024), if it does not exist yet.
    pub fn shards(mut self, shards: u16) -> RedisQueue {
        self.shards = Some(shards);
        self
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The consumer group's name.
    pub fn group_name(&self) -> &str {
        &self.group
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        check_name("queue", &self.name)?;
        check_name("group", &self.group)?;
        if let Some(shards) = self.shards
            && !(1..=MAX_SHARDS).contains(&shards)
        {
            return Err(Error::Config(format!(
                "queue {}: {shards} shards (1 to {MAX_SHARDS})",
                self.name
            )));
        }
        Ok(())
    }
}

/// A queue opened on a link: its keys, shard count fixed.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    pub(crate) keys: QueueKeys,
    pub(crate) shards: Vec<ShardKeys>,
}

/// Opens `queue`: fixes its shard count (the stored one wins) and creates its group on every
/// shard (an existing group is kept).
pub(crate) fn open(link: &mut Link, queue: &RedisQueue) -> Result<Opened, Error> {
    queue.check()?;
    let keys = QueueKeys::new(&queue.name);
    let wanted = queue
        .shards
        .unwrap_or(if link.is_cluster() { 16 } else { 1 });
    let mut set = redis::cmd("HSETNX");
    set.arg(&keys.meta).arg("shards").arg(wanted);
    let mut get = redis::cmd("HGET");
    get.arg(&keys.meta).arg("shards");
    let replies = link.round(&[(keys.slot, set), (keys.slot, get)], None)?;
    let stored = replies.get(1).unwrap_or(&Value::Nil);
    let shards = reply::int(stored)
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (1..=MAX_SHARDS).contains(n))
        .ok_or_else(|| Error::Queue {
            queue: queue.name.clone(),
            detail: format!(
                "the stored shard count ({} at {} field shards) is not 1 to {MAX_SHARDS}",
                reply::describe(stored),
                keys.meta
            ),
        })?;
    if let Some(asked) = queue.shards
        && asked != shards
    {
        tracing::info!(queue = %queue.name, asked, shards, "the queue exists with another shard count; using it");
    }
    let shards: Vec<ShardKeys> = (0..shards)
        .map(|k| ShardKeys::new(&queue.name, k))
        .collect();
    create_groups(link, queue, &shards)?;
    Ok(Opened { keys, shards })
}

/// Creates the group on every shard's stream (and the stream), from its first entry.
pub(crate) fn create_groups(
    link: &mut Link,
    queue: &RedisQueue,
    shards: &[ShardKeys],
) -> Result<(), Error> {
    let commands: Vec<(u16, Cmd)> = shards
        .iter()
        .map(|shard| {
            let mut cmd = redis::cmd("XGROUP");
            cmd.arg("CREATE")
                .arg(&shard.stream)
                .arg(&queue.group)
                .arg("0")
                .arg("MKSTREAM");
            (shard.slot, cmd)
        })
        .collect();
    for value in link.round(&commands, None)? {
        match value {
            Value::Okay => {}
            Value::ServerError(error) if error.code() == "BUSYGROUP" => {}
            Value::ServerError(error) => {
                return Err(server_error("XGROUP CREATE", &error));
            }
            other => return Err(Error::reply("XGROUP CREATE", reply::describe(&other))),
        }
    }
    Ok(())
}

/// Error codes after which the same command may work later.
pub(crate) fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "CLUSTERDOWN" | "TRYAGAIN" | "LOADING" | "MASTERDOWN" | "BUSY" | "READONLY"
    )
}

/// An error reply as an [`Error`]: transient ones as [`Error::Unavailable`].
pub(crate) fn server_error(command: &'static str, error: &redis::ServerError) -> Error {
    let message = match error.details() {
        Some(detail) => format!("{} {detail}", error.code()),
        None => error.code().to_owned(),
    };
    if is_transient(error.code()) {
        Error::Unavailable(message)
    } else {
        Error::Server { command, message }
    }
}

/// An `EVAL` of `script` with `keys` and `args`.
pub(crate) fn eval(script: &str, keys: &[&str], args: &[&[u8]]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}

/// One shard's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStats {
    /// The shard's index.
    pub shard: u16,
    /// Entries in its stream (acknowledged ones stay until trimmed).
    pub length: u64,
    /// Entries delivered and not yet acknowledged (in the group's pending list).
    pub pending: u64,
    /// Entries not yet delivered to the group.
    pub ready: u64,
    /// Retried jobs waiting out their back-off.
    pub delayed: u64,
    /// Dead letters.
    pub dead: u64,
}

/// A queue's figures, per shard and in total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Per shard, in shard order.
    pub shards: Vec<ShardStats>,
}

impl QueueStats {
    /// Entries not yet delivered, over all shards.
    pub fn ready(&self) -> u64 {
        self.shards.iter().map(|s| s.ready).sum()
    }

    /// Entries delivered and not yet acknowledged, over all shards.
    pub fn pending(&self) -> u64 {
        self.shards.iter().map(|s| s.pending).sum()
    }

    /// Retried jobs waiting out their back-off, over all shards.
    pub fn delayed(&self) -> u64 {
        self.shards.iter().map(|s| s.delayed).sum()
    }

    /// Dead letters, over all shards.
    pub fn dead(&self) -> u64 {
        self.shards.iter().map(|s| s.dead).sum()
    }

    /// Entries in the streams (acknowledged ones included until trimmed).
    pub fn length(&self) -> u64 {
        self.shards.iter().map(|s| s.length).sum()
    }

    /// Jobs not yet done: ready, pending or delayed.
    pub fn unfinished(&self) -> u64 {
        self.ready() + self.pending() + self.delayed()
    }
}

/// Reads every shard's figures in one round.
pub(crate) fn stats(link: &mut Link, opened: &Opened) -> Result<QueueStats, Error> {
    let commands: Vec<(u16, Cmd)> = opened
        .shards
        .iter()
        .map(|s| {
            (
                s.slot,
                eval(scripts::STATS, &[&s.stream, &s.delayed, &s.dead], &[]),
            )
        })
        .collect();
    let mut out = QueueStats::default();
    for (shard, value) in opened.shards.iter().zip(link.round(&commands, None)?) {
        if let Value::ServerError(error) = &value {
            return Err(server_error("the stats script", error));
        }
        let ShardFigures {
            length,
            pending,
            ready,
            delayed,
            dead,
        } = reply::figures(&value).map_err(|e| Error::reply("the stats script", e))?;
        out.shards.push(ShardStats {
            shard: shard.index,
            length,
            pending,
            ready,
            delayed,
            dead,
        });
    }
    Ok(out)
}

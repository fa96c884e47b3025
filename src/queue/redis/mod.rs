//! Redis Streams: a queue as consumer groups on sharded streams, on one Redis server or a Redis
//! Cluster — a [`Producer`] that adds jobs, [`RedisBackend`], the [`Consumer`]'s view of the
//! queue, and [`RedisQueue`], which names one. Behind the cargo feature `redis`.
//!
//! # Layout
//!
//! A queue `NAME` is `shards` streams `uq:{NAME:shard-K}:stream`, each with its hash tag, so a
//! cluster spreads them over its masters; the keys of a shard (its stream, its delayed set of
//! retries, its dead-letter stream) share the tag, so each script touches one slot. The
//! producer adds jobs to the shards in turn; each consumer reads its share of the shards,
//! split among the live consumers by a heartbeat set, and re-split when one comes or goes.
//!
//! # The consumer's operations
//!
//! | consumer | Redis |
//! |---|---|
//! | reserve n jobs | `XREADGROUP GROUP g me COUNT k STREAMS shard >` over its shards, the `k`s adding up to n |
//! | acknowledge | `XACK` |
//! | retry after a delay | a script: `XACK` + `XDEL`, body and deliveries into the shard's delayed set; moved back when due |
//! | dead-letter | a script: `XADD` to the shard's dead stream (id, body, deliveries, reason), `XACK`, `XDEL` |
//! | extend a lease | a script: `XCLAIM … 0 id JUSTID` if the entry is still this consumer's |
//! | take over a dead consumer's jobs | a script: `XAUTOCLAIM` of entries idle past the lease, with their delivery counts |
//! | trim | a script: `XTRIM MINID ~` below the oldest entry pending or undelivered in any group |
//!
//! Delivery counts carry across retries (a re-added entry records the deliveries before it),
//! so [`Delivery::attempt`](crate::queue::Delivery::attempt) counts every delivery of a job
//! and the consumer dead-letters it after its last attempt.
//!
//! # Durability
//!
//! A job whose `XADD` was acknowledged is in the master's memory and, with `appendonly yes` and
//! `appendfsync always`, in its append-only file, synced, before the reply: it survives a crash
//! or restart of the Redis process (the tests kill a cluster node with SIGKILL and restart it)
//! and a power loss. With `appendfsync everysec` (Redis's default), a master whose background
//! sync is slow holds writes back for up to 2 s while it goes on replying, so even a crash of
//! the process can lose up to 2 s of acknowledged writes. Replication to replicas is asynchronous: a failover can lose
//! acknowledged writes that had not reached the replica (`WAIT` narrows the window). Pending
//! entries survive a consumer's crash in the group's pending list and are claimed by another
//! consumer after the lease.
//!
//! Replies are read without trusting the server: no reply makes uberpool panic; one that does
//! not answer its command drops the connection.
//!
//! [`Consumer`]: crate::queue::Consumer

mod backend;
mod error;
mod keys;
mod link;
mod producer;
mod queue;
mod reply;
#[cfg(all(test, not(loom)))]
mod reply_tests;
mod scripts;
mod shards;
mod slot;

pub use backend::{RedisBackend, RedisBackendBuilder};
pub use error::Error;
pub use keys::MAX_SHARDS;
pub use producer::{BATCH_JOBS, DeadLetter, Producer};
pub use queue::{QueueStats, RedisQueue, ShardStats};

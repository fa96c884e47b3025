//! The keys of one queue. A queue `NAME` is `shards` streams, each with a hash tag of its own
//! so that a cluster spreads them over its nodes; every key of a shard carries that shard's tag
//! (one slot, one node, so a script may touch them all), and the queue's own keys carry `NAME`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `uq:{NAME}:meta` | hash | `shards`: the shard count, fixed when the queue is first used |
//! | `uq:{NAME}:members` | sorted set | live consumers, scored by their last heartbeat (server ms) |
//! | `uq:{NAME:shard-K}:stream` | stream | the jobs of shard K; the consumer group reads it |
//! | `uq:{NAME:shard-K}:delayed` | sorted set | retried jobs waiting out their back-off, scored by when they are due |
//! | `uq:{NAME:shard-K}:dead` | stream | dead letters: the job, its deliveries and the reason |

use super::error::Error;
use super::slot::key_slot;

/// Shards a queue may have at most.
pub const MAX_SHARDS: u16 = 1024;

/// The key names of one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardKeys {
    pub(crate) index: u16,
    pub(crate) stream: String,
    pub(crate) delayed: String,
    pub(crate) dead: String,
    /// The cluster slot all three live in.
    pub(crate) slot: u16,
}

impl ShardKeys {
    pub(crate) fn new(queue: &str, index: u16) -> ShardKeys {
        let tag = format!("uq:{{{queue}:shard-{index}}}");
        let stream = format!("{tag}:stream");
        ShardKeys {
            index,
            slot: key_slot(stream.as_bytes()),
            delayed: format!("{tag}:delayed"),
            dead: format!("{tag}:dead"),
            stream,
        }
    }
}

/// The queue-wide keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueKeys {
    pub(crate) meta: String,
    pub(crate) members: String,
    /// The slot of both.
    pub(crate) slot: u16,
}

impl QueueKeys {
    pub(crate) fn new(queue: &str) -> QueueKeys {
        let meta = format!("uq:{{{queue}}}:meta");
        QueueKeys {
            slot: key_slot(meta.as_bytes()),
            members: format!("uq:{{{queue}}}:members"),
            meta,
        }
    }
}

/// Checks a queue or group name: non-empty, at most 200 bytes, no braces (they would change
/// the hash tags) and no control characters or spaces.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 200 {
        return Err(Error::Config(format!(
            "a {what} name must have 1 to 200 bytes, not {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::Config(format!(
            "{what} name {name:?}: {c:?} is not allowed (no braces, spaces or control characters)"
        )));
    }
    Ok(())
}

/// A job's id as the consumer sees it: `K/ms-seq` (shard and entry id).
pub(crate) fn job_id(shard: u16, entry: &str) -> String {
    format!("{shard}/{entry}")
}

/// Splits a job id made by [`job_id`]; `None` for anything else.
pub(crate) fn parse_job_id(id: &str) -> Option<(u16, &str)> {
    let (shard, entry) = id.split_once('/')?;
    let shard: u16 = shard.parse().ok()?;
    super::reply::is_entry_id(entry).then_some((shard, entry))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_shard_shares_its_slot_and_shards_spread() {
        let a = ShardKeys::new("mail", 0);
        assert_eq!(a.stream, "uq:{mail:shard-0}:stream");
        assert_eq!(key_slot(a.dead.as_bytes()), a.slot);
        assert_eq!(key_slot(a.delayed.as_bytes()), a.slot);
        let slots: std::collections::HashSet<u16> =
            (0..16).map(|k| ShardKeys::new("mail", k).slot).collect();
        assert!(slots.len() > 8, "16 shards landed on {} slots", slots.len());
        let q = QueueKeys::new("mail");
        assert_eq!(key_slot(q.members.as_bytes()), q.slot);
    }

    #[test]
    fn names_with_braces_or_spaces_are_refused() {
        assert!(check_name("queue", "mail-7").is_ok());
        for bad in ["", "a{b", "a}b", "a b", "a\nb"] {
            assert!(check_name("queue", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("queue", &"x".repeat(201)).is_err());
    }

    #[test]
    fn job_ids_round_trip_and_others_are_refused() {
        assert_eq!(parse_job_id(&job_id(3, "17-0")), Some((3, "17-0")));
        for bad in [
            "",
            "3",
            "3/",
            "x/1-0",
            "3/1",
            "3/1-x",
            "70000/1-0",
            "3/1-0/2",
        ] {
            assert_eq!(parse_job_id(bad), None, "{bad:?}");
        }
    }
}

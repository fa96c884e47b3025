//! [`Error`]: what goes wrong between uberpool and Redis — the connection, a reply that does
//! not answer the command, a server error, a queue whose name or settings cannot work.

use std::fmt;

/// Why a Redis queue operation did not succeed.
///
/// Connection failures ([`Connection`](Error::Connection), [`Reply`](Error::Reply),
/// [`Unavailable`](Error::Unavailable)) drop the connections involved: the next operation dials
/// again. Pending entries stay with their consumer across reconnects (Redis keeps them in the
/// group's pending entries list, by consumer name).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue's name or settings cannot work (a hash-tag brace in the name, zero shards, a
    /// URL that does not parse).
    #[error("redis queue: {0}")]
    Config(String),
    /// No node could be reached, a read or write failed or timed out, or the server closed the
    /// connection.
    #[error("redis connection to {addr} failed: {source}")]
    Connection {
        /// The node, `host:port`.
        addr: String,
        /// What the client library reported.
        source: ::redis::RedisError,
    },
    /// The server sent a reply that does not answer the command (uberpool never panics on
    /// one; it drops the connection).
    #[error("redis answered {command} with an unexpected reply: {detail}")]
    Reply {
        /// The command or script.
        command: &'static str,
        /// What was wrong with the reply.
        detail: String,
    },
    /// The cluster cannot serve the command now (`CLUSTERDOWN`, `TRYAGAIN`, `LOADING`,
    /// `MASTERDOWN`, or redirections that did not settle): try again later.
    #[error("redis cluster unavailable: {0}")]
    Unavailable(String),
    /// The server refused a command (an error reply), for the reason given.
    #[error("redis refused {command}: {message}")]
    Server {
        /// The command or script.
        command: &'static str,
        /// The server's error reply.
        message: String,
    },
    /// The queue's shards were created with another count than asked (consumers and producers
    /// adopt the stored count; this reports a stored value that cannot be read).
    #[error("redis queue {queue}: {detail}")]
    Queue {
        /// The queue's name.
        queue: String,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    pub(crate) fn reply(command: &'static str, detail: impl fmt::Display) -> Error {
        Error::Reply {
            command,
            detail: detail.to_string(),
        }
    }

    /// `true` for failures that a reconnect (and a wait) can cure.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connection { .. } | Error::Reply { .. } | Error::Unavailable(_)
        )
    }
}

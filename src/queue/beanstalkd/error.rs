//! [`Error`]: everything a beanstalkd command can come to besides its success reply — the
//! server's error replies, one variant each, and the failures of the connection under them.

use std::io;

use super::proto::{ProtocolError, ServerError};

/// Why a beanstalkd command did not succeed.
///
/// The server's error replies each have their variant, named after the reply. Connection
/// failures (`Io`, `Closed`, `Protocol`, `UnexpectedReply`) leave the client disconnected: its
/// next command dials again (see [`Client`](super::Client)), and every job the connection had
/// reserved is back in its tube.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be opened to any address of the server.
    #[error("cannot connect to beanstalkd at {addr}: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// The last address's failure.
        source: io::Error,
    },
    /// Reading or writing failed, or took longer than the client's IO timeout.
    #[error("beanstalkd connection failed: {0}")]
    Io(#[source] io::Error),
    /// The server closed the connection.
    #[error("beanstalkd closed the connection")]
    Closed,
    /// The server sent bytes that are not a reply.
    #[error("beanstalkd sent an invalid reply: {0}")]
    Protocol(String),
    /// The server sent a valid reply that does not answer the command.
    #[error("beanstalkd answered {command} with {reply}")]
    UnexpectedReply {
        /// The command.
        command: &'static str,
        /// The reply, bodies shown by length only.
        reply: String,
    },
    /// A reply in a pipelined batch never came: an earlier reply broke the connection. The
    /// command may or may not have taken effect.
    #[error("no reply: the connection failed before this command's reply was read")]
    NoReply,
    /// A job body over the client's limit; checked before anything was sent.
    #[error("job body of {size} bytes is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The body's size.
        size: usize,
        /// The client's limit ([`ClientBuilder::max_body`](super::ClientBuilder::max_body)).
        limit: usize,
    },
    /// A tube name the protocol does not allow; checked before anything was sent.
    #[error("invalid tube name {name:?}: {reason}")]
    InvalidTube {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `OUT_OF_MEMORY`: the server could not allocate memory (or binlog space) for the job.
    #[error("beanstalkd is out of memory (OUT_OF_MEMORY)")]
    OutOfMemory,
    /// `INTERNAL_ERROR`: a bug in the server.
    #[error("beanstalkd internal error (INTERNAL_ERROR)")]
    InternalError,
    /// `BAD_FORMAT`: the server could not read the command line.
    #[error("beanstalkd refused the command line (BAD_FORMAT)")]
    BadFormat,
    /// `UNKNOWN_COMMAND`: the server does not know the command.
    #[error("beanstalkd does not know the command (UNKNOWN_COMMAND)")]
    UnknownCommand,
    /// `EXPECTED_CRLF`: a job body was not followed by CRLF.
    #[error("beanstalkd expected CRLF after the job body (EXPECTED_CRLF)")]
    ExpectedCrlf,
    /// `JOB_TOO_BIG`: the body is over the server's `max-job-size`.
    #[error("job body over the server's max-job-size (JOB_TOO_BIG)")]
    JobTooBig,
    /// `DRAINING`: the server is in drain mode and takes no new jobs.
    #[error("beanstalkd is draining and takes no new jobs (DRAINING)")]
    Draining,
    /// `NOT_FOUND`: no such job (or tube), or the job is reserved by another connection.
    #[error("no such job, or not reserved by this connection (NOT_FOUND)")]
    NotFound,
    /// `DEADLINE_SOON`: a job this connection holds reaches the end of its TTR within a second.
    #[error("a reserved job's TTR ends within a second (DEADLINE_SOON)")]
    DeadlineSoon,
    /// `TIMED_OUT`: no job became ready within the reserve's timeout.
    #[error("no job ready within the timeout (TIMED_OUT)")]
    TimedOut,
    /// `NOT_IGNORED`: the connection cannot ignore the last tube it watches.
    #[error("cannot ignore the only watched tube (NOT_IGNORED)")]
    NotIgnored,
    /// `BURIED`: the server buried the job instead — a `put` (with the new job's id) or a
    /// `release` when it could not grow its queues.
    #[error("beanstalkd buried the job{} for lack of memory (BURIED)", id.map(|id| format!(" {id}")).unwrap_or_default())]
    Buried {
        /// The job's id, when the reply carries it (`put`).
        id: Option<u64>,
    },
}

impl Error {
    /// `true` if the connection is gone or out of step with the server: the client drops it
    /// and the next command dials again.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Io(_)
                | Error::Closed
                | Error::Protocol(_)
                | Error::UnexpectedReply { .. }
                | Error::NoReply
                | Error::ExpectedCrlf
                | Error::BadFormat
                | Error::UnknownCommand
                | Error::InternalError
        )
    }

    /// `true` for an IO timeout (the server took longer than the client's timeouts allow).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Io(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock))
    }
}

impl From<ServerError> for Error {
    fn from(error: ServerError) -> Error {
        match error {
            ServerError::OutOfMemory => Error::OutOfMemory,
            ServerError::InternalError => Error::InternalError,
            ServerError::BadFormat => Error::BadFormat,
            ServerError::UnknownCommand => Error::UnknownCommand,
            ServerError::ExpectedCrlf => Error::ExpectedCrlf,
            ServerError::JobTooBig => Error::JobTooBig,
            ServerError::Draining => Error::Draining,
            ServerError::NotFound => Error::NotFound,
            ServerError::DeadlineSoon => Error::DeadlineSoon,
            ServerError::TimedOut => Error::TimedOut,
            ServerError::NotIgnored => Error::NotIgnored,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Error {
        Error::Protocol(error.to_string())
    }
}

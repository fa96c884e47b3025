//! The beanstalkd wire format: commands encoded into bytes, replies parsed out of bytes.
//!
//! Pure functions over byte buffers, no IO: the connection (`conn.rs`) feeds what it read and
//! writes what is encoded here. The reply parser is the crate's defence against a misbehaving
//! server: it never panics, never allocates more than the bytes it was given, and refuses a
//! reply line or body over its limits instead of waiting for it forever.

use std::fmt;

/// A reply line longer than this (without its CRLF) is refused: the longest valid one is
/// `USING` and a 200-byte tube name.
pub(crate) const MAX_REPLY_LINE: usize = 512;

/// The largest body any reply may announce: beanstalkd's highest `-z` (1 GiB). Stats replies
/// are a few KiB; job bodies are at most the server's `max-job-size`.
pub(crate) const MAX_REPLY_BODY: usize = 1 << 30;

/// Longest tube name the server accepts.
pub(crate) const MAX_TUBE_NAME: usize = 200;

/// One command, borrowed from the caller; [`Command::encode`] appends its bytes to a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        body: &'a [u8],
    },
    Use(&'a str),
    Watch(&'a str),
    Ignore(&'a str),
    ReserveWithTimeout(u32),
    Delete(u64),
    Release {
        id: u64,
        pri: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        pri: u32,
    },
    Touch(u64),
    Kick(u64),
    KickJob(u64),
    StatsJob(u64),
    StatsTube(&'a str),
    Stats,
}

impl Command<'_> {
    /// The command's name, for error messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Put { .. } => "put",
            Command::Use(_) => "use",
            Command::Watch(_) => "watch",
            Command::Ignore(_) => "ignore",
            Command::ReserveWithTimeout(_) => "reserve-with-timeout",
            Command::Delete(_) => "delete",
            Command::Release { .. } => "release",
            Command::Bury { .. } => "bury",
            Command::Touch(_) => "touch",
            Command::Kick(_) => "kick",
            Command::KickJob(_) => "kick-job",
            Command::StatsJob(_) => "stats-job",
            Command::StatsTube(_) => "stats-tube",
            Command::Stats => "stats",
        }
    }

    /// Appends the command (and a `put`'s body) to `out`. Tube names must have passed
    /// [`check_tube_name`]; nothing here validates them again.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing into a Vec cannot fail.
        let _ = match *self {
            Command::Put {
                pri,
                delay,
                ttr,
                body,
            } => {
                let _ = write!(out, "put {pri} {delay} {ttr} {}\r\n", body.len());
                out.extend_from_slice(body);
                Ok(())
            }
            Command::Use(tube) => write!(out, "use {tube}"),
            Command::Watch(tube) => write!(out, "watch {tube}"),
            Command::Ignore(tube) => write!(out, "ignore {tube}"),
            Command::ReserveWithTimeout(secs) => write!(out, "reserve-with-timeout {secs}"),
            Command::Delete(id) => write!(out, "delete {id}"),
            Command::Release { id, pri, delay } => write!(out, "release {id} {pri} {delay}"),
            Command::Bury { id, pri } => write!(out, "bury {id} {pri}"),
            Command::Touch(id) => write!(out, "touch {id}"),
            Command::Kick(bound) => write!(out, "kick {bound}"),
            Command::KickJob(id) => write!(out, "kick-job {id}"),
            Command::StatsJob(id) => write!(out, "stats-job {id}"),
            Command::StatsTube(tube) => write!(out, "stats-tube {tube}"),
            Command::Stats => write!(out, "stats"),
        };
        out.extend_from_slice(b"\r\n");
    }
}

/// Checks a tube name against the protocol: 1 to 200 bytes of `A-Z a-z 0-9 - + / ; . $ _ ( )`,
/// not starting with `-`. The error says what is wrong.
pub(crate) fn check_tube_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a tube name needs at least one character");
    }
    if name.len() > MAX_TUBE_NAME {
        return Err("a tube name has at most 200 bytes");
    }
    if name.starts_with('-') {
        return Err("a tube name may not start with '-'");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b);
    if name.bytes().all(allowed) {
        Ok(())
    } else {
        Err("a tube name has only the characters A-Z a-z 0-9 - + / ; . $ _ ( )")
    }
}

/// An error reply of the server, named as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ServerError {
    OutOfMemory,
    InternalError,
    BadFormat,
    UnknownCommand,
    ExpectedCrlf,
    JobTooBig,
    Draining,
    NotFound,
    DeadlineSoon,
    TimedOut,
    NotIgnored,
}

impl ServerError {
    fn from_word(word: &[u8]) -> Option<ServerError> {
        Some(match word {
            b"OUT_OF_MEMORY" => ServerError::OutOfMemory,
            b"INTERNAL_ERROR" => ServerError::InternalError,
            b"BAD_FORMAT" => ServerError::BadFormat,
            b"UNKNOWN_COMMAND" => ServerError::UnknownCommand,
            b"EXPECTED_CRLF" => ServerError::ExpectedCrlf,
            b"JOB_TOO_BIG" => ServerError::JobTooBig,
            b"DRAINING" => ServerError::Draining,
            b"NOT_FOUND" => ServerError::NotFound,
            b"DEADLINE_SOON" => ServerError::DeadlineSoon,
            b"TIMED_OUT" => ServerError::TimedOut,
            b"NOT_IGNORED" => ServerError::NotIgnored,
            _ => return None,
        })
    }
}

/// One parsed reply.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Inserted(u64),
    /// `BURIED <id>` (a `put` whose job the server buried for lack of memory).
    BuriedId(u64),
    /// `BURIED` (a `bury`, or a `release` the server turned into a bury).
    Buried,
    Using(String),
    Reserved {
        id: u64,
        body: Vec<u8>,
    },
    Deleted,
    Released,
    Touched,
    /// `KICKED <n>` (kick).
    KickedCount(u64),
    /// `KICKED` (kick-job).
    Kicked,
    Watching(u64),
    /// `OK <bytes>` and its YAML body.
    Ok(Vec<u8>),
    Error(ServerError),
}

impl fmt::Debug for Reply {
    /// Bodies are shown by length only: they may be large or private.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Inserted(id) => write!(f, "INSERTED {id}"),
            Reply::BuriedId(id) => write!(f, "BURIED {id}"),
            Reply::Buried => f.write_str("BURIED"),
            Reply::Using(tube) => write!(f, "USING {tube}"),
            Reply::Reserved { id, body } => write!(f, "RESERVED {id} <{} bytes>", body.len()),
            Reply::Deleted => f.write_str("DELETED"),
            Reply::Released => f.write_str("RELEASED"),
            Reply::Touched => f.write_str("TOUCHED"),
            Reply::KickedCount(n) => write!(f, "KICKED {n}"),
            Reply::Kicked => f.write_str("KICKED"),
            Reply::Watching(n) => write!(f, "WATCHING {n}"),
            Reply::Ok(body) => write!(f, "OK <{} bytes>", body.len()),
            Reply::Error(error) => write!(f, "{error:?}"),
        }
    }
}

/// Why bytes from the server are not a reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    #[error("reply announces a body of {0} bytes, over the limit of {MAX_REPLY_BODY}")]
    BodyTooLarge(u64),
    #[error("reply body not followed by CRLF")]
    MissingBodyCrlf,
    #[error("malformed reply line {0:?}")]
    Malformed(String),
}

/// What [`parse_reply`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The buffer holds the start of a reply; read more.
    Incomplete,
    /// A whole reply, and how many bytes of the buffer it took.
    Complete(Reply, usize),
}

/// Parses the reply at the start of `buf`.
///
/// Never panics and never allocates more than `buf.len()` bytes, whatever `buf` holds.
pub(crate) fn parse_reply(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    let Some(line_end) = find_crlf(buf) else {
        // Without a CRLF the line is still arriving, unless it is already too long (a stray
        // '\r' at the very end may be the first half of the CRLF).
        let pending = buf.len().saturating_sub(usize::from(buf.ends_with(b"\r")));
        if pending > MAX_REPLY_LINE {
            return Err(ProtocolError::LineTooLong);
        }
        return Ok(Parsed::Incomplete);
    };
    if line_end > MAX_REPLY_LINE {
        return Err(ProtocolError::LineTooLong);
    }
    let line = &buf[..line_end];
    let after_line = line_end + 2;
    let malformed = || ProtocolError::Malformed(String::from_utf8_lossy(line).into_owned());
    let mut words = line.split(|&b| b == b' ');
    let head = words.next().unwrap_or_default();
    let args: Vec<&[u8]> = words.collect();
    let no_args = |reply: Reply| {
        if args.is_empty() {
            Ok(Parsed::Complete(reply, after_line))
        } else {
            Err(malformed())
        }
    };
    let number = |i: usize| args.get(i).and_then(|a| parse_u64(a)).ok_or_else(malformed);
    match head {
        b"INSERTED" if args.len() == 1 => {
            Ok(Parsed::Complete(Reply::Inserted(number(0)?), after_line))
        }
        b"BURIED" if args.is_empty() => no_args(Reply::Buried),
        b"BURIED" if args.len() == 1 => {
            Ok(Parsed::Complete(Reply::BuriedId(number(0)?), after_line))
        }
        b"USING" if args.len() == 1 => {
            let tube = std::str::from_utf8(args[0]).map_err(|_| malformed())?;
            if check_tube_name(tube).is_err() {
                return Err(malformed());
            }
            Ok(Parsed::Complete(Reply::Using(tube.to_owned()), after_line))
        }
        b"DELETED" => no_args(Reply::Deleted),
        b"RELEASED" => no_args(Reply::Released),
        b"TOUCHED" => no_args(Reply::Touched),
        b"KICKED" if args.is_empty() => no_args(Reply::Kicked),
        b"KICKED" if args.len() == 1 => {
            Ok(Parsed::Complete(Reply::KickedCount(number(0)?), after_line))
        }
        b"WATCHING" if args.len() == 1 => {
            Ok(Parsed::Complete(Reply::Watching(number(0)?), after_line))
        }
        b"RESERVED" if args.len() == 2 => {
            let id = number(0)?;
            let size = number(1)?;
            Ok(match body(buf, after_line, size)? {
                Some((body, used)) => Parsed::Complete(Reply::Reserved { id, body }, used),
                None => Parsed::Incomplete,
            })
        }
        b"OK" if args.len() == 1 => {
            let size = number(0)?;
            Ok(match body(buf, after_line, size)? {
                Some((body, used)) => Parsed::Complete(Reply::Ok(body), used),
                None => Parsed::Incomplete,
            })
        }
        word => match ServerError::from_word(word) {
            Some(error) => no_args(Reply::Error(error)),
            None => Err(malformed()),
        },
    }
}

/// The body of `size` bytes that starts at `start`, with its CRLF: `None` until all of it is
/// in `buf`; then the body and the bytes used from the start of `buf`.
fn body(buf: &[u8], start: usize, size: u64) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
    let len = usize::try_from(size)
        .ok()
        .filter(|&len| len <= MAX_REPLY_BODY)
        .ok_or(ProtocolError::BodyTooLarge(size))?;
    // `start` ≤ buf.len() and len ≤ 1 GiB: no overflow on any target uberpool builds for.
    let end = start + len;
    if buf.len() < end + 2 {
        // A byte already present where the CRLF must be can refuse the reply early.
        if buf.len() > end && buf[end] != b'\r' {
            return Err(ProtocolError::MissingBodyCrlf);
        }
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtocolError::MissingBodyCrlf);
    }
    Ok(Some((buf[start..end].to_vec(), end + 2)))
}

/// The first `\r\n` in `buf`, looked for in the first [`MAX_REPLY_LINE`] + 2 bytes only.
fn find_crlf(buf: &[u8]) -> Option<usize> {
    let window = &buf[..buf.len().min(MAX_REPLY_LINE + 2)];
    window.windows(2).position(|pair| pair == b"\r\n")
}

/// A decimal `u64` of digits only (no sign, no spaces); `None` on anything else or overflow.
fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
#[path = "proto_tests.rs"]
mod tests;

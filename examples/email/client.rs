//! A small plaintext SMTP client for the email examples: a pool of connections to one relay,
//! each used by one sender at a time for `MAIL FROM`, `RCPT TO` and `DATA` (with dot-stuffing),
//! and a refusal that says whether it is transient (`4xx`, worth a retry) or final (`5xx`).
//! Message text is the caller's business (`campaign.rs` writes its headers). What lives
//! elsewhere: the relay it talks to (`relay/`).
//!
//! A message and its final `.` go out in one write, and `TCP_NODELAY` is set, so a transaction
//! never waits for a delayed acknowledgement.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use parking_lot::Mutex;

/// Why a message was not sent.
#[derive(Debug)]
pub enum SendError {
    /// The relay answered with a refusal (`4xx` or `5xx`, or something unexpected).
    Refused {
        /// The reply code.
        code: u16,
        /// The whole reply.
        reply: String,
    },
    /// The connection failed.
    Io(io::Error),
}

impl SendError {
    /// A refusal for now (`4xx`): the same message may be accepted later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SendError::Refused {
                code: 400..=499,
                ..
            }
        )
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Refused { reply, .. } => write!(f, "refused: {}", reply.trim_end()),
            SendError::Io(error) => write!(f, "connection failed: {error}"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<io::Error> for SendError {
    fn from(error: io::Error) -> Self {
        SendError::Io(error)
    }
}

/// A pool of SMTP connections to one relay. `send` takes an idle connection (or opens one),
/// and puts it back after a transaction that left it usable; at most `pool_size` idle
/// connections are kept.
pub struct Mailer {
    addr: SocketAddr,
    pool_size: usize,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Mailer {
    /// A mailer for the relay at `addr`, keeping up to `pool_size` idle connections; every read
    /// and write gives up after `timeout`.
    pub fn new(addr: SocketAddr, pool_size: usize, timeout: Duration) -> Mailer {
        Mailer {
            addr,
            pool_size,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `message` (headers, a blank line, the body; any line ends) from `from` to `to`.
    ///
    /// A pooled connection that turns out to be closed is dropped and the transaction is tried
    /// once more on a new connection.
    pub fn send(&self, from: &str, to: &str, message: &str) -> Result<(), SendError> {
        let pooled = self.idle.lock().pop();
        let mut connection = match pooled {
            Some(mut connection) => match connection.transaction(from, to, message) {
                Err(SendError::Io(_)) => Connection::open(self.addr, self.timeout)?,
                outcome => return self.finish(connection, outcome),
            },
            None => Connection::open(self.addr, self.timeout)?,
        };
        let outcome = connection.transaction(from, to, message);
        self.finish(connection, outcome)
    }

    /// Returns a connection that is still usable to the pool, and the outcome to the caller.
    fn finish(
        &self,
        connection: Connection,
        outcome: Result<(), SendError>,
    ) -> Result<(), SendError> {
        if !matches!(outcome, Err(SendError::Io(_))) {
            let mut idle = self.idle.lock();
            if idle.len() < self.pool_size {
                idle.push(connection);
            }
        }
        outcome
    }
}

impl Drop for Mailer {
    fn drop(&mut self) {
        for mut connection in self.idle.lock().drain(..) {
            // The relay answers 221 and closes; a failure here changes nothing.
            let _ = connection.command("QUIT");
        }
    }
}

/// One connection, greeted.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    /// Connects, reads the greeting and says `EHLO`.
    fn open(addr: SocketAddr, timeout: Duration) -> Result<Connection, SendError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut connection = Connection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        connection.expect(220)?;
        connection.command("EHLO uberpool.example")?;
        Ok(connection)
    }

    /// One mail transaction; after a refusal the transaction is reset, so the connection can
    /// carry the next one.
    fn transaction(&mut self, from: &str, to: &str, message: &str) -> Result<(), SendError> {
        let outcome = self.try_transaction(from, to, message);
        if let Err(SendError::Refused { .. }) = outcome {
            self.command("RSET")?;
        }
        outcome
    }

    fn try_transaction(&mut self, from: &str, to: &str, message: &str) -> Result<(), SendError> {
        self.command(&format!("MAIL FROM:<{from}>"))?;
        self.command(&format!("RCPT TO:<{to}>"))?;
        self.send_line("DATA")?;
        self.expect(354)?;
        self.writer.write_all(&data(message))?;
        self.expect(250)
    }

    /// Sends a command and expects `250`.
    fn command(&mut self, line: &str) -> Result<(), SendError> {
        self.send_line(line)?;
        self.expect(250)
    }

    fn send_line(&mut self, line: &str) -> Result<(), SendError> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        Ok(())
    }

    /// Reads one reply (all its lines) and checks its code.
    fn expect(&mut self, wanted: u16) -> Result<(), SendError> {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(SendError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the relay closed the connection",
                )));
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        let code = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if code == wanted {
            Ok(())
        } else {
            Err(SendError::Refused { code, reply })
        }
    }
}

/// The `DATA` payload of `message`: lines ending in CRLF, a '.' doubled at the start of a line,
/// and the final `.` line.
fn data(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    for line in message.lines() {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

//! One TCP connection to beanstalkd: dialling with a timeout, writing commands, and reading
//! replies through the parser with a deadline per reply.
//!
//! What lives elsewhere: the command set and the reconnect policy (`client.rs`), the wire
//! format (`proto.rs`).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::error::Error;
use super::proto::{Parsed, Reply, parse_reply};

/// Bytes the read buffer starts with; it grows (doubling) for a reply that does not fit.
const READ_CHUNK: usize = 16 * 1024;

/// An open connection and the bytes read from it but not parsed yet.
pub(crate) struct Conn {
    stream: TcpStream,
    /// The read buffer, all of it initialized: `buf[start..end]` is read and not parsed yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    io_timeout: Duration,
    /// The socket's read timeout as last set (a syscall to change, so only when it must).
    read_timeout: Option<Duration>,
}

impl Conn {
    /// Dials every address `addr` resolves to, in order, each within `connect_timeout`.
    pub(crate) fn open(
        addr: &str,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Conn, Error> {
        let connect_error = |source| Error::Connect {
            addr: addr.to_owned(),
            source,
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
        for socket_addr in addr.to_socket_addrs().map_err(connect_error)? {
            match TcpStream::connect_timeout(&socket_addr, connect_timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(connect_error)?;
                    stream
                        .set_write_timeout(Some(io_timeout))
                        .map_err(connect_error)?;
                    return Ok(Conn {
                        stream,
                        buf: vec![0; READ_CHUNK],
                        start: 0,
                        end: 0,
                        io_timeout,
                        read_timeout: None,
                    });
                }
                Err(error) => last = error,
            }
        }
        Err(connect_error(last))
    }

    /// Writes `bytes` completely (each write bounded by the IO timeout).
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes).map_err(Error::Io)
    }

    /// Reads the next reply; the server has the IO timeout plus `wait` (a reserve's own
    /// timeout) to send all of it.
    pub(crate) fn read_reply(&mut self, wait: Duration) -> Result<Reply, Error> {
        let limit = self.io_timeout.saturating_add(wait);
        let deadline = Instant::now().checked_add(limit);
        loop {
            if let Parsed::Complete(reply, used) = parse_reply(&self.buf[self.start..self.end])? {
                self.start += used;
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                    if self.buf.len() > 64 * READ_CHUNK {
                        // A large body passed: give its memory back.
                        self.buf = vec![0; READ_CHUNK];
                    }
                }
                return Ok(reply);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no reply from beanstalkd within the timeout",
                )));
            }
            // Each read may block for the whole limit: a reply is bounded by twice the limit
            // even when the server sends it a byte at a time.
            self.set_read_timeout(limit)?;
            self.fill()?;
        }
    }

    fn set_read_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        if self.read_timeout != Some(timeout) {
            self.stream
                .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
                .map_err(Error::Io)?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    /// Reads at least one more byte, making room first: unparsed bytes move to the front, and
    /// a full buffer doubles.
    fn fill(&mut self) -> Result<(), Error> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = self.buf.len().saturating_mul(2);
                self.buf.resize(grown, 0);
            }
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(Error::Io(error)),
            }
        }
    }
}

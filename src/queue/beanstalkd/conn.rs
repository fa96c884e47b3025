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

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Consumed bytes are dropped from the front of the buffer once they pass this many.
const COMPACT_AFTER: usize = 64 * 1024;

/// An open connection and the bytes read from it but not parsed yet.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read; `buf[start..]` is not parsed yet.
    buf: Vec<u8>,
    start: usize,
    io_timeout: Duration,
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
                        buf: Vec::with_capacity(READ_CHUNK),
                        start: 0,
                        io_timeout,
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
        let deadline = Instant::now()
            .checked_add(self.io_timeout.saturating_add(wait))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        loop {
            if let Parsed::Complete(reply, used) = parse_reply(&self.buf[self.start..])? {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                } else if self.start > COMPACT_AFTER {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                return Ok(reply);
            }
            self.fill(deadline)?;
        }
    }

    /// Reads at least one more byte before `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), Error> {
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no reply from beanstalkd within the timeout",
                )));
            }
            if let Err(error) = self.stream.set_read_timeout(Some(left)) {
                break Err(Error::Io(error));
            }
            match self.stream.read(&mut self.buf[len..]) {
                Ok(0) => break Err(Error::Closed),
                Ok(n) => break Ok(n),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => break Err(Error::Io(error)),
            }
        };
        self.buf.truncate(len + *result.as_ref().unwrap_or(&0));
        result.map(|_| ())
    }
}

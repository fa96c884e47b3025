//! [`Client`]: the beanstalkd commands over one connection, with timeouts, a body limit, and
//! reconnection with back-off that restores the tubes used and watched.
//!
//! What lives elsewhere: the socket and reply reading (`conn.rs`), the wire format
//! (`proto.rs`), the values commands take and give (`options.rs`), batches of puts
//! (`producer.rs`), the consumer's use of a client (`backend.rs`).

use std::fmt;
use std::time::Duration;

use super::conn::Conn;
use super::error::Error;
use super::options::{Backoff, Job, PutOptions, reserve_seconds, whole_seconds};
use super::proto::{Command, Reply, check_tube_name};
use super::stats::{JobStats, ServerStats, TubeStats};

/// The tube every new connection uses and watches.
pub const DEFAULT_TUBE: &str = "default";

/// beanstalkd's default `max-job-size` (`-z`), the client's default body limit.
pub const DEFAULT_MAX_BODY: usize = 65_535;

/// The settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    addr: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_body: usize,
    reconnect: Backoff,
}

impl ClientBuilder {
    /// Settings for the server at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> Self {
        ClientBuilder {
            addr: addr.into(),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            max_body: DEFAULT_MAX_BODY,
            reconnect: Backoff::default(),
        }
    }

    /// The longest a connection attempt may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The longest a write may block, and how long the server has to send a reply (a reserve's
    /// own timeout comes on top). Default 10 s.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The largest job body `put` sends (default 65,535, the server's default `-z`); a larger
    /// one fails with [`Error::BodyTooLarge`] before anything is sent. Set it to the server's
    /// `-z` when that is larger.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How a broken connection is dialled again (default [`Backoff::default`]).
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = Backoff {
            attempts: backoff.attempts.max(1),
            ..backoff
        };
        self
    }

    /// Opens the connection (one attempt).
    pub fn connect(self) -> Result<Client, Error> {
        let mut client = Client {
            config: self,
            conn: None,
            using: DEFAULT_TUBE.to_owned(),
            watching: vec![DEFAULT_TUBE.to_owned()],
            generation: 0,
            out: Vec::new(),
        };
        client.reconnect_once()?;
        Ok(client)
    }
}

/// A beanstalkd client over one TCP connection.
///
/// Commands block until their reply (within the IO timeout). When the connection fails, the
/// client drops it and returns the error; the next command dials again, with back-off, and
/// re-issues the `use` and `watch`/`ignore` commands given so far. Jobs reserved on the old
/// connection are back in their tubes by then: [`generation`](Self::generation) tells a caller
/// holding reservations that it happened. A command is never re-sent on its own: whether a
/// failed `put` took effect is unknown, and only the caller can decide to put it again.
///
/// ```no_run
/// use std::time::Duration;
/// use uberpool::queue::beanstalkd::{Client, PutOptions};
///
/// let mut client = Client::connect("127.0.0.1:11300")?;
/// client.use_tube("emails")?;
/// let id = client.put(b"hello", PutOptions::new().ttr(Duration::from_secs(30)))?;
/// client.watch("emails")?;
/// let job = client.reserve_with_timeout(Duration::from_secs(1))?;
/// assert_eq!(job.id, id);
/// client.delete(job.id)?;
/// # Ok::<(), uberpool::queue::beanstalkd::Error>(())
/// ```
pub struct Client {
    config: ClientBuilder,
    conn: Option<Conn>,
    /// The tube `put` goes to, restored on reconnect.
    using: String,
    /// The tubes `reserve` takes from, restored on reconnect.
    watching: Vec<String>,
    /// Connections opened so far.
    generation: u64,
    /// Encoding buffer, reused.
    out: Vec<u8>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.config.addr)
            .field("connected", &self.conn.is_some())
            .field("using", &self.using)
            .field("watching", &self.watching)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Client {
    /// Connects to the server at `addr` (`host:port`) with the default settings.
    pub fn connect(addr: impl Into<String>) -> Result<Client, Error> {
        ClientBuilder::new(addr).connect()
    }

    /// Settings for a client of the server at `addr`.
    pub fn builder(addr: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(addr)
    }

    /// The server's address, as given.
    pub fn addr(&self) -> &str {
        &self.config.addr
    }

    /// The body limit of `put`.
    pub fn max_body(&self) -> usize {
        self.config.max_body
    }

    /// Connections opened so far: it grows by one on every reconnect, after which no job
    /// reserved before is held any more.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `true` while the client holds an open connection.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The tube `put` goes to.
    pub fn using(&self) -> &str {
        &self.using
    }

    /// The tubes `reserve` takes from.
    pub fn watching(&self) -> &[String] {
        &self.watching
    }

    /// Drops the connection (the server returns its reserved jobs to their tubes).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Dials again once, dropping the current connection, and restores the tubes used and
    /// watched.
    pub fn reconnect_once(&mut self) -> Result<(), Error> {
        self.conn = None;
        let conn = Conn::open(
            &self.config.addr,
            self.config.connect_timeout,
            self.config.io_timeout,
        )?;
        self.conn = Some(conn);
        self.generation += 1;
        let using = self.using.clone();
        let watching = self.watching.clone();
        let mut commands = Vec::new();
        if using != DEFAULT_TUBE {
            commands.push(Command::Use(&using));
        }
        for tube in watching.iter().filter(|t| *t != DEFAULT_TUBE) {
            commands.push(Command::Watch(tube));
        }
        if !watching.iter().any(|t| t == DEFAULT_TUBE) {
            commands.push(Command::Ignore(DEFAULT_TUBE));
        }
        for (command, reply) in commands.iter().zip(self.pipeline(&commands)?) {
            let ok = match (command, reply?) {
                (Command::Use(_), Reply::Using(tube)) => tube == using,
                (Command::Watch(_) | Command::Ignore(_), Reply::Watching(_)) => true,
                (_, other) => {
                    self.conn = None;
                    return Err(unexpected(command.name(), &other));
                }
            };
            if !ok {
                self.conn = None;
                return Err(Error::Protocol("the server uses another tube".into()));
            }
        }
        Ok(())
    }

    /// Dials again with the client's back-off until it succeeds or the attempts run out.
    pub fn reconnect(&mut self) -> Result<(), Error> {
        let backoff = self.config.reconnect;
        let mut attempt = 1;
        loop {
            match self.reconnect_once() {
                Ok(()) => return Ok(()),
                Err(error) if attempt >= backoff.attempts => return Err(error),
                Err(error) => {
                    tracing::debug!(addr = %self.config.addr, attempt, %error, "beanstalkd reconnect failed");
                    std::thread::sleep(backoff.delay(attempt));
                    attempt += 1;
                }
            }
        }
    }

    /// Sends `commands` in one write and reads their replies in order: one round trip. The
    /// outer error means nothing was sent or the write failed (effects unknown); inside, each
    /// command has its reply (possibly an error reply) or the connection failure that ended
    /// the batch, and [`Error::NoReply`] after it.
    pub(crate) fn pipeline(
        &mut self,
        commands: &[Command<'_>],
    ) -> Result<Vec<Result<Reply, Error>>, Error> {
        if self.conn.is_none() {
            self.reconnect()?;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::Closed);
        };
        self.out.clear();
        for command in commands {
            command.encode(&mut self.out);
        }
        if let Err(error) = conn.write_all(&self.out) {
            self.conn = None;
            return Err(error);
        }
        let mut replies = Vec::with_capacity(commands.len());
        for command in commands {
            let wait = match *command {
                Command::ReserveWithTimeout(secs) => Duration::from_secs(u64::from(secs)),
                _ => Duration::ZERO,
            };
            match conn.read_reply(wait) {
                Ok(reply) => replies.push(Ok(reply)),
                Err(error) => {
                    self.conn = None;
                    replies.push(Err(error));
                    break;
                }
            }
        }
        replies.resize_with(commands.len(), || Err(Error::NoReply));
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new();
        }
        Ok(replies)
    }

    /// Sends one command and returns its reply, with error replies as errors.
    fn command(&mut self, command: Command<'_>) -> Result<Reply, Error> {
        let reply = self
            .pipeline(&[command])?
            .pop()
            .unwrap_or(Err(Error::NoReply))?;
        self.check(reply)
    }

    /// Turns an error reply into its error, dropping the connection after one that leaves it
    /// out of step.
    pub(crate) fn check(&mut self, reply: Reply) -> Result<Reply, Error> {
        match reply {
            Reply::Error(error) => {
                let error = Error::from(error);
                if error.is_connection_error() {
                    self.conn = None;
                }
                Err(error)
            }
            reply => Ok(reply),
        }
    }

    /// Drops the connection after a reply that does not answer `command`, and says so.
    pub(crate) fn unexpected(&mut self, command: &'static str, reply: &Reply) -> Error {
        self.conn = None;
        unexpected(command, reply)
    }

    /// Checks a body against the client's limit.
    pub(crate) fn check_body(&self, body: &[u8]) -> Result<(), Error> {
        if body.len() > self.config.max_body {
            return Err(Error::BodyTooLarge {
                size: body.len(),
                limit: self.config.max_body,
            });
        }
        Ok(())
    }

    /// Puts a job into the used tube; returns its id.
    ///
    /// `BURIED <id>` (the server could not grow its queue) is [`Error::Buried`] with the id:
    /// the job exists, buried.
    pub fn put(&mut self, body: &[u8], options: PutOptions) -> Result<u64, Error> {
        self.check_body(body)?;
        match self.command(options.command(body))? {
            Reply::Inserted(id) => Ok(id),
            Reply::BuriedId(id) => Err(Error::Buried { id: Some(id) }),
            other => Err(self.unexpected("put", &other)),
        }
    }

    /// Makes `put` go to `tube`.
    pub fn use_tube(&mut self, tube: &str) -> Result<(), Error> {
        check_tube(tube)?;
        match self.command(Command::Use(tube))? {
            Reply::Using(name) if name == tube => {
                self.using = tube.to_owned();
                Ok(())
            }
            other => Err(self.unexpected("use", &other)),
        }
    }

    /// Adds `tube` to the tubes `reserve` takes from; returns how many are watched.
    pub fn watch(&mut self, tube: &str) -> Result<usize, Error> {
        check_tube(tube)?;
        match self.command(Command::Watch(tube))? {
            Reply::Watching(n) => {
                if !self.watching.iter().any(|t| t == tube) {
                    self.watching.push(tube.to_owned());
                }
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
            other => Err(self.unexpected("watch", &other)),
        }
    }

    /// Removes `tube` from the tubes `reserve` takes from; returns how many are watched.
    /// [`Error::NotIgnored`] for the last one.
    pub fn ignore(&mut self, tube: &str) -> Result<usize, Error> {
        check_tube(tube)?;
        match self.command(Command::Ignore(tube))? {
            Reply::Watching(n) => {
                self.watching.retain(|t| t != tube);
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
            other => Err(self.unexpected("ignore", &other)),
        }
    }

    /// Reserves a job from the watched tubes, waiting up to `timeout` (whole seconds, rounded
    /// up; zero polls). [`Error::TimedOut`] when none came; [`Error::DeadlineSoon`] when a job
    /// this connection holds is within a second of its TTR and no job was ready.
    pub fn reserve_with_timeout(&mut self, timeout: Duration) -> Result<Job, Error> {
        match self.command(Command::ReserveWithTimeout(reserve_seconds(timeout)))? {
            Reply::Reserved { id, body } => Ok(Job { id, body }),
            other => Err(self.unexpected("reserve-with-timeout", &other)),
        }
    }

    /// Deletes a job: one this connection reserved, or any ready, delayed or buried job.
    pub fn delete(&mut self, id: u64) -> Result<(), Error> {
        self.expect(Command::Delete(id), Reply::Deleted)
    }

    /// Puts a job this connection reserved back, ready after `delay` (whole seconds, rounded
    /// up), with a new priority. [`Error::Buried`] if the server buried it for lack of memory.
    pub fn release(&mut self, id: u64, priority: u32, delay: Duration) -> Result<(), Error> {
        let command = Command::Release {
            id,
            pri: priority,
            delay: whole_seconds(delay),
        };
        match self.command(command)? {
            Reply::Released => Ok(()),
            Reply::Buried => Err(Error::Buried { id: Some(id) }),
            other => Err(self.unexpected("release", &other)),
        }
    }

    /// Buries a job this connection reserved, with a new priority.
    pub fn bury(&mut self, id: u64, priority: u32) -> Result<(), Error> {
        self.expect(Command::Bury { id, pri: priority }, Reply::Buried)
    }

    /// Restarts the TTR of a job this connection reserved.
    pub fn touch(&mut self, id: u64) -> Result<(), Error> {
        self.expect(Command::Touch(id), Reply::Touched)
    }

    /// Moves up to `bound` jobs of the used tube to ready: buried ones if there are any,
    /// otherwise delayed ones. Returns how many moved.
    pub fn kick(&mut self, bound: u64) -> Result<u64, Error> {
        match self.command(Command::Kick(bound))? {
            Reply::KickedCount(n) => Ok(n),
            other => Err(self.unexpected("kick", &other)),
        }
    }

    /// Moves one buried or delayed job to ready.
    pub fn kick_job(&mut self, id: u64) -> Result<(), Error> {
        self.expect(Command::KickJob(id), Reply::Kicked)
    }

    /// A job's statistics.
    pub fn stats_job(&mut self, id: u64) -> Result<JobStats, Error> {
        match self.command(Command::StatsJob(id))? {
            Reply::Ok(body) => JobStats::parse(&body).map_err(|e| self.protocol(e.into())),
            other => Err(self.unexpected("stats-job", &other)),
        }
    }

    /// A tube's statistics; [`Error::NotFound`] when the tube does not exist (tubes vanish
    /// when empty and unused).
    pub fn stats_tube(&mut self, tube: &str) -> Result<TubeStats, Error> {
        check_tube(tube)?;
        match self.command(Command::StatsTube(tube))? {
            Reply::Ok(body) => TubeStats::parse(&body).map_err(|e| self.protocol(e.into())),
            other => Err(self.unexpected("stats-tube", &other)),
        }
    }

    /// The server's statistics.
    pub fn stats(&mut self) -> Result<ServerStats, Error> {
        match self.command(Command::Stats)? {
            Reply::Ok(body) => ServerStats::parse(&body).map_err(|e| self.protocol(e.into())),
            other => Err(self.unexpected("stats", &other)),
        }
    }

    fn expect(&mut self, command: Command<'_>, wanted: Reply) -> Result<(), Error> {
        let name = command.name();
        let reply = self.command(command)?;
        if reply == wanted {
            Ok(())
        } else {
            Err(self.unexpected(name, &reply))
        }
    }

    /// A stats body that does not parse: the server is not what the client expects.
    fn protocol(&mut self, error: Error) -> Error {
        self.conn = None;
        error
    }
}

fn check_tube(tube: &str) -> Result<(), Error> {
    check_tube_name(tube).map_err(|reason| Error::InvalidTube {
        name: tube.to_owned(),
        reason,
    })
}

fn unexpected(command: &'static str, reply: &Reply) -> Error {
    Error::UnexpectedReply {
        command,
        reply: format!("{reply:?}"),
    }
}

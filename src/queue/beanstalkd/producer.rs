//! [`Producer`]: puts jobs into one tube, one at a time or in pipelined batches.

use super::client::Client;
use super::error::Error;
use super::options::PutOptions;
use super::proto::{Command, Reply};

/// Puts per round trip at most: a batch goes out in chunks of this many (or of
/// [`CHUNK_BYTES`]), each written whole before its replies are read, so neither side's socket
/// buffers can fill while the other waits.
pub const CHUNK_JOBS: usize = 512;

/// Bytes of commands and bodies per round trip at most (see [`CHUNK_JOBS`]).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Puts jobs into one tube.
///
/// ```no_run
/// use uberpool::queue::beanstalkd::{Producer, PutOptions};
///
/// let mut producer = Producer::connect("127.0.0.1:11300", "emails")?;
/// let bodies: Vec<Vec<u8>> = (0..1000).map(|i| format!("recipient {i}").into_bytes()).collect();
/// let results = producer.put_batch(bodies.iter().map(|b| (&b[..], PutOptions::new())));
/// assert!(results.iter().all(Result::is_ok));
/// # Ok::<(), uberpool::queue::beanstalkd::Error>(())
/// ```
#[derive(Debug)]
pub struct Producer {
    client: Client,
}

impl Producer {
    /// Connects to the server at `addr` and uses `tube`.
    pub fn connect(addr: impl Into<String>, tube: &str) -> Result<Producer, Error> {
        Producer::new(Client::connect(addr)?, tube)
    }

    /// Uses `tube` on `client`.
    pub fn new(mut client: Client, tube: &str) -> Result<Producer, Error> {
        client.use_tube(tube)?;
        Ok(Producer { client })
    }

    /// The tube jobs go to.
    pub fn tube(&self) -> &str {
        self.client.using()
    }

    /// The client, for other commands.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Puts one job; returns its id (see [`Client::put`]).
    pub fn put(&mut self, body: &[u8], options: PutOptions) -> Result<u64, Error> {
        self.client.put(body, options)
    }

    /// Puts every job of `jobs`, pipelined: each chunk of up to [`CHUNK_JOBS`] jobs (or
    /// [`CHUNK_BYTES`]) is written whole, then its replies are read — one round trip per
    /// chunk. Returns one result per job, in order: the new id, or why the job was not put.
    ///
    /// A body over the client's limit fails alone, before anything is sent. When the
    /// connection fails, the rest of that chunk gets the failure ([`Error::NoReply`] after the
    /// first): those jobs may or may not be in the queue, and only an idempotent consumer may
    /// safely put them again. The next chunk dials again.
    pub fn put_batch<'a>(
        &mut self,
        jobs: impl IntoIterator<Item = (&'a [u8], PutOptions)>,
    ) -> Vec<Result<u64, Error>> {
        let mut results: Vec<Result<u64, Error>> = Vec::new();
        // Positions in `results` of the chunk's jobs, and their commands.
        let mut chunk: Vec<(usize, Command<'a>)> = Vec::new();
        let mut chunk_bytes = 0;
        for (body, options) in jobs {
            let index = results.len();
            match self.client.check_body(body) {
                Err(error) => results.push(Err(error)),
                Ok(()) => {
                    results.push(Err(Error::NoReply));
                    chunk.push((index, options.command(body)));
                    chunk_bytes += body.len() + 64;
                    if chunk.len() >= CHUNK_JOBS || chunk_bytes >= CHUNK_BYTES {
                        self.send_chunk(&chunk, &mut results);
                        chunk.clear();
                        chunk_bytes = 0;
                    }
                }
            }
        }
        if !chunk.is_empty() {
            self.send_chunk(&chunk, &mut results);
        }
        results
    }

    fn send_chunk(&mut self, chunk: &[(usize, Command<'_>)], results: &mut [Result<u64, Error>]) {
        let commands: Vec<Command<'_>> = chunk.iter().map(|&(_, command)| command).collect();
        let replies = match self.client.pipeline(&commands) {
            Ok(replies) => replies,
            Err(error) => {
                if let Some(&(first, _)) = chunk.first() {
                    results[first] = Err(error);
                }
                return;
            }
        };
        let mut in_step = true;
        for (&(index, _), reply) in chunk.iter().zip(replies) {
            results[index] = match reply {
                _ if !in_step => Err(Error::NoReply),
                Err(error) => Err(error),
                Ok(reply) => match self.client.check(reply) {
                    Ok(Reply::Inserted(id)) => Ok(id),
                    Ok(Reply::BuriedId(id)) => Err(Error::Buried { id: Some(id) }),
                    Ok(other) => Err(self.client.unexpected("put", &other)),
                    Err(error) => Err(error),
                },
            };
            // After a reply that leaves the connection out of step, later replies mean
            // nothing.
            in_step = self.client.is_connected();
        }
    }
}

//! [`BeanstalkdBackend`]: one tube as a [`Backend`] for the consumer — settlements and
//! reserves pipelined in one round trip, then one more for the reserved jobs' `stats-job`
//! (their delivery count, TTR and priority).

use std::collections::HashMap;
use std::time::Duration;

use super::client::{Client, DEFAULT_TUBE};
use super::error::Error;
use super::options::{reserve_seconds, whole_seconds};
use super::proto::{Command, Reply};
use super::stats::JobStats;
use crate::queue::{Backend, Exchange, JobId, Reserved, Settle, Settled, Settlement};

/// A consumer's view of one beanstalkd tube, over its own connection.
///
/// Releases and burials keep the priority the job was put with. Retry delays are whole
/// seconds, rounded up.
///
/// ```no_run
/// use uberpool::queue::Consumer;
/// use uberpool::queue::beanstalkd::BeanstalkdBackend;
/// use uberpool::{SchedulerService, queue::Outcome};
///
/// let service = SchedulerService::builder().build()?;
/// let backend = BeanstalkdBackend::connect("127.0.0.1:11300", "emails")?;
/// let consumer = Consumer::builder(backend)
///     .name("mailer")
///     .start(&service.io(), |job| {
///         println!("sending {:?}", job.text());
///         Outcome::Done
///     })?;
/// // ... until the process is asked to stop:
/// let report = consumer.stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BeanstalkdBackend {
    client: Client,
    tube: String,
    /// Priorities of the jobs held, from their `stats-job`: a release or burial keeps them.
    priorities: HashMap<u64, u32>,
}

/// The priority of a job whose `stats-job` was not read.
const FALLBACK_PRIORITY: u32 = 1024;

impl BeanstalkdBackend {
    /// Connects to the server at `addr` and watches `tube` only.
    pub fn connect(addr: impl Into<String>, tube: &str) -> Result<BeanstalkdBackend, Error> {
        BeanstalkdBackend::new(Client::connect(addr)?, tube)
    }

    /// Makes `client` watch `tube` only (it keeps doing so across reconnects).
    pub fn new(mut client: Client, tube: &str) -> Result<BeanstalkdBackend, Error> {
        client.watch(tube)?;
        if tube != DEFAULT_TUBE {
            client.ignore(DEFAULT_TUBE)?;
        }
        Ok(BeanstalkdBackend {
            client,
            tube: tube.to_owned(),
            priorities: HashMap::new(),
        })
    }

    /// The tube consumed.
    pub fn tube(&self) -> &str {
        &self.tube
    }

    /// The client.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn priority(&self, id: u64) -> u32 {
        self.priorities
            .get(&id)
            .copied()
            .unwrap_or(FALLBACK_PRIORITY)
    }

    /// The settled state of one settlement from its reply.
    fn settled(&mut self, action: &Settle, reply: Reply) -> Result<Settled, Error> {
        let reply = match self.client.check(reply) {
            Ok(reply) => reply,
            Err(Error::NotFound) => return Ok(Settled::Gone),
            Err(error) if error.is_connection_error() => return Err(error),
            Err(error) => return Ok(Settled::Failed(error.to_string())),
        };
        Ok(match (action, reply) {
            (Settle::Ack, Reply::Deleted)
            | (Settle::Retry { .. }, Reply::Released)
            | (Settle::DeadLetter { .. }, Reply::Buried)
            | (Settle::ExtendLease, Reply::Touched) => Settled::Applied,
            (Settle::Retry { .. }, Reply::Buried) => Settled::DeadLettered,
            (_, other) => return Err(self.client.unexpected("a settlement", &other)),
        })
    }
}

impl Backend for BeanstalkdBackend {
    type Error = Error;

    fn source(&self) -> String {
        format!("beanstalkd {} tube {}", self.client.addr(), self.tube)
    }

    fn exchange(
        &mut self,
        settlements: &[Settlement],
        max: usize,
        wait: Duration,
    ) -> Result<Exchange, Error> {
        if !self.client.is_connected() {
            return Err(Error::Closed);
        }
        let mut commands = Vec::with_capacity(settlements.len() + max);
        let mut settled_ids = Vec::with_capacity(settlements.len());
        for settlement in settlements {
            let id = settlement.job.as_number().ok_or_else(|| {
                Error::Protocol(format!("{} is not a beanstalkd job id", settlement.job))
            })?;
            let pri = self.priority(id);
            commands.push(match &settlement.action {
                Settle::Ack => Command::Delete(id),
                Settle::Retry { delay } => Command::Release {
                    id,
                    pri,
                    delay: whole_seconds(*delay),
                },
                Settle::DeadLetter { .. } => Command::Bury { id, pri },
                Settle::ExtendLease => Command::Touch(id),
            });
            if settlement.action != Settle::ExtendLease {
                settled_ids.push(id);
            }
        }
        if wait.is_zero() {
            commands.extend(std::iter::repeat_n(Command::ReserveWithTimeout(0), max));
        } else if max > 0 {
            commands.push(Command::ReserveWithTimeout(reserve_seconds(wait)));
        }
        let replies = self.client.pipeline(&commands)?;
        for id in settled_ids {
            self.priorities.remove(&id);
        }
        let mut exchange = Exchange::default();
        let mut replies = replies.into_iter();
        for settlement in settlements {
            let reply = replies.next().unwrap_or(Err(Error::NoReply))?;
            let settled = self.settled(&settlement.action, reply)?;
            exchange.settled.push(settled);
        }
        let mut jobs = Vec::new();
        for reply in replies {
            match self.client.check(reply?) {
                Ok(Reply::Reserved { id, body }) => jobs.push((id, body)),
                Ok(other) => return Err(self.client.unexpected("reserve-with-timeout", &other)),
                Err(Error::TimedOut) => {}
                Err(Error::DeadlineSoon) => exchange.lease_warning = true,
                Err(error) => return Err(error),
            }
        }
        if jobs.is_empty() {
            return Ok(exchange);
        }
        // The second round trip: each job's delivery count, TTR and priority.
        let stats: Vec<Command<'_>> = jobs.iter().map(|&(id, _)| Command::StatsJob(id)).collect();
        let replies = self.client.pipeline(&stats)?;
        for ((id, body), reply) in jobs.into_iter().zip(replies) {
            match self.client.check(reply?) {
                Ok(Reply::Ok(yaml)) => {
                    let stats = JobStats::parse(&yaml).map_err(|e| {
                        self.client.disconnect();
                        Error::from(e)
                    })?;
                    self.priorities.insert(id, stats.priority);
                    exchange.reserved.push(Reserved {
                        id: JobId::number(id),
                        body,
                        deliveries: stats.reserves,
                        lease: stats.ttr,
                    });
                }
                // The job is gone already (deleted by another client): nothing to run.
                Err(Error::NotFound) => {}
                Ok(other) => return Err(self.client.unexpected("stats-job", &other)),
                Err(error) => return Err(error),
            }
        }
        Ok(exchange)
    }

    fn reconnect(&mut self) -> Result<(), Error> {
        self.priorities.clear();
        self.client.reconnect_once()
    }

    fn session(&self) -> u64 {
        self.client.generation()
    }
}

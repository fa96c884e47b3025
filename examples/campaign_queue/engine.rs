//! The queue engine the campaign runs on. The one place that names an engine: enqueueing,
//! watching the backlog, and building the consumer's backend. The worker's job handling
//! (`worker.rs`) and the demo (`demo.rs`) only see this module, so another engine is one more
//! variant here and one more value of `--backend`.

use std::error::Error;
use std::time::Duration;

use uberpool::Scheduler;
use uberpool::queue::beanstalkd::{self, BeanstalkdBackend, Client, Producer, PutOptions};
use uberpool::queue::{Backend, Consumer, ConsumerBuilder, Delivery, Outcome};

/// Where the jobs live.
#[derive(Clone, Debug)]
pub enum Engine {
    /// A beanstalkd server at `addr` (`host:port`).
    Beanstalkd { addr: String },
}

/// Jobs of one queue by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
}

impl Backlog {
    /// Jobs not yet done (buried ones are done with, but not delivered).
    pub fn pending(&self) -> u64 {
        self.ready + self.reserved + self.delayed
    }
}

/// How the worker's consumer behaves.
#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub name: String,
    pub prefetch: usize,
    pub max_attempts: u32,
    pub grace: Duration,
}

impl Engine {
    /// Picks the engine from `--backend` (default `beanstalkd`) and its address option.
    pub fn choose(backend: Option<&str>, beanstalkd: Option<String>) -> Result<Engine, String> {
        match backend.unwrap_or("beanstalkd") {
            "beanstalkd" => beanstalkd
                .map(|addr| Engine::Beanstalkd { addr })
                .ok_or_else(|| "--beanstalkd HOST:PORT is required".to_owned()),
            other => Err(format!("--backend {other:?}: this build knows beanstalkd")),
        }
    }

    /// The `--backend` value and address, as the worker processes are given them.
    pub fn args(&self) -> Vec<String> {
        match self {
            Engine::Beanstalkd { addr } => {
                vec![
                    "--backend".into(),
                    "beanstalkd".into(),
                    "--beanstalkd".into(),
                    addr.clone(),
                ]
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Engine::Beanstalkd { addr } => format!("beanstalkd at {addr}"),
        }
    }

    /// Puts one job per body, pipelined; puts that failed are tried again (up to 3 rounds).
    /// A put whose reply was lost may have been inserted: the job's idempotency key makes the
    /// repeat harmless.
    pub fn enqueue(
        &self,
        queue: &str,
        bodies: &[Vec<u8>],
        ttr: Duration,
    ) -> Result<(), Box<dyn Error>> {
        match self {
            Engine::Beanstalkd { addr } => {
                let mut producer = Producer::connect(addr.clone(), queue)?;
                let options = PutOptions::new().ttr(ttr);
                let mut todo: Vec<&Vec<u8>> = bodies.iter().collect();
                for round in 1..=3 {
                    let results = producer.put_batch(todo.iter().map(|b| (&b[..], options)));
                    let mut failed = Vec::new();
                    let mut last_error = None;
                    for (body, result) in todo.iter().zip(results) {
                        if let Err(error) = result {
                            failed.push(*body);
                            last_error = Some(error);
                        }
                    }
                    match last_error {
                        None => return Ok(()),
                        Some(error) if round == 3 => {
                            return Err(format!("{} jobs not put: {error}", failed.len()).into());
                        }
                        Some(error) => {
                            eprintln!("{} puts failed ({error}); trying them again", failed.len());
                        }
                    }
                    todo = failed;
                }
                Ok(())
            }
        }
    }

    /// A connection for watching `queue`'s backlog.
    pub fn monitor(&self) -> Result<Monitor, Box<dyn Error>> {
        match self {
            Engine::Beanstalkd { addr } => Ok(Monitor::Beanstalkd(Client::connect(addr.clone())?)),
        }
    }

    /// Starts a consumer of `queue` that runs `handler` on `scheduler`.
    pub fn start_consumer<F>(
        &self,
        queue: &str,
        settings: &ConsumerSettings,
        scheduler: &Scheduler,
        handler: F,
    ) -> Result<Consumer, Box<dyn Error>>
    where
        F: Fn(&Delivery) -> Outcome + Send + Sync + 'static,
    {
        match self {
            Engine::Beanstalkd { addr } => {
                let backend = BeanstalkdBackend::connect(addr.clone(), queue)?;
                Ok(configure(backend, settings).start(scheduler, handler)?)
            }
        }
    }
}

/// The consumer settings every engine shares.
fn configure<B: Backend>(backend: B, settings: &ConsumerSettings) -> ConsumerBuilder<B> {
    Consumer::builder(backend)
        .name(&settings.name)
        .prefetch(settings.prefetch)
        .max_attempts(settings.max_attempts)
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(30))
        .grace(settings.grace)
}

/// A connection that reads a queue's backlog.
pub enum Monitor {
    Beanstalkd(Client),
}

impl Monitor {
    pub fn backlog(&mut self, queue: &str) -> Result<Backlog, Box<dyn Error>> {
        match self {
            Monitor::Beanstalkd(client) => match client.stats_tube(queue) {
                Ok(stats) => Ok(Backlog {
                    ready: stats.ready,
                    reserved: stats.reserved,
                    delayed: stats.delayed,
                    buried: stats.buried,
                }),
                // A tube nobody uses and that holds no job no longer exists.
                Err(beanstalkd::Error::NotFound) => Ok(Backlog::default()),
                Err(error) => Err(error.into()),
            },
        }
    }
}

//! The queue engine the campaign runs on. The one place that names an engine: enqueueing,
//! watching the backlog, and building the consumer's backend. The worker's job handling
//! (`worker.rs`) and the demo (`demo.rs`) only see this module, so another engine is one more
//! variant here and one more value of `--backend`. Each engine is compiled with its cargo
//! feature (`beanstalkd`, `redis`).

use std::error::Error;
use std::time::Duration;

use uberpool::Scheduler;
#[cfg(feature = "beanstalkd")]
use uberpool::queue::beanstalkd::{self, BeanstalkdBackend, Client, PutOptions};
#[cfg(feature = "redis")]
use uberpool::queue::redis::{self as redis_queue, RedisBackend, RedisQueue};
use uberpool::queue::{Backend, Consumer, ConsumerBuilder, Delivery, Outcome};

/// Where the jobs live.
#[derive(Clone, Debug)]
pub enum Engine {
    /// A beanstalkd server at `addr` (`host:port`).
    #[cfg(feature = "beanstalkd")]
    Beanstalkd { addr: String },
    /// A Redis server or cluster at `urls` (comma-separated `redis://host:port`; several are
    /// seeds of one cluster).
    #[cfg(feature = "redis")]
    Redis { urls: String },
}

/// Jobs of one queue by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Not yet delivered.
    pub ready: u64,
    /// Delivered to a worker and not yet settled (beanstalkd: reserved; Redis: pending in the
    /// group).
    pub reserved: u64,
    /// Retried, waiting out their back-off.
    pub delayed: u64,
    /// Given up (beanstalkd: buried; Redis: dead letters).
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
    /// How long a job stays a worker's without an extension (Redis; beanstalkd's is the TTR
    /// given at enqueue).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub lease: Duration,
}

/// Puts a batch of bodies; one result per body.
type PutBatch = dyn FnMut(&[&Vec<u8>]) -> Vec<Result<(), String>>;

/// The engines this build has, for messages.
pub fn built_in() -> &'static str {
    match (cfg!(feature = "beanstalkd"), cfg!(feature = "redis")) {
        (true, true) => "beanstalkd and redis",
        (true, false) => "beanstalkd (build with --features redis for redis)",
        (false, true) => "redis (build with --features beanstalkd for beanstalkd)",
        (false, false) => "no engine (build with --features beanstalkd or --features redis)",
    }
}

impl Engine {
    /// Picks the engine from `--backend` (default `beanstalkd`, or `redis` when it is the only
    /// one built) and its address option; `Ok(None)` when the address is missing (the demo then
    /// starts its own server).
    pub fn choose(
        backend: Option<&str>,
        beanstalkd: Option<String>,
        redis: Option<String>,
    ) -> Result<Option<Engine>, String> {
        let default = if cfg!(feature = "beanstalkd") {
            "beanstalkd"
        } else {
            "redis"
        };
        let _ = (&beanstalkd, &redis);
        match backend.unwrap_or(default) {
            #[cfg(feature = "beanstalkd")]
            "beanstalkd" => Ok(beanstalkd.map(|addr| Engine::Beanstalkd { addr })),
            #[cfg(feature = "redis")]
            "redis" => Ok(redis.map(|urls| Engine::Redis { urls })),
            other => Err(format!(
                "--backend {other:?}: this build knows {}",
                built_in()
            )),
        }
    }

    /// The `--backend` value and address, as the worker processes are given them.
    pub fn args(&self) -> Vec<String> {
        match self {
            #[cfg(feature = "beanstalkd")]
            Engine::Beanstalkd { addr } => {
                vec![
                    "--backend".into(),
                    "beanstalkd".into(),
                    "--beanstalkd".into(),
                    addr.clone(),
                ]
            }
            #[cfg(feature = "redis")]
            Engine::Redis { urls } => {
                vec![
                    "--backend".into(),
                    "redis".into(),
                    "--redis".into(),
                    urls.clone(),
                ]
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            #[cfg(feature = "beanstalkd")]
            Engine::Beanstalkd { addr } => format!("beanstalkd at {addr}"),
            #[cfg(feature = "redis")]
            Engine::Redis { urls } => format!("redis at {urls}"),
        }
    }

    /// What an empty queue means on this engine, for the demo's summary.
    pub fn empty_means(&self) -> &'static str {
        match self {
            #[cfg(feature = "beanstalkd")]
            Engine::Beanstalkd { .. } => "no ready, reserved, delayed or buried job",
            #[cfg(feature = "redis")]
            Engine::Redis { .. } => {
                "no entry undelivered, pending in the group, delayed or dead, on any shard"
            }
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
        let _ = ttr;
        let mut todo: Vec<&Vec<u8>> = bodies.iter().collect();
        let mut put: Box<PutBatch> = match self {
            #[cfg(feature = "beanstalkd")]
            Engine::Beanstalkd { addr } => {
                let mut producer = beanstalkd::Producer::connect(addr.clone(), queue)?;
                let options = PutOptions::new().ttr(ttr);
                Box::new(move |batch| {
                    producer
                        .put_batch(batch.iter().map(|b| (&b[..], options)))
                        .into_iter()
                        .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                        .collect()
                })
            }
            #[cfg(feature = "redis")]
            Engine::Redis { urls } => {
                let mut producer = redis_queue::Producer::connect(urls, &RedisQueue::new(queue))?;
                Box::new(move |batch| {
                    producer
                        .put_batch(batch.iter().map(|b| &b[..]))
                        .into_iter()
                        .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                        .collect()
                })
            }
        };
        for round in 1..=3 {
            let results = put(&todo);
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

    /// A connection for watching `queue`'s backlog.
    pub fn monitor(&self, queue: &str) -> Result<Monitor, Box<dyn Error>> {
        let _ = queue;
        match self {
            #[cfg(feature = "beanstalkd")]
            Engine::Beanstalkd { addr } => Ok(Monitor::Beanstalkd(Client::connect(addr.clone())?)),
            #[cfg(feature = "redis")]
            Engine::Redis { urls } => Ok(Monitor::Redis(redis_queue::Producer::connect(
                urls,
                &RedisQueue::new(queue),
            )?)),
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
            #[cfg(feature = "beanstalkd")]
            Engine::Beanstalkd { addr } => {
                let backend = BeanstalkdBackend::connect(addr.clone(), queue)?;
                Ok(configure(backend, settings).start(scheduler, handler)?)
            }
            #[cfg(feature = "redis")]
            Engine::Redis { urls } => {
                let backend = RedisBackend::builder(urls, &RedisQueue::new(queue))
                    .consumer_name(&settings.name)
                    .lease(settings.lease)
                    .connect()?;
                Ok(configure(backend, settings).start(scheduler, handler)?)
            }
        }
    }
}

/// The consumer settings every engine shares.
#[allow(dead_code)] // unused in a build without any engine
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
    #[cfg(feature = "beanstalkd")]
    Beanstalkd(Client),
    #[cfg(feature = "redis")]
    Redis(redis_queue::Producer),
}

impl Monitor {
    pub fn backlog(&mut self, queue: &str) -> Result<Backlog, Box<dyn Error>> {
        let _ = queue;
        match self {
            #[cfg(feature = "beanstalkd")]
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
            #[cfg(feature = "redis")]
            Monitor::Redis(producer) => {
                let stats = producer.stats()?;
                Ok(Backlog {
                    ready: stats.ready(),
                    reserved: stats.pending(),
                    delayed: stats.delayed(),
                    buried: stats.dead(),
                })
            }
        }
    }
}

//! A mail campaign drained by many worker processes from a durable queue: nothing is lost when
//! a worker dies, and every recipient gets exactly one message.
//!
//! ```text
//! campaign_queue enqueue ENGINE --recipients N [--tube T]
//! campaign_queue worker  ENGINE --smtp ADDR [--tube T] [--name W]
//!                        [--smtp-connections N] [--rate PER_SECOND] [--prefetch N]
//!                        [--lease-ms MS] [--report-ms MS] [--stop-on-eof]
//! campaign_queue demo    --recipients N --workers W [--kill-one] [ENGINE]
//!                        [--smtp-connections N] [--prefetch N] [--refuse-first-percent P]
//!
//! ENGINE: [--backend beanstalkd] --beanstalkd HOST:PORT
//!       | --backend redis --redis URL[,URL…]      (several URLs: seeds of one cluster)
//! ```
//!
//! `enqueue` puts one job per recipient (its body carries the recipient and an idempotency key).
//! `worker` consumes the queue with a capacity-aware consumer and sends each message through a
//! throttled IO view holding the relay's connection limit; it runs until killed, or until its
//! stdin closes with `--stop-on-eof` (then it drains gracefully). `demo` does it all on this
//! machine: its own engine on free loopback ports unless an address is given (a beanstalkd, or
//! a three-master Redis Cluster made with `redis-server --cluster-enabled yes` and `redis-cli
//! --cluster create`), the embedded SMTP relay, the jobs, W worker processes of this binary, one
//! killed with SIGKILL mid-campaign and replaced (`--kill-one`), and the checks at the relay.
//! Exit status 1 when a recipient did not get exactly one message or the queue did not drain.
//!
//! Engines, each with its cargo feature: `--backend beanstalkd` (the default when built) and
//! `--backend redis`. The job handling (`worker.rs`) is the same for both.
//!
//! Run: `cargo run --release --features beanstalkd --example campaign_queue -- demo
//! --recipients 5000 --workers 3 --kill-one`, or with `--features redis` and
//! `--backend redis`.

#[cfg(not(any(feature = "beanstalkd", feature = "redis")))]
compile_error!(
    "campaign_queue needs an engine: build it with --features beanstalkd or --features redis"
);

#[path = "email/mod.rs"]
mod email;

#[path = "campaign_queue/demo.rs"]
mod demo;
#[path = "campaign_queue/engine.rs"]
mod engine;
#[path = "campaign_queue/job.rs"]
mod job;
#[cfg(feature = "redis")]
#[path = "campaign_queue/redis_server.rs"]
mod redis_server;
#[path = "campaign_queue/relay.rs"]
mod relay;
#[cfg(feature = "beanstalkd")]
#[path = "campaign_queue/server.rs"]
mod server;
#[path = "campaign_queue/worker.rs"]
mod worker;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use email::campaign::SubscriberStore;
use engine::Engine;
use job::CampaignJob;

const USAGE: &str = "usage:
  campaign_queue enqueue ENGINE --recipients N [--tube T]
  campaign_queue worker  ENGINE --smtp ADDR [--tube T] [--name W] [--smtp-connections N]
                         [--rate PER_SECOND] [--prefetch N] [--lease-ms MS] [--report-ms MS]
                         [--stop-on-eof]
  campaign_queue demo    --recipients N --workers W [--kill-one] [ENGINE]
                         [--smtp-connections N] [--prefetch N] [--refuse-first-percent P]
                         [--lease-ms MS]
  ENGINE: [--backend beanstalkd] --beanstalkd HOST:PORT
        | --backend redis --redis URL[,URL...]   (several URLs: seeds of one cluster)
  (--queue is another name for --tube)";

/// The options after the subcommand: `--flag value` pairs and bare flags.
struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>, bare: &[&str]) -> Result<Args, String> {
        let mut parsed = Args {
            values: HashMap::new(),
            flags: Vec::new(),
        };
        while let Some(arg) = args.next() {
            if !arg.starts_with("--") {
                return Err(format!("unexpected argument {arg:?}"));
            }
            if bare.contains(&arg.as_str()) {
                parsed.flags.push(arg);
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            parsed.values.insert(arg, value);
        }
        Ok(parsed)
    }

    fn text(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    fn number<T: std::str::FromStr>(&mut self, key: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.remove(key) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|e| format!("{key} {text:?}: {e}")),
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }

    /// Fails on an option no one asked for.
    fn finish(self) -> Result<(), String> {
        match self.values.keys().next() {
            Some(key) => Err(format!("unknown option {key}")),
            None => Ok(()),
        }
    }

    /// The engine named by `--backend` and its address option, if the address is given.
    fn engine_if_given(&mut self) -> Result<(String, Option<Engine>), String> {
        let backend = self.text("--backend");
        let engine = Engine::choose(
            backend.as_deref(),
            self.text("--beanstalkd"),
            self.text("--redis"),
        )?;
        let name = backend.unwrap_or_else(|| {
            if cfg!(feature = "beanstalkd") {
                "beanstalkd".to_owned()
            } else {
                "redis".to_owned()
            }
        });
        Ok((name, engine))
    }

    /// The engine, whose address is required.
    fn engine(&mut self) -> Result<Engine, String> {
        match self.engine_if_given()? {
            (_, Some(engine)) => Ok(engine),
            (name, None) if name == "redis" => Err("--redis URL[,URL...] is required".into()),
            (name, None) => Err(format!("--{name} HOST:PORT is required")),
        }
    }

    /// The queue's name: `--tube` or `--queue` (default `campaign`).
    fn queue(&mut self) -> String {
        let tube = self.text("--tube");
        let queue = self.text("--queue");
        tube.or(queue).unwrap_or_else(|| "campaign".to_owned())
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let result = match command.as_str() {
        "enqueue" => Args::parse(args, &[]).and_then(enqueue),
        "worker" => Args::parse(args, &["--stop-on-eof"]).and_then(worker),
        "demo" => Args::parse(args, &["--kill-one"]).and_then(demo),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("campaign_queue {command}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn enqueue(mut args: Args) -> Result<bool, String> {
    let engine = args.engine()?;
    let recipients: usize = args.number("--recipients", 1_000)?;
    let tube = args.queue();
    args.finish()?;
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let store = SubscriberStore::generate(recipients)?;
        let bodies: Vec<Vec<u8>> = store
            .fetch(0, recipients)?
            .into_iter()
            .map(|s| CampaignJob::new(&tube, s).encode())
            .collect();
        let started = Instant::now();
        engine.enqueue(&tube, &bodies, Duration::from_secs(60))?;
        println!(
            "enqueued {recipients} jobs into {tube} on {} in {:.0} ms",
            engine.describe(),
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    };
    run().map(|()| true).map_err(|e| e.to_string())
}

fn worker(mut args: Args) -> Result<bool, String> {
    let options = worker::WorkerOptions {
        engine: args.engine()?,
        queue: args.queue(),
        smtp: args.text("--smtp").ok_or("--smtp HOST:PORT is required")?,
        name: args
            .text("--name")
            .unwrap_or_else(|| format!("worker-{}", std::process::id())),
        smtp_connections: args.number("--smtp-connections", 4usize)?.max(1),
        rate: args
            .text("--rate")
            .map(|r| r.parse())
            .transpose()
            .map_err(|e| format!("--rate: {e}"))?,
        prefetch: args.number("--prefetch", 2)?,
        lease: Duration::from_millis(args.number("--lease-ms", 30_000u64)?.max(100)),
        report_every: args
            .text("--report-ms")
            .map(|ms| ms.parse().map(Duration::from_millis))
            .transpose()
            .map_err(|e| format!("--report-ms: {e}"))?,
        stop_on_eof: args.flag("--stop-on-eof"),
    };
    args.finish()?;
    worker::run(options)
        .map(|()| true)
        .map_err(|e| e.to_string())
}

fn demo(mut args: Args) -> Result<bool, String> {
    let (backend, engine) = args.engine_if_given()?;
    let options = demo::DemoOptions {
        recipients: args.number("--recipients", 5_000)?,
        workers: args.number("--workers", 3usize)?.max(1),
        kill_one: args.flag("--kill-one"),
        backend,
        engine,
        // Short, so that the killed worker's jobs come back soon (Redis claims them once
        // they sit idle this long).
        lease: Duration::from_millis(args.number("--lease-ms", 3_000u64)?.max(100)),
        smtp_connections: args.number("--smtp-connections", 4usize)?.max(1),
        prefetch: args.number("--prefetch", 2)?,
        refuse_first_percent: args.number("--refuse-first-percent", 2u32)?.min(100),
    };
    args.finish()?;
    demo::run(options).map_err(|e| e.to_string())
}

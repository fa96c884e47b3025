//! A mail campaign drained by many worker processes from a durable queue: nothing is lost when
//! a worker dies, and every recipient gets exactly one message.
//!
//! ```text
//! campaign_queue enqueue --beanstalkd ADDR --recipients N [--tube T]
//! campaign_queue worker  --beanstalkd ADDR --smtp ADDR [--tube T] [--name W]
//!                        [--smtp-connections N] [--rate PER_SECOND] [--prefetch N]
//!                        [--report-ms MS] [--stop-on-eof]
//! campaign_queue demo    --recipients N --workers W [--kill-one] [--beanstalkd ADDR]
//!                        [--smtp-connections N] [--prefetch N] [--refuse-first-percent P]
//! ```
//!
//! `enqueue` puts one job per recipient (its body carries the recipient and an idempotency key).
//! `worker` consumes the queue with a capacity-aware consumer and sends each message through a
//! throttled IO view holding the relay's connection limit; it runs until killed, or until its
//! stdin closes with `--stop-on-eof` (then it drains gracefully). `demo` does it all on this
//! machine: its own beanstalkd on a free loopback port unless `--beanstalkd` is given, the
//! embedded SMTP relay, the jobs, W worker processes of this binary, one killed with SIGKILL
//! mid-campaign and replaced (`--kill-one`), and the checks at the relay. Exit status 1 when a
//! recipient did not get exactly one message or the queue did not drain.
//!
//! Engines: `--backend beanstalkd` (the default, and the only one in this build).
//!
//! Run: `cargo run --release --features beanstalkd --example campaign_queue -- demo
//! --recipients 5000 --workers 3 --kill-one`.

#[path = "email/mod.rs"]
mod email;

#[path = "campaign_queue/demo.rs"]
mod demo;
#[path = "campaign_queue/engine.rs"]
mod engine;
#[path = "campaign_queue/job.rs"]
mod job;
#[path = "campaign_queue/relay.rs"]
mod relay;
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
  campaign_queue enqueue --beanstalkd ADDR --recipients N [--tube T]
  campaign_queue worker  --beanstalkd ADDR --smtp ADDR [--tube T] [--name W] [--smtp-connections N]
                         [--rate PER_SECOND] [--prefetch N] [--report-ms MS] [--stop-on-eof]
  campaign_queue demo    --recipients N --workers W [--kill-one] [--beanstalkd ADDR]
                         [--smtp-connections N] [--prefetch N] [--refuse-first-percent P]
  (every command also takes --backend beanstalkd, the default)";

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

    fn engine(&mut self) -> Result<Engine, String> {
        let backend = self.text("--backend");
        Engine::choose(backend.as_deref(), self.text("--beanstalkd"))
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
    let tube = args.text("--tube").unwrap_or_else(|| "campaign".to_owned());
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
        queue: args.text("--tube").unwrap_or_else(|| "campaign".to_owned()),
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
    let given = args.text("--beanstalkd");
    let backend = args.text("--backend");
    let engine = match given {
        Some(addr) => Some(Engine::choose(backend.as_deref(), Some(addr))?),
        None => {
            // Only beanstalkd can be started by the demo itself.
            Engine::choose(backend.as_deref(), Some(String::new()))?;
            None
        }
    };
    let options = demo::DemoOptions {
        recipients: args.number("--recipients", 5_000)?,
        workers: args.number("--workers", 3usize)?.max(1),
        kill_one: args.flag("--kill-one"),
        engine,
        smtp_connections: args.number("--smtp-connections", 4usize)?.max(1),
        prefetch: args.number("--prefetch", 2)?,
        refuse_first_percent: args.number("--refuse-first-percent", 2u32)?.min(100),
    };
    args.finish()?;
    demo::run(options).map_err(|e| e.to_string())
}

//! `demo`: the whole campaign on one machine. A queue engine (its own beanstalkd or three-node
//! Redis Cluster, unless given one), the SMTP relay, the jobs, W worker processes started from
//! this binary, one of them killed with SIGKILL mid-campaign and replaced (a supervisor's job),
//! then the checks: the queue drained, every recipient exactly one message at the relay.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::email::campaign::SubscriberStore;
use crate::engine::{Backlog, Engine};
use crate::job::CampaignJob;
#[cfg(feature = "redis")]
use crate::redis_server::LocalRedisCluster;
use crate::relay::DemoRelay;
#[cfg(feature = "beanstalkd")]
use crate::server::LocalBeanstalkd;

/// What `demo` was asked to do.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub recipients: usize,
    pub workers: usize,
    pub kill_one: bool,
    /// The engine to start when none is given: `beanstalkd` or `redis`.
    pub backend: String,
    /// A running engine to use instead of starting one.
    pub engine: Option<Engine>,
    /// How long a job stays a worker's without an extension (Redis).
    pub lease: Duration,
    pub smtp_connections: usize,
    pub prefetch: usize,
    pub refuse_first_percent: u32,
}

/// The demo gives up on a campaign that has not drained after this long.
const GIVE_UP: Duration = Duration::from_secs(900);

/// A worker's last reported counters.
#[derive(Clone, Debug, Default)]
struct WorkerCounts {
    fields: BTreeMap<String, u64>,
    final_report: bool,
    killed: bool,
}

impl WorkerCounts {
    fn get(&self, key: &str) -> u64 {
        self.fields.get(key).copied().unwrap_or(0)
    }
}

/// The worker processes and what they reported.
struct Fleet {
    worker_args: Vec<String>,
    children: Vec<(String, Child)>,
    counts: Arc<Mutex<BTreeMap<String, WorkerCounts>>>,
}

impl Fleet {
    fn spawn(&mut self, name: &str) -> Result<(), Box<dyn Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("worker")
            .args(&self.worker_args)
            .args(["--name", name, "--report-ms", "200", "--stop-on-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        let counts = self.counts.clone();
        let worker = name.to_owned();
        counts
            .lock()
            .unwrap()
            .insert(worker.clone(), WorkerCounts::default());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (kind, rest) = line.split_once(' ').unwrap_or((&line, ""));
                if kind != "progress" && kind != "final" {
                    continue;
                }
                let mut counts = counts.lock().unwrap();
                let entry = counts.entry(worker.clone()).or_default();
                for (key, value) in rest.split(' ').filter_map(|kv| kv.split_once('=')) {
                    if let Ok(value) = value.parse() {
                        entry.fields.insert(key.to_owned(), value);
                    }
                }
                entry.final_report |= kind == "final";
            }
        });
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// SIGKILLs `name`; returns its pid.
    fn kill(&mut self, name: &str) -> Result<u32, Box<dyn Error>> {
        let index = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .ok_or("no such worker")?;
        let (_, mut child) = self.children.remove(index);
        let pid = child.id();
        child.kill()?; // SIGKILL on Unix
        child.wait()?;
        if let Some(counts) = self.counts.lock().unwrap().get_mut(name) {
            counts.killed = true;
        }
        Ok(pid)
    }

    /// Closes every worker's stdin (a graceful stop) and waits for them to exit.
    fn stop_all(&mut self) -> Result<(), Box<dyn Error>> {
        for (_, child) in &mut self.children {
            drop(child.stdin.take());
        }
        for (name, child) in &mut self.children {
            let status = child.wait()?;
            if !status.success() {
                return Err(format!("worker {name} exited with {status}").into());
            }
        }
        self.children.clear();
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the demo; `Ok(false)` when a recipient did not get exactly one message or the queue
/// did not drain.
pub fn run(options: DemoOptions) -> Result<bool, Box<dyn Error>> {
    // The engine's own server, stopped when dropped (at the end of the demo).
    let mut local: Option<Box<dyn std::any::Any>> = None;
    let engine = match options.engine.clone() {
        Some(engine) => {
            println!("using {}", engine.describe());
            engine
        }
        None => start_engine(&options.backend, &mut local)?,
    };
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let queue = format!("campaign-{}-{stamp}", std::process::id());
    let relay = DemoRelay::start(options.refuse_first_percent)?;
    println!(
        "SMTP relay on {} (refusing {} % of recipients once with 450)",
        relay.addr(),
        options.refuse_first_percent
    );

    let store = SubscriberStore::generate(options.recipients)?;
    let subscribers = store.fetch(0, options.recipients)?;
    let addresses: Vec<String> = subscribers.iter().map(|s| s.email.clone()).collect();
    let bodies: Vec<Vec<u8>> = subscribers
        .into_iter()
        .map(|s| CampaignJob::new(&queue, s).encode())
        .collect();
    let started = Instant::now();
    engine.enqueue(&queue, &bodies, Duration::from_secs(60))?;
    let took = started.elapsed();
    println!(
        "enqueued {} jobs into {queue} in {:.0} ms ({:.0} puts/s, pipelined)",
        bodies.len(),
        took.as_secs_f64() * 1e3,
        bodies.len() as f64 / took.as_secs_f64().max(1e-9)
    );

    let mut worker_args = engine.args();
    worker_args.extend([
        "--smtp".into(),
        relay.addr(),
        "--tube".into(),
        queue.clone(),
        "--smtp-connections".into(),
        options.smtp_connections.to_string(),
        "--prefetch".into(),
        options.prefetch.to_string(),
        "--lease-ms".into(),
        options.lease.as_millis().to_string(),
    ]);
    let mut fleet = Fleet {
        worker_args,
        children: Vec::new(),
        counts: Arc::default(),
    };
    let started = Instant::now();
    for k in 1..=options.workers {
        fleet.spawn(&format!("w{k}"))?;
    }
    println!(
        "started {} worker processes, {} SMTP sessions each",
        options.workers, options.smtp_connections
    );

    let mut monitor = engine.monitor(&queue)?;
    let kill_at = (options.recipients as u64 / 3).max(1);
    let mut killed = None;
    let mut last_print = Instant::now();
    let backlog = loop {
        let backlog = monitor.backlog(&queue)?;
        let sent = relay.sent();
        if options.kill_one && killed.is_none() && sent >= kill_at && backlog.pending() > 0 {
            let pid = fleet.kill("w1")?;
            let replacement = format!("w{}", options.workers + 1);
            println!(
                "killed worker w1 (pid {pid}) with SIGKILL at {sent} messages sent; starting {replacement} in its place"
            );
            fleet.spawn(&replacement)?;
            killed = Some((sent, replacement));
        }
        if backlog.pending() == 0 {
            break backlog;
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            println!(
                "  {sent}/{} sent; queue: {} ready, {} reserved, {} delayed, {} buried",
                options.recipients,
                backlog.ready,
                backlog.reserved,
                backlog.delayed,
                backlog.buried
            );
            last_print = Instant::now();
        }
        if started.elapsed() > GIVE_UP {
            return Err(format!("the queue did not drain within {GIVE_UP:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    fleet.stop_all()?;
    if options.kill_one && killed.is_none() {
        println!("the campaign finished before the kill point: no worker was killed");
    }
    let verdict = relay.verdict(addresses.iter().map(String::as_str));
    let end = monitor.backlog(&queue)?;
    drop(local);
    Ok(summary(
        &options, &engine, &verdict, &fleet, wall, end, backlog,
    ))
}

/// Starts the demo's own server for `backend`; it lives in `local` until the demo ends.
fn start_engine(
    backend: &str,
    local: &mut Option<Box<dyn std::any::Any>>,
) -> Result<Engine, Box<dyn Error>> {
    match backend {
        #[cfg(feature = "beanstalkd")]
        "beanstalkd" => {
            let server = LocalBeanstalkd::start()?;
            println!(
                "started beanstalkd on {} (binlog in {}); pass --beanstalkd HOST:PORT to use a running server",
                server.addr,
                server.binlog.display()
            );
            let engine = Engine::Beanstalkd {
                addr: server.addr.clone(),
            };
            *local = Some(Box::new(server));
            Ok(engine)
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let cluster = LocalRedisCluster::start()?;
            println!(
                "started a Redis Cluster of 3 masters on {} (append-only files in {}); pass --redis URL[,URL…] to use a running one",
                cluster.urls(),
                cluster.dir.display()
            );
            let engine = Engine::Redis {
                urls: cluster.urls(),
            };
            *local = Some(Box::new(cluster));
            Ok(engine)
        }
        other => Err(format!(
            "--backend {other:?}: this build knows {}",
            crate::engine::built_in()
        )
        .into()),
    }
}

/// Prints the summary; `true` when every check passed.
#[allow(clippy::too_many_arguments)]
fn summary(
    options: &DemoOptions,
    engine: &Engine,
    verdict: &crate::relay::Verdict,
    fleet: &Fleet,
    wall: Duration,
    end: Backlog,
    drained: Backlog,
) -> bool {
    let counts = fleet.counts.lock().unwrap().clone();
    let total = |key: &str| counts.values().map(|c| c.get(key)).sum::<u64>();
    println!();
    println!("{:<28}{:>10}", "recipients", options.recipients);
    println!("{:<28}{:>10}", "sent (relay accepted)", verdict.sent);
    println!(
        "{:<28}{:>10}",
        "duplicates dropped", verdict.duplicates_dropped
    );
    println!("{:<28}{:>10}", "released (retried)", total("released"));
    println!("{:<28}{:>10}", "buried", drained.buried);
    println!("{:<28}{:>10.2} s", "wall time", wall.as_secs_f64());
    println!(
        "{:<28}{:>10.0}",
        "messages/s",
        verdict.sent as f64 / wall.as_secs_f64().max(1e-9)
    );
    println!("per worker (jobs done, released, reserved):");
    for (name, c) in &counts {
        let note = if c.killed {
            "  killed with SIGKILL: its last report"
        } else if c.final_report {
            ""
        } else {
            "  (no final report)"
        };
        println!(
            "  {name:<6}{:>8}{:>8}{:>8}{note}",
            c.get("deleted"),
            c.get("released"),
            c.get("reserved")
        );
    }
    let mut ok = true;
    if end != Backlog::default() {
        println!("NOT drained: the queue still holds {end:?}");
        ok = false;
    } else {
        println!("queue empty: {}", engine.empty_means());
    }
    if drained.buried > 0 {
        println!(
            "{} jobs buried: those recipients were given up",
            drained.buried
        );
        ok = false;
    }
    match &verdict.exactly_once {
        Ok(()) => println!("verified at the relay: every recipient received exactly one message"),
        Err(problems) => {
            println!("NOT verified at the relay: {problems}");
            ok = false;
        }
    }
    ok
}

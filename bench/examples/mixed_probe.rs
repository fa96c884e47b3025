//! Probe for the mixed email workload of DESIGN §9 (N × (50 µs CPU + 2 ms IO + light log)):
//! only that workload, for UBER and DEDICATED defaults, fresh vs warmed service, and the
//! proactor policies, interleaved round by round, with pool metrics and process CPU per run.
//!
//! `cargo run --release -p uberpool-bench --example mixed_probe -- [--n N] [--rounds R] [--only NAME,NAME]`
//! Variant names: uber-fresh, uber-warm, uber-affinity, uber-pinned, ded-fresh, ded-warm,
//! ded-affinity, ded-pinned, tp64.

use std::thread::sleep;
use std::time::{Duration, Instant};
use uberpool_bench::Latch;
use uberpool_bench::mixed::{CPU, IO, burn, calibrate, email_flow, log_line};

use uberpool::{PoolsConfig, ProactorPolicy, Resources, SchedulerService};

const DEDICATED: &str = "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n";

fn service(dedicated: bool) -> SchedulerService {
    let resources = Resources::detect();
    let config = if dedicated {
        PoolsConfig::parse(DEDICATED, &resources).expect("valid configuration")
    } else {
        PoolsConfig::defaults(&resources)
    };
    SchedulerService::builder()
        .name("probe")
        .config(config)
        .build()
        .expect("service starts")
}

/// Process CPU time (user, system) in clock ticks, dead threads included.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is state (field 3); utime is field 14, stime 15
    let get = |i: usize| fields.get(i - 3).and_then(|v| v.parse().ok()).unwrap_or(0);
    (get(14), get(15))
}

/// CPU time of the calling thread, in ns (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    schedstat(0)
}

/// Field `i` of `/proc/thread-self/schedstat`: 0 = on CPU, 1 = waiting on a run queue (ns).
fn schedstat(i: usize) -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(i).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// (voluntary, involuntary) context switches of the calling thread.
fn ctxt_switches() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        get("voluntary_ctxt_switches:"),
        get("nonvoluntary_ctxt_switches:"),
    )
}

thread_local! {
    /// (submit loop wall time, submit loop CPU time) of the last run on this thread.
    static SUBMIT: std::cell::Cell<(Duration, Duration)> = const { std::cell::Cell::new((Duration::ZERO, Duration::ZERO)) };
}

fn run_flow(svc: &SchedulerService, policy: ProactorPolicy, n: usize, iters: u64) -> Duration {
    let (latch, done) = Latch::new(n);
    let start = Instant::now();
    let flow = email_flow(svc, policy, iters, latch);
    let cpu0 = thread_cpu_ns();
    let wait0 = schedstat(1);
    let (v0, i0) = ctxt_switches();
    for i in 0..n {
        drop(flow.run(i).expect("flow run accepted"));
    }
    let submit = (
        start.elapsed(),
        Duration::from_nanos(thread_cpu_ns() - cpu0),
    );
    let (v1, i1) = ctxt_switches();
    if std::env::var("PROBE_MAIN").is_ok() {
        println!(
            "main: submit {:.1} ms, on cpu {:.1} ms, runqueue wait {:.1} ms, voluntary cs {}, involuntary cs {}",
            submit.0.as_secs_f64() * 1e3,
            submit.1.as_secs_f64() * 1e3,
            (schedstat(1) - wait0) as f64 / 1e6,
            v1 - v0,
            i1 - i0
        );
    }
    SUBMIT.with(|s| s.set(submit));
    done.recv().unwrap();
    start.elapsed()
}

struct Variant {
    name: &'static str,
    dedicated: bool,
    warm: bool,
    policy: ProactorPolicy,
    times: Vec<f64>,
    lines: Vec<String>,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        argv.iter()
            .skip_while(|a| *a != name)
            .nth(1)
            .map(|s| s.to_owned())
    };
    let n: usize = arg("--n").map(|v| v.parse().unwrap()).unwrap_or(4000);
    let rounds: usize = arg("--rounds").map(|v| v.parse().unwrap()).unwrap_or(3);
    let only: Option<Vec<String>> =
        arg("--only").map(|v| v.split(',').map(str::to_owned).collect());
    let verbose = argv.iter().any(|a| a == "--verbose");
    let cores = num_cpus::get();
    let iters = calibrate();
    let bound_ms = CPU.as_secs_f64() * 1e3 * n as f64 / cores as f64;

    let mk = |name, dedicated, warm, policy| Variant {
        name,
        dedicated,
        warm,
        policy,
        times: vec![],
        lines: vec![],
    };
    let mut variants = vec![
        mk("uber-fresh", false, false, ProactorPolicy::Mule),
        mk("uber-warm", false, true, ProactorPolicy::Mule),
        mk("uber-affinity", false, false, ProactorPolicy::Affinity),
        mk("uber-pinned", false, false, ProactorPolicy::Pinned),
        mk("ded-fresh", true, false, ProactorPolicy::Mule),
        mk("ded-warm", true, true, ProactorPolicy::Mule),
        mk("ded-affinity", true, false, ProactorPolicy::Affinity),
        mk("ded-pinned", true, false, ProactorPolicy::Pinned),
        mk("tp64", false, false, ProactorPolicy::Mule),
    ];
    if let Some(only) = &only {
        variants.retain(|v| only.iter().any(|o| o == v.name));
    }
    let tp64 = threadpool::ThreadPool::new(64);

    println!("n = {n}, cores = {cores}, CPU bound = {bound_ms:.1} ms, iters = {iters}");
    for round in 0..rounds {
        for v in variants.iter_mut() {
            if v.name == "tp64" {
                let (latch, done) = Latch::new(n);
                let (u0, s0) = cpu_ticks();
                let start = Instant::now();
                let cpu0 = thread_cpu_ns();
                let wait0 = schedstat(1);
                let (v0, i0) = ctxt_switches();
                for i in 0..n {
                    let latch = latch.clone();
                    tp64.execute(move || {
                        sleep(IO);
                        let h = burn(iters, i as u64);
                        log_line(i, h);
                        latch.count_down();
                    });
                }
                let (v1, i1) = ctxt_switches();
                if std::env::var("PROBE_MAIN").is_ok() {
                    println!(
                        "main tp64: submit {:.1} ms, on cpu {:.1} ms, runqueue wait {:.1} ms, voluntary cs {}, involuntary cs {}",
                        start.elapsed().as_secs_f64() * 1e3,
                        (thread_cpu_ns() - cpu0) as f64 / 1e6,
                        (schedstat(1) - wait0) as f64 / 1e6,
                        v1 - v0,
                        i1 - i0
                    );
                }
                done.recv().unwrap();
                let t = start.elapsed().as_secs_f64() * 1e3;
                let (u1, s1) = cpu_ticks();
                v.times.push(t);
                v.lines.push(format!(
                    "r{round} {:<14} {t:7.1} ms  usr {:4} sys {:4} ticks",
                    v.name,
                    u1 - u0,
                    s1 - s0
                ));
                continue;
            }
            let svc = service(v.dedicated);
            if v.warm {
                run_flow(&svc, v.policy, n, iters);
                sleep(Duration::from_millis(20));
            }
            let before = svc.metrics();
            let (u0, s0) = cpu_ticks();
            let t = run_flow(&svc, v.policy, n, iters).as_secs_f64() * 1e3;
            let (u1, s1) = cpu_ticks();
            let m = svc.metrics();
            let started: u64 = m.pools.iter().map(|p| p.threads_started).sum::<u64>()
                - before.pools.iter().map(|p| p.threads_started).sum::<u64>();
            let peak: Vec<String> = m
                .pools
                .iter()
                .map(|p| format!("{}:{}", p.name.rsplit('.').next().unwrap(), p.peak_threads))
                .collect();
            let wakeups: u64 = m.pools.iter().map(|p| p.wakeups).sum::<u64>()
                - before.pools.iter().map(|p| p.wakeups).sum::<u64>();
            let waited: u64 = m.pools.iter().map(|p| p.waited).sum::<u64>()
                - before.pools.iter().map(|p| p.waited).sum::<u64>();
            let caller_ran: u64 = m.pools.iter().map(|p| p.caller_ran).sum::<u64>()
                - before.pools.iter().map(|p| p.caller_ran).sum::<u64>();
            let (sub_wall, sub_cpu) = SUBMIT.with(|s| s.get());
            v.times.push(t);
            v.lines.push(format!(
                "r{round} {:<14} {t:7.1} ms  usr {:4} sys {:4} ticks  submit {:5.1} ms cpu {:5.1} ms  started {started:5}  peak {}  wakeups {wakeups}  waited {waited}  caller_ran {caller_ran}  hops sw {} el {}",
                v.name,
                u1 - u0,
                s1 - s0,
                sub_wall.as_secs_f64() * 1e3,
                sub_cpu.as_secs_f64() * 1e3,
                peak.join(","),
                m.hops_switched - before.hops_switched,
                m.hops_elided - before.hops_elided,
            ));
            svc.shutdown();
        }
    }
    if verbose {
        for v in &variants {
            for l in &v.lines {
                println!("{l}");
            }
        }
    }
    println!("| variant | median ms | × CPU bound | min | max | all |");
    println!("|---|---|---|---|---|---|");
    for v in &variants {
        let mut t = v.times.clone();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = t[t.len() / 2];
        println!(
            "| {} | {med:.1} | {:.2} | {:.1} | {:.1} | {} |",
            v.name,
            med / bound_ms,
            t[0],
            t[t.len() - 1],
            v.times
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

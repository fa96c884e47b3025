//! Comparison harness (issue 8): the workloads of DESIGN §9 that criterion does not fit, for
//! uberpool's UBER and DEDICATED defaults and for the peers, in one run, printed as markdown.
//!
//! 1. Mixed email workload: N × (50 µs of CPU work + 2 ms blocking IO + a light log step).
//! 2. CPU_LIGHT queue wait (submit → start) while 1,000 IO tasks block, per strategy.
//! 3. IO burst: 2,000 × 20 ms sleeps on UBER defaults with a 1 s keep-alive.
//! 4. Idle CPU: CPU time burnt by an idle service (and idle peers) over 1 s.
//! 5. Memory: RSS growth with 100,000 queued tasks and with 2,000 live threads.
//!
//! It prints a markdown table per workload and writes SVG plots of workloads 1, 2, 3 and 5 into
//! `target/bench-report/` (the `target` directory the harness was built in), each labelled with
//! the machine and the thread count.
//!
//! Run: `cargo run --release -p uberpool-bench --example compare` (full), `-- --quick` (CI-sized), `-- --threads N`
//! (sizes the peers' fixed pools; default: the number of CPUs), `-- --machine NAME` (the machine
//! named in the plots and the tables' heading). uberpool always runs its defaults, resolved
//! against the detected resources.
//!
//! Figures are ratios within one run; workload 1 interleaves its contenders round by round and
//! reports each one's median, because absolute times on shared machines drift.

mod plots;

use hdrhistogram::Histogram;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::thread::sleep;
use std::time::{Duration, Instant};
use uberpool_bench::Latch;
use uberpool_bench::mixed::{CPU, IO, burn, calibrate, email_flow, log_line};

use uberpool::{PoolsConfig, ProactorPolicy, Resources, SchedulerService};

const DEDICATED: &str = "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n";
const UBER_SHORT_KEEPALIVE: &str = "org.mule.runtime.scheduler.SchedulerPoolStrategy=UBER\n\
                                    org.mule.runtime.scheduler.uber.threadPool.threadKeepAlive=1000\n";
/// tokio's default cap on blocking threads.
const TOKIO_MAX_BLOCKING: usize = 512;

struct Args {
    quick: bool,
    threads: usize,
    machine: String,
}

impl Args {
    /// The label every plot carries: machine, CPUs, the peers' thread count, the run's size.
    fn label(&self) -> String {
        format!(
            "{}: {} CPUs, --threads {}{}",
            self.machine,
            num_cpus::get(),
            self.threads,
            if self.quick { ", --quick" } else { "" }
        )
    }
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let quick = argv.iter().any(|a| a == "--quick");
    let threads = argv
        .iter()
        .skip_while(|a| *a != "--threads")
        .nth(1)
        .map(|n| n.parse().expect("--threads takes a positive number"))
        .unwrap_or_else(num_cpus::get)
        .max(1);
    let machine = argv
        .iter()
        .skip_while(|a| *a != "--machine")
        .nth(1)
        .cloned()
        .unwrap_or_else(|| "unnamed machine".to_string());
    Args {
        quick,
        threads,
        machine,
    }
}

fn service(text: Option<&str>) -> SchedulerService {
    let resources = Resources::detect();
    let config = match text {
        None => PoolsConfig::defaults(&resources),
        Some(text) => PoolsConfig::parse(text, &resources).expect("valid configuration"),
    };
    SchedulerService::builder()
        .name("compare")
        .config(config)
        .build()
        .expect("service starts")
}

/// The whole item on one thread (for the peers that run everything in one pool).
fn item(i: usize, iters: u64) {
    sleep(IO);
    let h = burn(iters, i as u64);
    log_line(i, h);
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

// ------------------------------------------------------------------------------------------
// 1. Mixed email workload
// ------------------------------------------------------------------------------------------

/// How a contender runs the workload: its service (uberpool only), N, the latch to count down.
type Run<'a> = Box<dyn Fn(Option<&SchedulerService>, usize, Latch) + 'a>;

struct Contender<'a> {
    name: String,
    /// The name under its bar in the plot.
    short: String,
    /// Threads that may block in IO at once: the IO bound is N·2 ms / this.
    io_threads: usize,
    /// For uberpool: the configuration text of a service built fresh for each round (outside
    /// the timing) and shut down after it.
    service: Option<Option<&'static str>>,
    run: Run<'a>,
    times: Vec<Duration>,
}

fn uber_flow(svc: &SchedulerService, n: usize, iters: u64, latch: Latch) {
    let flow = email_flow(svc, ProactorPolicy::Mule, iters, latch);
    for i in 0..n {
        // The handle is dropped: the run is detached and counts the latch down when done.
        drop(flow.run(i).expect("flow run accepted"));
    }
}

/// The same work as nested `execute`s: each item computes on the CPU_INTENSIVE scheduler, which
/// hands the IO to the IO scheduler, which hands the log line to the CPU_LIGHT scheduler.
fn uber_nested(svc: &SchedulerService, n: usize, iters: u64, latch: Latch) {
    let (cpu, io, light) = (svc.cpu_intensive(), svc.io(), svc.cpu_light());
    for i in 0..n {
        let (io, light, latch) = (io.clone(), light.clone(), latch.clone());
        cpu.execute(move || {
            let h = burn(iters, i as u64);
            io.execute(move || {
                sleep(IO);
                light
                    .execute(move || {
                        log_line(i, h);
                        latch.count_down();
                    })
                    .expect("light step accepted");
            })
            .expect("IO step accepted");
        })
        .expect("CPU step accepted");
    }
}

/// How many of the mixed workload's contenders are uberpool's (they come first).
const UBERPOOL_MIXED: usize = 4;

fn mixed(args: &Args, cores: usize) -> (String, plots::Mixed) {
    let n = if args.quick { 1_000 } else { 4_000 };
    let rounds = if args.quick { 3 } else { 5 };
    let t = args.threads;
    let iters = calibrate();

    let (uber_io_max, ded_io_max) = {
        let (uber, dedicated) = (service(None), service(Some(DEDICATED)));
        let sizes = (
            uber.metrics().pools[0].max_size,
            dedicated.metrics().pools[1].max_size,
        );
        uber.shutdown();
        dedicated.shutdown();
        sizes
    };
    let tp_small = threadpool::ThreadPool::new(t);
    let tp_64 = threadpool::ThreadPool::new(64);
    let rayon = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap(),
    );
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(t)
        .build()
        .unwrap();

    let mut contenders = [
        Contender {
            name: "uberpool UBER defaults (flow io → intensive → light)".into(),
            short: "UBER flow".into(),
            io_threads: uber_io_max,
            service: Some(None),
            run: Box::new(|svc, n, latch| uber_flow(svc.unwrap(), n, iters, latch)),
            times: vec![],
        },
        Contender {
            name: "uberpool DEDICATED defaults (same flow)".into(),
            short: "DEDICATED flow".into(),
            io_threads: ded_io_max,
            service: Some(Some(DEDICATED)),
            run: Box::new(|svc, n, latch| uber_flow(svc.unwrap(), n, iters, latch)),
            times: vec![],
        },
        Contender {
            name: "uberpool UBER defaults (nested execute intensive → io → light)".into(),
            short: "UBER nested".into(),
            io_threads: uber_io_max,
            service: Some(None),
            run: Box::new(|svc, n, latch| uber_nested(svc.unwrap(), n, iters, latch)),
            times: vec![],
        },
        Contender {
            name: "uberpool DEDICATED defaults (same nested executes)".into(),
            short: "DEDICATED nested".into(),
            io_threads: ded_io_max,
            service: Some(Some(DEDICATED)),
            run: Box::new(|svc, n, latch| uber_nested(svc.unwrap(), n, iters, latch)),
            times: vec![],
        },
        Contender {
            name: format!("threadpool({t}), everything"),
            short: format!("threadpool({t})"),
            io_threads: t,
            service: None,
            run: Box::new(|_, n, latch| {
                for i in 0..n {
                    let latch = latch.clone();
                    tp_small.execute(move || {
                        item(i, iters);
                        latch.count_down();
                    });
                }
            }),
            times: vec![],
        },
        Contender {
            name: "threadpool(64), everything".into(),
            short: "threadpool(64)".into(),
            io_threads: 64,
            service: None,
            run: Box::new(|_, n, latch| {
                for i in 0..n {
                    let latch = latch.clone();
                    tp_64.execute(move || {
                        item(i, iters);
                        latch.count_down();
                    });
                }
            }),
            times: vec![],
        },
        Contender {
            name: format!("rayon({t}) spawn, everything"),
            short: format!("rayon({t})"),
            io_threads: t,
            service: None,
            run: Box::new(|_, n, latch| {
                for i in 0..n {
                    let latch = latch.clone();
                    rayon.spawn(move || {
                        item(i, iters);
                        latch.count_down();
                    });
                }
            }),
            times: vec![],
        },
        Contender {
            name: format!("tokio({t}): spawn_blocking IO, CPU + log on the runtime"),
            short: format!("tokio({t}) + spawn_blocking"),
            io_threads: TOKIO_MAX_BLOCKING,
            service: None,
            run: Box::new(|_, n, latch| {
                for i in 0..n {
                    let latch = latch.clone();
                    tokio.spawn(async move {
                        tokio::task::spawn_blocking(|| sleep(IO)).await.unwrap();
                        let h = burn(iters, i as u64);
                        log_line(i, h);
                        latch.count_down();
                    });
                }
            }),
            times: vec![],
        },
        Contender {
            name: format!("tokio spawn_blocking IO → rayon({t}) CPU + log"),
            short: format!("spawn_blocking → rayon({t})"),
            io_threads: TOKIO_MAX_BLOCKING,
            service: None,
            run: Box::new(|_, n, latch| {
                for i in 0..n {
                    let (latch, rayon) = (latch.clone(), rayon.clone());
                    tokio.spawn_blocking(move || {
                        sleep(IO);
                        rayon.spawn(move || {
                            let h = burn(iters, i as u64);
                            log_line(i, h);
                            latch.count_down();
                        });
                    });
                }
            }),
            times: vec![],
        },
    ];

    for _ in 0..rounds {
        for c in contenders.iter_mut() {
            let svc = c.service.map(service);
            let (latch, done) = Latch::new(n);
            let start = Instant::now();
            (c.run)(svc.as_ref(), n, latch);
            done.recv().unwrap();
            c.times.push(start.elapsed());
            if let Some(svc) = svc {
                svc.shutdown();
            }
        }
    }

    let cpu_bound = CPU * n as u32 / cores as u32;
    let mut out = format!(
        "### 1. Mixed email workload: N = {n} × (50 µs CPU + 2 ms blocking IO + light log)\n\n\
         Median of {rounds} interleaved rounds (every contender once per round). The peers' pools \
         are kept between rounds; each uberpool service is built before its turn (not timed) and \
         shut down after it, so an idle service never runs beside another contender, and its \
         pool's growth is timed every round. \
         CPU work calibrated to {iters} iterations = 50 µs on one core. \
         CPU bound = N·50 µs / {cores} cores = {}; IO bound = N·2 ms / threads that may block at once.\n\n\
         | contender | threads that may block | makespan (median) | × CPU bound (DESIGN §9) | IO bound | binding bound | × binding bound |\n\
         |---|---|---|---|---|---|---|\n",
        ms(cpu_bound)
    );
    for c in contenders.iter_mut() {
        c.times.sort();
        let median = c.times[c.times.len() / 2];
        let io_bound = IO * n as u32 / c.io_threads as u32;
        let (binding, name) = if io_bound > cpu_bound {
            (io_bound, "IO")
        } else {
            (cpu_bound, "CPU")
        };
        out += &format!(
            "| {} | {} | {} | {:.2} | {} | {name} | {:.2} |\n",
            c.name,
            c.io_threads,
            ms(median),
            median.as_secs_f64() / cpu_bound.as_secs_f64(),
            ms(io_bound),
            median.as_secs_f64() / binding.as_secs_f64(),
        );
    }
    let best_peer = contenders[UBERPOOL_MIXED..]
        .iter()
        .map(|c| (c.times[c.times.len() / 2], c.name.clone()))
        .min()
        .unwrap();
    out += &format!("\nFastest peer: {} ({}).", best_peer.1, ms(best_peer.0));
    for c in &contenders[..UBERPOOL_MIXED] {
        out += &format!(
            " {} / fastest peer = {:.2}.",
            c.short,
            c.times[rounds / 2].as_secs_f64() / best_peer.0.as_secs_f64()
        );
    }
    out += "\n";
    let plot = plots::Mixed {
        n,
        rounds,
        cpu_bound_ms: cpu_bound.as_secs_f64() * 1e3,
        bars: contenders
            .iter()
            .enumerate()
            .map(|(i, c)| plots::Bar {
                name: c.short.clone(),
                value: c.times[rounds / 2].as_secs_f64() * 1e3,
                uberpool: i < UBERPOOL_MIXED,
            })
            .collect(),
        round_ms: contenders
            .iter()
            .map(|c| c.times.iter().map(|t| t.as_secs_f64() * 1e3).collect())
            .collect(),
    };
    (out, plot)
}

// ------------------------------------------------------------------------------------------
// 2. CPU_LIGHT queue wait while 1,000 IO tasks block
// ------------------------------------------------------------------------------------------

const BLOCKERS: usize = 1_000;

/// One strategy's row of workload 2 and its distribution for the plot. Waits are recorded in
/// nanoseconds in an HDR histogram with 3 significant digits (a reported percentile is within
/// 0.1 % of the sample it stands for).
fn light_wait(label: &str, text: Option<&str>) -> (String, plots::LightCdf) {
    const BLOCK: Duration = Duration::from_millis(400);
    const WINDOW: Duration = Duration::from_millis(250);
    const PACE: Duration = Duration::from_micros(250);

    let svc = service(text);
    let io = svc.io();
    let finished = Arc::new(AtomicUsize::new(0));
    let submit_start = Instant::now();
    for _ in 0..BLOCKERS {
        let finished = finished.clone();
        io.execute(move || {
            sleep(BLOCK);
            finished.fetch_add(1, Ordering::Relaxed);
        })
        .map_err(|_| "IO task refused")
        .unwrap();
    }
    let submit_time = submit_start.elapsed();

    // A foreign thread submits light tasks at a steady pace and each reports submit → start.
    let light = svc.cpu_light();
    let (tx, rx) = channel::<Duration>();
    let sampler = std::thread::spawn(move || {
        let end = Instant::now() + WINDOW;
        let mut sent = 0usize;
        while Instant::now() < end {
            let tx = tx.clone();
            let t0 = Instant::now();
            light
                .execute(move || {
                    let _ = tx.send(t0.elapsed());
                })
                .map_err(|_| "light task refused")
                .unwrap();
            sent += 1;
            sleep(PACE);
        }
        sent
    });
    let sent = sampler.join().unwrap();
    let still_blocking = BLOCKERS - finished.load(Ordering::Relaxed);
    let mut waits = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    for wait in rx.iter().take(sent) {
        waits.saturating_record(wait.as_nanos().max(1) as u64);
    }
    let at = |q: f64| Duration::from_nanos(waits.value_at_quantile(q));
    let (p50, p99, max) = (at(0.5), at(0.99), Duration::from_nanos(waits.max()));
    let threads = svc
        .metrics()
        .pools
        .iter()
        .map(|p| p.peak_threads)
        .sum::<usize>();
    svc.shutdown();
    let row = format!(
        "| {label} | {} | {still_blocking} | {} | {} | {} | {} | {} | {threads} |\n",
        ms(submit_time),
        waits.len(),
        us(p50),
        us(p99),
        us(max),
        if p99 <= Duration::from_millis(1) {
            "met"
        } else {
            "**not met**"
        },
    );
    let cdf = plots::LightCdf {
        name: label.to_string(),
        points: waits
            .iter_recorded()
            .map(|v| {
                (
                    waits.highest_equivalent(v.value_iterated_to()) as f64 / 1e3,
                    v.quantile(),
                )
            })
            .collect(),
        p99_us: p99.as_secs_f64() * 1e6,
    };
    (row, cdf)
}

// ------------------------------------------------------------------------------------------
// 3. IO burst
// ------------------------------------------------------------------------------------------

/// Runs the burst and returns its table and the pool's threads sampled every 10 ms by a
/// second thread, from the first submission until 200 ms after the pool is back to its core
/// threads (the sampler reads lock-free gauges; its own CPU is the only thing it adds).
fn io_burst() -> (String, plots::Burst) {
    const TASKS: usize = 2_000;
    const SLEEP: Duration = Duration::from_millis(20);
    const GUARD: Duration = Duration::from_secs(10);
    const SAMPLE: Duration = Duration::from_millis(10);
    const KEEP_ALIVE: Duration = Duration::from_millis(1_000);

    // Thread start cost on this machine, for the target's "plus thread start cost".
    let t = Instant::now();
    let spawned: Vec<_> = (0..TASKS).map(|_| std::thread::spawn(|| {})).collect();
    let spawn_cost = t.elapsed();
    spawned.into_iter().for_each(|h| h.join().unwrap());

    let svc = service(Some(UBER_SHORT_KEEPALIVE));
    let io = svc.io();
    let (latch, done) = Latch::new(TASKS);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = vec![];
            let mut next = start;
            while !stop.load(Ordering::Relaxed) {
                let p = &svc.metrics().pools[0];
                samples.push((start.elapsed().as_secs_f64() * 1e3, p.threads, p.active));
                next += SAMPLE;
                sleep(next.saturating_duration_since(Instant::now()));
            }
            samples
        });
        for _ in 0..TASKS {
            let latch = latch.clone();
            io.execute(move || {
                sleep(SLEEP);
                latch.count_down();
            })
            .map_err(|_| "IO task refused")
            .unwrap();
        }
        let submitted = start.elapsed();
        done.recv().unwrap();
        let completed = start.elapsed();
        let m = svc.metrics().pools[0].clone();
        let shrink_start = Instant::now();
        let (shrink, threads_left) = loop {
            let p = &svc.metrics().pools[0];
            if p.threads <= p.core_size || shrink_start.elapsed() > GUARD {
                break (shrink_start.elapsed(), p.threads);
            }
            sleep(Duration::from_millis(10));
        };
        sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap();
        svc.shutdown();
        let done_target = SLEEP * 3 + spawn_cost;
        let plot = plots::Burst {
            tasks: TASKS,
            samples,
            core: m.core_size,
            all_done_ms: completed.as_secs_f64() * 1e3,
            keep_alive_ms: KEEP_ALIVE.as_secs_f64() * 1e3,
            back_to_core_ms: (threads_left <= m.core_size)
                .then(|| (shrink_start.duration_since(start) + shrink).as_secs_f64() * 1e3),
        };
        let table = format!(
            "### 3. IO burst: {TASKS} × 20 ms sleep, UBER defaults with threadKeepAlive=1000\n\n\
         | submit loop | all done | target: 3 × 20 ms + {TASKS} thread starts ({}) | peak threads | core / max | back to core after | threads then | target: keep-alive + 1 s |\n\
         |---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {} / {} | {} | {threads_left} | {} |\n",
            ms(spawn_cost),
            ms(submitted),
            ms(completed),
            if completed <= done_target {
                "met"
            } else {
                "**not met**"
            },
            m.peak_threads,
            m.core_size,
            m.max_size,
            if threads_left <= m.core_size {
                ms(shrink)
            } else {
                format!("not within the {} s guard", GUARD.as_secs())
            },
            if threads_left <= m.core_size && shrink <= KEEP_ALIVE + Duration::from_secs(1) {
                "met"
            } else {
                "**not met**"
            },
        );
        (table, plot)
    })
}

// ------------------------------------------------------------------------------------------
// 4. Idle CPU
// ------------------------------------------------------------------------------------------

/// CPU time of every thread of this process, in nanoseconds, from `/proc/self/task/*/schedstat`
/// (nanosecond resolution; a thread that exits during a measurement takes its time with it).
fn process_cpu_ns() -> u64 {
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(entry.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// utime + stime of the process in clock ticks, from `/proc/self/stat` (usually 1/100 s).
fn process_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn idle_row(label: &str, threads: usize) -> String {
    sleep(Duration::from_millis(200)); // let start-up settle
    let (ns0, t0, w0) = (process_cpu_ns(), process_ticks(), Instant::now());
    sleep(Duration::from_secs(1));
    let (ns1, t1, wall) = (process_cpu_ns(), process_ticks(), w0.elapsed());
    let cpu = Duration::from_nanos(ns1.saturating_sub(ns0));
    let pct = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
    format!(
        "| {label} | {threads} | {} | {} | {pct:.3} % | {} |\n",
        us(cpu),
        t1.saturating_sub(t0),
        if pct < 1.0 { "met" } else { "**not met**" }
    )
}

fn idle(args: &Args) -> String {
    let mut out = String::from(
        "### 4. Idle CPU over 1 s (whole process: the harness's main thread sleeps)\n\n\
         | contender | threads | CPU (schedstat) | utime+stime ticks | of one core | target < 1 % |\n\
         |---|---|---|---|---|---|\n",
    );
    out += &idle_row("nothing started (baseline)", 0);
    for (label, text) in [
        ("uberpool UBER defaults", None),
        ("uberpool DEDICATED defaults", Some(DEDICATED)),
    ] {
        let svc = service(text);
        let threads = svc.metrics().pools.iter().map(|p| p.threads).sum();
        out += &idle_row(label, threads);
        svc.shutdown();
    }
    let t = args.threads;
    {
        let _tp = threadpool::ThreadPool::new(t);
        out += &idle_row(&format!("threadpool({t})"), t);
    }
    {
        let _rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap();
        out += &idle_row(&format!("rayon({t})"), t);
    }
    {
        let _tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(t)
            .build()
            .unwrap();
        out += &idle_row(&format!("tokio({t})"), t);
    }
    out
}

// ------------------------------------------------------------------------------------------
// 5. Memory
// ------------------------------------------------------------------------------------------

/// Resident set size of this process in KiB, from `/proc/self/status`.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

const QUEUED: usize = 100_000;
const LIVE: usize = 2_000;

/// The memory cases, each run in a fresh process (`--memory-case NAME`) so that no other
/// workload's freed memory is reused: (name, what is counted, count).
const MEMORY_CASES: [(&str, &str, usize); 8] = [
    (
        "uberpool custom pool (t threads, queue 100,000)",
        "queued tasks",
        QUEUED,
    ),
    ("threadpool(t)", "queued tasks", QUEUED),
    ("rayon(t) spawn", "queued tasks", QUEUED),
    ("tokio(t) spawn", "queued tasks", QUEUED),
    ("uberpool UBER defaults, io", "live threads", LIVE),
    ("uberpool DEDICATED defaults, io", "live threads", LIVE),
    (
        "tokio spawn_blocking (max_blocking_threads 2,000)",
        "live threads",
        LIVE,
    ),
    ("std::thread::spawn", "live threads", LIVE),
];

/// Runs one memory case in this process and returns the RSS growth in KiB. Every task blocks on
/// `gate` (held for writing here) so the queued tasks stay queued and the threads stay alive.
fn memory_case(index: usize, t: usize) -> u64 {
    use std::sync::RwLock;
    let gate = Arc::new(RwLock::new(()));
    let hold = gate.write().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let block = {
        let (gate, started) = (gate.clone(), started.clone());
        move || {
            started.fetch_add(1, Ordering::SeqCst);
            drop(gate.read().unwrap());
        }
    };
    let wait_started = |n: usize| {
        while started.load(Ordering::SeqCst) < n {
            sleep(Duration::from_millis(1));
        }
    };
    let before;
    let after;
    match index {
        0 => {
            let svc = service(None);
            let pool = svc
                .custom(
                    uberpool::SchedulerConfig::new()
                        .name("queued")
                        .max_concurrent_tasks(t)
                        .queue_size(QUEUED),
                )
                .unwrap();
            for _ in 0..t {
                let b = block.clone();
                pool.execute(b).map_err(|_| "refused").unwrap();
            }
            wait_started(t);
            before = rss_kib();
            for i in 0..QUEUED {
                pool.execute(move || {
                    black_box(i);
                })
                .map_err(|_| "refused")
                .unwrap();
            }
            after = rss_kib();
            drop(hold);
            pool.stop();
            svc.shutdown();
        }
        1 => {
            let pool = threadpool::ThreadPool::new(t);
            (0..t).for_each(|_| pool.execute(block.clone()));
            wait_started(t);
            before = rss_kib();
            (0..QUEUED).for_each(|i| {
                pool.execute(move || {
                    black_box(i);
                })
            });
            after = rss_kib();
            drop(hold);
            pool.join();
        }
        2 => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            (0..t).for_each(|_| pool.spawn(block.clone()));
            wait_started(t);
            before = rss_kib();
            (0..QUEUED).for_each(|i| {
                pool.spawn(move || {
                    black_box(i);
                })
            });
            after = rss_kib();
            drop(hold);
        }
        3 => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(t)
                .build()
                .unwrap();
            for _ in 0..t {
                let b = block.clone();
                rt.spawn(async move { b() });
            }
            wait_started(t);
            before = rss_kib();
            for i in 0..QUEUED {
                rt.spawn(async move {
                    {
                        black_box(i);
                    }
                });
            }
            after = rss_kib();
            drop(hold);
        }
        4 | 5 => {
            let svc = service(if index == 4 { None } else { Some(DEDICATED) });
            let io = svc.io();
            before = rss_kib();
            for _ in 0..LIVE {
                io.execute(block.clone()).map_err(|_| "refused").unwrap();
            }
            wait_started(LIVE);
            after = rss_kib();
            drop(hold);
            svc.shutdown();
        }
        6 => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(t)
                .max_blocking_threads(LIVE)
                .build()
                .unwrap();
            before = rss_kib();
            for _ in 0..LIVE {
                rt.spawn_blocking(block.clone());
            }
            wait_started(LIVE);
            after = rss_kib();
            drop(hold);
        }
        _ => {
            before = rss_kib();
            let threads: Vec<_> = (0..LIVE)
                .map(|_| std::thread::spawn(block.clone()))
                .collect();
            wait_started(LIVE);
            after = rss_kib();
            drop(hold);
            threads.into_iter().for_each(|h| h.join().unwrap());
        }
    }
    after.saturating_sub(before)
}

fn memory(args: &Args) -> (String, plots::Memory) {
    let exe = std::env::current_exe().expect("own path");
    let mut out = format!(
        "### 5. Memory: RSS growth with {QUEUED} queued tasks and with {LIVE} live threads\n\n\
         Each case runs in a fresh process; every thread is blocked on a gate while RSS \
         (`/proc/self/status` VmRSS) is read before and after. Queued tasks are empty closures \
         capturing one `usize`; t = {}.\n\n\
         | contender | what | RSS growth | per item |\n|---|---|---|---|\n",
        args.threads
    );
    let mut plot = plots::Memory {
        queued: vec![],
        threads: vec![],
    };
    for (index, (name, what, count)) in MEMORY_CASES.iter().enumerate() {
        let output = std::process::Command::new(&exe)
            .args(["--memory-case", &index.to_string()])
            .args(["--threads", &args.threads.to_string()])
            .output()
            .expect("memory case runs");
        let kib: Option<u64> = String::from_utf8_lossy(&output.stdout).trim().parse().ok();
        let name = name.replace("(t", &format!("({}", args.threads));
        if let Some(kib) = kib {
            let bars = if *count == QUEUED {
                &mut plot.queued
            } else {
                &mut plot.threads
            };
            bars.push(plots::Bar {
                name: short_memory_name(&name),
                value: (kib * 1024 / *count as u64) as f64,
                uberpool: name.starts_with("uberpool"),
            });
        }
        out += &match kib {
            Some(kib) => format!(
                "| {name} | {count} {what} | {:.1} MiB | {} B |\n",
                kib as f64 / 1024.0,
                kib * 1024 / *count as u64
            ),
            None => format!("| {name} | {count} {what} | failed | |\n"),
        };
    }
    (out, plot)
}

/// The name under a memory bar: the table's name without its parenthesised details.
fn short_memory_name(name: &str) -> String {
    match name {
        n if n.starts_with("uberpool custom pool") => "uberpool pool".to_string(),
        n if n.starts_with("tokio spawn_blocking") => "tokio spawn_blocking".to_string(),
        n => n
            .trim_end_matches(", io")
            .trim_end_matches(" spawn")
            .to_string(),
    }
}

/// Where the plots go: `bench-report/` in the `target` directory this binary was built in
/// (`target/release/examples/compare` → `target/bench-report`).
fn report_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("bench-report"))
        .unwrap_or_else(|| "bench-report".into())
}

fn main() {
    let args = args();
    if let Some(case) = std::env::args().skip_while(|a| a != "--memory-case").nth(1) {
        println!("{}", memory_case(case.parse().unwrap(), args.threads));
        return;
    }
    let resources = Resources::detect();
    let cores = resources.cores.max(1);
    let started = Instant::now();
    println!(
        "## Comparison harness{}\n\nMachine: {}, num_cpus = {}, uberpool cores = {cores}, mem = {} MiB; \
         --threads {} (peers' fixed pools).\n",
        if args.quick { " (--quick)" } else { "" },
        args.machine,
        num_cpus::get(),
        resources.mem_kib / 1024,
        args.threads
    );

    // Idle first, while no other pool of this process exists.
    let idle = idle(&args);
    println!(
        "### 0. spawn_many_remote: the service's defaults through `cpu_light()` against the peers\n"
    );
    print!(
        "{}",
        uberpool_bench::spawn::table(if args.quick { 5 } else { 15 }, args.threads)
    );
    println!();
    let (table, mixed_plot) = mixed(&args, cores);
    print!("{table}");

    println!(
        "\n### 2. CPU_LIGHT queue wait (submit → start) while {BLOCKERS} IO tasks sleep 400 ms\n\n\
         A foreign thread submits a light task every 250 µs for 250 ms once the {BLOCKERS} IO tasks \
         are submitted. Percentiles from an HDR histogram (3 significant digits).\n\n\
         | strategy | submitting {BLOCKERS} IO tasks | IO tasks still blocking at the end | samples | p50 | p99 | max | target p99 ≤ 1 ms | peak threads |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let mut cdfs = vec![];
    for (label, text) in [
        ("UBER defaults", None),
        ("DEDICATED defaults", Some(DEDICATED)),
    ] {
        let (row, cdf) = light_wait(label, text);
        print!("{row}");
        cdfs.push(cdf);
    }

    println!();
    let (table, burst_plot) = io_burst();
    print!("{table}");
    println!();
    print!("{idle}");
    println!();
    let (table, memory_plot) = memory(&args);
    print!("{table}");

    let dir = report_dir();
    let label = args.label();
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.into())
        .and_then(|()| plots::mixed(&dir.join("mixed.svg"), &label, &mixed_plot))
        .and_then(|()| plots::light(&dir.join("light_wait.svg"), &label, BLOCKERS, &cdfs))
        .and_then(|()| plots::burst(&dir.join("io_burst.svg"), &label, &burst_plot))
        .and_then(|()| plots::memory(&dir.join("memory.svg"), &label, &memory_plot));
    match written {
        Ok(()) => println!(
            "\nPlots: mixed.svg, light_wait.svg, io_burst.svg, memory.svg in {}.",
            dir.display()
        ),
        Err(e) => {
            eprintln!("writing the plots into {} failed: {e}", dir.display());
            std::process::exit(1);
        }
    }
    println!("\nHarness ran in {:.1} s.", started.elapsed().as_secs_f64());
}

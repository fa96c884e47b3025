//! What publishing metrics costs the submit path: 100,000 empty tasks from a thread outside the
//! service through `service.cpu_light().execute`, with uberpool's `metrics` feature off and on,
//! on two shapes:
//! - `defaults`: the service built from Mule's defaults (DESIGN §9's spawn_many_remote): UBER
//!   without a queue, so the submitter hands tasks to idle threads, starts threads or waits;
//! - `deep queue`: UBER with `cores` threads and a queue of 1,000,000, the pool's fastest path,
//!   where a per-task cost of a few nanoseconds shows.
//!
//! Build it both ways and run the two binaries one after the other, several times:
//!
//! ```text
//! cargo bench -p uberpool-bench --bench metrics_cost                       (feature off)
//! cargo bench -p uberpool-bench --bench metrics_cost --features metrics    (feature on)
//! ```
//!
//! Feature off, each shape's service runs plain `execute`. Feature on, each shape's service
//! publishes every 100 ms from its timer into a Prometheus recorder installed as the global
//! recorder (the shipped design, sampling), and the same service also runs, interleaved, the
//! two designs the shipped one was chosen against, so that they differ from it by their
//! per-task work only:
//! - a facade counter incremented per event (submitted on the submitting thread, completed on
//!   the worker), with the handles registered once;
//! - histograms of queue wait and run time: the submit instant travels with the task, the task
//!   reads the clock when it starts and ends and records both.
//!
//! Both builds time `threadpool` on the same tasks as the in-process reference, so that runs of
//! the two binaries compare by their ratio to it. Per contender it reports the median wall time,
//! the median CPU time of the submitting thread and the service's own threads (workers, timer),
//! and of the submitting thread alone: the CPU times are the cost proper, and on a shared machine
//! they move less than the wall time. Rounds rotate the order of the contenders. It also times one publish (the timer thread's occupancy per interval).
//! `-- --rounds N` changes the 21 rounds.

use std::time::{Duration, Instant};

use uberpool::{PoolsConfig, Resources, SchedulerService};
use uberpool_bench::Latch;

const TASKS: usize = 100_000;

/// One contender's way of submitting `TASKS` tasks that count the latch down.
type Submit<'a> = Box<dyn Fn(Latch) + 'a>;

/// A contender: its name, the name prefix of its threads (`None`: count every thread), and how
/// it submits.
type Contender<'a> = (String, Option<String>, Submit<'a>);

/// The first field of a `schedstat` file: nanoseconds on a CPU.
fn schedstat_ns(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time, in nanoseconds, of this process's threads whose name starts with `prefix` (a
/// service's pool and timer threads), or of all of them for `None`; from
/// `/proc/self/task/*/schedstat` (a thread that exits during a measurement takes its time with
/// it). Counting only the service's own threads leaves out the other services' threads winding
/// down from the contender before.
fn threads_cpu_ns(prefix: Option<&str>) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter(|entry| {
            prefix.is_none_or(|prefix| {
                std::fs::read_to_string(entry.path().join("comm"))
                    .is_ok_and(|name| name.starts_with(prefix))
            })
        })
        .map(|entry| schedstat_ns(&entry.path().join("schedstat")))
        .sum()
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    schedstat_ns(std::path::Path::new("/proc/thread-self/schedstat"))
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Run {
    wall: Duration,
    /// The submitter and the contender's own threads (workers, timer).
    cpu: Duration,
    /// The submitting thread alone.
    submitter_cpu: Duration,
}

fn timed(threads: Option<&str>, spawn: &dyn Fn(Latch)) -> Run {
    let (latch, done) = Latch::new(TASKS);
    let (theirs, mine) = (threads_cpu_ns(threads), thread_cpu_ns());
    let start = Instant::now();
    spawn(latch);
    let submitter = thread_cpu_ns() - mine;
    done.recv().unwrap();
    let wall = start.elapsed();
    let theirs = threads_cpu_ns(threads) - theirs;
    // Counting every thread already counts the submitter.
    let cpu = if threads.is_some() {
        theirs + submitter
    } else {
        theirs
    };
    Run {
        wall,
        cpu: Duration::from_nanos(cpu),
        submitter_cpu: Duration::from_nanos(submitter),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The two shapes: `(label, configuration)`; `None` is Mule's defaults for this machine.
fn shapes(threads: usize) -> [(&'static str, Option<PoolsConfig>); 2] {
    let p = "org.mule.runtime.scheduler.";
    let deep = format!(
        "{p}SchedulerPoolStrategy=UBER\n{p}uber.threadPool.coreSize={threads}\n\
         {p}uber.threadPool.maxSize={threads}\n{p}uber.workQueue.size=1000000\n"
    );
    [
        ("defaults", None),
        (
            "deep queue",
            Some(PoolsConfig::parse(&deep, &Resources::detect()).unwrap()),
        ),
    ]
}

/// A service of `shape`, named `name`; with the feature, publishing every 100 ms.
fn service(name: &str, shape: &Option<PoolsConfig>) -> SchedulerService {
    let mut builder = SchedulerService::builder().name(name);
    if let Some(config) = shape {
        builder = builder.config(config.clone());
    }
    #[cfg(feature = "metrics")]
    {
        builder = builder.publish_metrics(Duration::from_millis(100));
    }
    builder.build().unwrap()
}

fn main() {
    let rounds = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(21usize);
    let threads = num_cpus::get().max(2);

    #[cfg(feature = "metrics")]
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only global recorder");
    let tp = threadpool::ThreadPool::new(threads);
    let mut services = Vec::new();
    let mut contenders: Vec<Contender> = vec![(
        "threadpool execute (reference)".to_owned(),
        None,
        Box::new(|latch: Latch| {
            for _ in 0..TASKS {
                let latch = latch.clone();
                tp.execute(move || latch.count_down());
            }
        }),
    )];
    for (label, shape) in &shapes(threads) {
        let svc = service(&format!("bench{}", services.len()), shape);
        let light = svc.cpu_light();
        let name = if cfg!(feature = "metrics") {
            format!("{label}: execute, publishing every 100 ms (shipped)")
        } else {
            format!("{label}: execute")
        };
        contenders.push((
            name,
            Some(format!("{}.", svc.name())),
            Box::new(move |latch: Latch| {
                for _ in 0..TASKS {
                    let latch = latch.clone();
                    light.execute(move || latch.count_down()).unwrap();
                }
            }),
        ));
        #[cfg(feature = "metrics")]
        contenders.extend(with_metrics::alternatives(label, &svc));
        services.push(svc);
    }

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); contenders.len()];
    for (_, threads, spawn) in &contenders {
        timed(threads.as_deref(), spawn.as_ref()); // warm-up
    }
    // Each round starts one contender further on, so none always follows the same one.
    let n = contenders.len();
    for round in 0..rounds {
        for i in (0..n).map(|k| (k + round) % n) {
            let (_, threads, spawn) = &contenders[i];
            runs[i].push(timed(threads.as_deref(), spawn.as_ref()));
        }
    }
    println!(
        "metrics_cost ({}): {TASKS} empty tasks from outside, {threads} cores, {rounds} interleaved rounds",
        if cfg!(feature = "metrics") {
            "feature metrics ON"
        } else {
            "feature metrics OFF"
        }
    );
    println!(
        "| contender | wall median | wall × threadpool | CPU ns/task | submitter CPU ns/task \
         | CPU × shipped |"
    );
    println!("|---|---|---|---|---|---|");
    let per_task = |d: Duration| d.as_nanos() as f64 / TASKS as f64;
    let mut reference_wall = None;
    let mut shipped_cpu = None;
    for ((name, _, _), runs) in contenders.iter().zip(runs) {
        let wall = median(runs.iter().map(|r| r.wall).collect());
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        let submitter = median(runs.iter().map(|r| r.submitter_cpu).collect());
        let reference = *reference_wall.get_or_insert(wall);
        if !name.contains("alternative") {
            shipped_cpu = Some(cpu);
        }
        println!(
            "| {name} | {:.2} ms | {:.3} | {:.0} | {:.0} | {:.3} |",
            wall.as_secs_f64() * 1e3,
            wall.as_secs_f64() / reference.as_secs_f64(),
            per_task(cpu),
            per_task(submitter),
            cpu.as_secs_f64() / shipped_cpu.unwrap_or(cpu).as_secs_f64(),
        );
    }
    #[cfg(feature = "metrics")]
    {
        with_metrics::time_one_publish(&services[0], &prometheus);
        with_metrics::time_primitives(&prometheus);
    }
    drop(services);
}

#[cfg(feature = "metrics")]
mod with_metrics {
    use std::time::{Duration, Instant};

    use metrics_exporter_prometheus::PrometheusHandle;
    use uberpool::SchedulerService;
    use uberpool_bench::Latch;

    use super::{Contender, TASKS};

    /// The designs the shipped one was chosen against, on `service`'s CPU_LIGHT scheduler.
    pub fn alternatives(label: &str, service: &SchedulerService) -> Vec<Contender<'static>> {
        let name = service.name().to_owned();
        let (events_light, timed_light) = (service.cpu_light(), service.cpu_light());
        let submitted = metrics::counter!("bench_submitted_total", "service" => name.clone());
        let completed = metrics::counter!("bench_completed_total", "service" => name.clone());
        let queue_wait = metrics::histogram!("bench_queue_wait_seconds", "service" => name.clone());
        let run_time = metrics::histogram!("bench_run_time_seconds", "service" => name);
        vec![
            (
                format!("{label}: alternative, facade counters per event (2 per task)"),
                Some(format!("{}.", service.name())),
                Box::new(move |latch: Latch| {
                    for _ in 0..TASKS {
                        let latch = latch.clone();
                        let completed = completed.clone();
                        submitted.increment(1);
                        events_light
                            .execute(move || {
                                latch.count_down();
                                completed.increment(1);
                            })
                            .unwrap();
                    }
                }),
            ),
            (
                format!("{label}: alternative, queue-wait and run-time histograms"),
                Some(format!("{}.", service.name())),
                Box::new(move |latch: Latch| {
                    for _ in 0..TASKS {
                        let latch = latch.clone();
                        let (wait, run) = (queue_wait.clone(), run_time.clone());
                        let submitted = Instant::now();
                        timed_light
                            .execute(move || {
                                let started = Instant::now();
                                wait.record(started.duration_since(submitted));
                                latch.count_down();
                                run.record(started.elapsed());
                            })
                            .unwrap();
                    }
                }),
            ),
        ]
    }

    /// Times, on one thread, what the alternatives add per task: a facade counter increment, a
    /// clock read, a histogram record (into the Prometheus recorder).
    pub fn time_primitives(prometheus: &PrometheusHandle) {
        const OPS: u32 = 1_000_000;
        let per_op = |start: Instant| start.elapsed().as_nanos() as f64 / f64::from(OPS);
        let counter = metrics::counter!("bench_primitive_total");
        let start = Instant::now();
        for _ in 0..OPS {
            counter.increment(std::hint::black_box(1));
        }
        let increment = per_op(start);
        let start = Instant::now();
        for _ in 0..OPS {
            std::hint::black_box(Instant::now());
        }
        let clock = per_op(start);
        let histogram = metrics::histogram!("bench_primitive_seconds");
        let start = Instant::now();
        for i in 0..OPS {
            histogram.record(std::hint::black_box(f64::from(i) * 1e-9));
        }
        let record = per_op(start);
        prometheus.run_upkeep();
        println!(
            "per operation, one thread: counter increment {increment:.1} ns, Instant::now {clock:.1} ns, histogram record {record:.1} ns"
        );
    }

    /// Times `publish_metrics_now` of `service` into the Prometheus recorder: what one periodic
    /// publish occupies the timer thread for.
    pub fn time_one_publish(service: &SchedulerService, prometheus: &PrometheusHandle) {
        const PUBLISHES: usize = 2_000;
        let mut samples: Vec<Duration> = (0..PUBLISHES)
            .map(|_| {
                let start = Instant::now();
                service.publish_metrics_now();
                start.elapsed()
            })
            .collect();
        samples.sort();
        let label = format!("service=\"{}\"", service.name());
        let series = prometheus
            .render()
            .lines()
            .filter(|l| l.starts_with("uberpool_") && l.contains(&label))
            .count();
        println!(
            "one publish of service `{}` ({series} series) into the Prometheus recorder: median {:.1} µs, p99 {:.1} µs over {PUBLISHES}",
            service.name(),
            samples[PUBLISHES / 2].as_secs_f64() * 1e6,
            samples[PUBLISHES * 99 / 100].as_secs_f64() * 1e6,
        );
    }
}

//! The manual concurrency sweep, done by the machine: an SMTP relay on loopback with a capacity
//! model (K sessions answered in 20 ms, 5 ms more per session beyond K, `421` beyond 1.5 × K)
//! receives the same campaign through views with the fixed limits 1, 2, 4, 8, 16, 32 and 64,
//! then through a view with an adaptive limit (`SchedulerConfig::adaptive_concurrency`, the
//! defaults: from 4 between 1 and 200). It prints messages per second and `421`s for each, and
//! `adaptive_vs_best R`: the adaptive run's messages per second over the best fixed limit's.
//!
//! Then one adaptive campaign runs in three phases while K is halved and doubled back, and the
//! limit follows: it prints how long after each change the limit settled in its band
//! (`[K - 1, K + max(2, K / 4)]`) and writes an SVG of the limit, K and the throughput over time
//! (default `target/bench-report/adaptive_relay.svg`).
//!
//! Every message is its own SMTP session; a message refused with `421` calls
//! `uberpool::report_overload()`, waits 20 ms (holding its slot, as a worker backing off does)
//! and goes back to the queue.
//!
//! Run: `cargo run --release --example adaptive_relay`, with options
//! `-- --messages 1000 --k 8 --phase-secs 6 --svg PATH --machine NAME`, and `--check` to exit 1
//! unless the adaptive run reaches `--min-ratio` (default 0.9) of the best fixed limit, meets
//! fewer `421`s than every fixed limit above K, and settles within `--max-settle` seconds
//! (default 5) after each change of K.

#[path = "adaptive/mod.rs"]
mod adaptive;
#[path = "email/mod.rs"]
mod email;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use uberpool::{AdaptiveConcurrency, SchedulerService};

use adaptive::driver::{self, Stop};
use adaptive::plot::{self, Plot};
use adaptive::{FIXED_LIMITS, SAMPLE_EVERY, band, phase_figures, settled_after, sweep, verdict};

const USAGE: &str = "usage: adaptive_relay [--messages N] [--k K] [--phase-secs S] [--svg PATH]
                      [--machine NAME] [--check] [--min-ratio R] [--max-settle S]";

struct Options {
    messages: usize,
    k: usize,
    phase: Duration,
    svg: PathBuf,
    machine: String,
    check: bool,
    min_ratio: f64,
    max_settle: Duration,
}

fn parse_args() -> Result<Options, String> {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"));
    let mut options = Options {
        messages: 1000,
        k: 8,
        phase: Duration::from_secs(6),
        svg: target.join("bench-report").join("adaptive_relay.svg"),
        machine: "unnamed machine".to_owned(),
        check: false,
        min_ratio: 0.9,
        max_settle: Duration::from_secs(5),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Err(USAGE.to_owned()),
            "--check" => {
                options.check = true;
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{what} {value:?}: a positive number"))
        };
        match flag.as_str() {
            "--messages" => options.messages = number("--messages")? as usize,
            "--k" => options.k = (number("--k")? as usize).max(2),
            "--phase-secs" => options.phase = Duration::from_secs_f64(number("--phase-secs")?),
            "--svg" => options.svg = PathBuf::from(value),
            "--machine" => options.machine = value,
            "--min-ratio" => options.min_ratio = number("--min-ratio")?,
            "--max-settle" => options.max_settle = Duration::from_secs_f64(number("--max-settle")?),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// The 1-minute load average, if the system tells.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = load_average();
    let k = options.k;
    let hard = adaptive::capacity(k).hard_limit;
    println!(
        "machine: {} · {cpus} CPUs · load average {load_before} at the start",
        options.machine
    );
    println!(
        "relay: K = {k} sessions answered in 20 ms, +5 ms per session beyond K, 421 beyond {hard}"
    );
    println!(
        "campaign: {} messages, one SMTP session each; a 421 backs off 20 ms and is retried\n",
        options.messages
    );
    let service = SchedulerService::builder()
        .name("adaptive-relay")
        .build()
        .expect("the service starts");

    println!(
        "{:<10} {:>12} {:>8} {:>9}",
        "view", "messages/s", "421s", "wall"
    );
    let rows = sweep(&service, k, options.messages, &FIXED_LIMITS, |row| {
        println!(
            "{:<10} {:>12.1} {:>8} {:>8.2}s",
            row.label(),
            row.report.per_second(),
            row.report.refused,
            row.report.wall.as_secs_f64()
        );
    });
    let verdict = verdict(&rows, k);
    let fewer_421 = verdict
        .fewest_421_above_k
        .is_none_or(|fewest| verdict.adaptive_421 < fewest);
    println!(
        "\nbest fixed limit: {} at {:.1} messages/s",
        verdict.best.0, verdict.best.1
    );
    println!("adaptive_vs_best {:.3}", verdict.ratio);
    println!(
        "adaptive 421s: {} (the fewest of the fixed limits above K: {})",
        verdict.adaptive_421,
        verdict
            .fewest_421_above_k
            .map_or("none tried".to_owned(), |n| n.to_string())
    );

    // K halved, then doubled back, in one campaign.
    let relay = adaptive::relay(k);
    let view = adaptive::adaptive_view(&service, AdaptiveConcurrency::new());
    let phase = options.phase;
    let changes = [(phase, k / 2), (phase * 2, k)];
    println!(
        "\nK changes mid-campaign: K = {k}, then {} at {:.0} s, then {k} at {:.0} s (messages for {:.0} s)",
        k / 2,
        phase.as_secs_f64(),
        2.0 * phase.as_secs_f64(),
        3.0 * phase.as_secs_f64()
    );
    let report = driver::send(
        &view,
        &relay,
        "phases",
        Stop::After(phase * 3),
        &changes,
        SAMPLE_EVERY,
    );
    let mut settle_ok = true;
    let mut bounds = vec![(Duration::ZERO, k)];
    bounds.extend(report.changes.iter().copied());
    for (i, (from, knee)) in bounds.iter().enumerate() {
        let to = bounds.get(i + 1).map_or(report.wall, |b| b.0);
        let band = band(*knee);
        let settled = settled_after(&report.timeline, *from, to, band);
        // Judged on the second half of the phase: the settled state.
        let (lo, hi, rate) = phase_figures(&report.timeline, *from + (to - *from) / 2, to);
        let what = if i == 0 { "start" } else { "change" };
        println!(
            "  K = {knee:>2} from {:>5.2} s: settled in [{}, {}] {} after the {what}; then limit {lo}..{hi}, {rate:.1} messages/s",
            from.as_secs_f64(),
            band.0,
            band.1,
            settled.map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        );
        if i > 0 {
            settle_ok &= settled.is_some_and(|d| d <= options.max_settle);
        }
    }
    println!(
        "  421s: {}, other failures: {}",
        report.refused, report.failed
    );
    view.shutdown();
    drop(relay);
    service.shutdown();

    let load_after = load_average();
    println!("\nload average at the end: {load_after}");
    let label = format!(
        "{} · {cpus} CPUs · load {load_before} → {load_after} · relay 20 ms + 5 ms per session beyond K, 421 beyond {hard}",
        options.machine
    );
    let svg = plot::svg(&Plot {
        title: format!(
            "Adaptive limit following the relay's K ({k} → {} → {k})",
            k / 2
        ),
        machine: label,
        timeline: &report.timeline,
        changes: &report.changes,
        hard_limit: hard,
        rate_window: Duration::from_millis(500),
    });
    let written = options
        .svg
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&options.svg, svg));
    match written {
        Ok(()) => println!("plot: {}", options.svg.display()),
        Err(error) => eprintln!("could not write {}: {error}", options.svg.display()),
    }

    if options.check {
        let ratio_ok = verdict.ratio >= options.min_ratio;
        println!(
            "\ncheck: adaptive_vs_best {:.3} >= {}: {}; fewer 421s than every fixed limit above K: {}; settled within {:.1} s after each change: {}",
            verdict.ratio,
            options.min_ratio,
            verdict_word(ratio_ok),
            verdict_word(fewer_421),
            options.max_settle.as_secs_f64(),
            verdict_word(settle_ok)
        );
        if !(ratio_ok && fewer_421 && settle_ok) {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn verdict_word(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

//! A mail campaign over real SMTP on loopback: an embedded relay (our own small SMTP server), a
//! subscriber list on disk, and a flow that fetches batches (IO), personalizes (CPU_INTENSIVE),
//! sends over SMTP with a small client of our own through a throttled view holding the relay's
//! connection and rate limits (IO) and records the deliveries (CPU_LIGHT). It ends with a summary
//! and checks that the relay received exactly one message per recipient (exit status 1
//! otherwise).
//!
//! Run: `cargo run --release --example email_campaign`, with options
//! `-- --recipients 5000 --smtp-connections 8 --rate 500 --strategy dedicated
//! --refuse-first-percent 5 --conf my-pools.conf`.
//!
//! With the `metrics` feature, `--metrics-addr 127.0.0.1:9464` serves the service's figures in
//! the Prometheus text format at `http://127.0.0.1:9464/metrics` while the campaign runs
//! (`email/metrics_endpoint.rs`); `--metrics-linger SECONDS` keeps serving after the campaign
//! until a scrape has read the final figures, for at most that long:
//! `cargo run --release --example email_campaign --features metrics -- --rate 200
//! --metrics-addr 127.0.0.1:9464`.

#[path = "email/mod.rs"]
mod email;
#[cfg(feature = "metrics")]
#[path = "email/metrics_endpoint.rs"]
mod metrics_endpoint;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use uberpool::{PoolsConfig, Resources, SchedulerService, Strategy};

use email::campaign::{CampaignConfig, SubscriberStore, run_campaign};
use email::relay::{Relay, RelayOptions};

const USAGE: &str = "usage: email_campaign [--recipients N] [--batch-size N] [--smtp-connections N]
                      [--rate PER_SECOND] [--strategy uber|dedicated] [--conf PATH]
                      [--refuse-first-percent P] [--max-attempts N]
                      [--metrics-addr HOST:PORT] [--metrics-linger SECONDS]   (feature metrics)";

struct Options {
    campaign: CampaignConfig,
    strategy: Option<Strategy>,
    conf: Option<PathBuf>,
    refuse_first_percent: u32,
    /// Where to serve the Prometheus endpoint (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    metrics_addr: Option<SocketAddr>,
    /// How long to keep serving after the campaign, waiting for a scrape of the final figures.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    metrics_linger: Duration,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        campaign: CampaignConfig::default(),
        strategy: None,
        conf: None,
        refuse_first_percent: 0,
        metrics_addr: None,
        metrics_linger: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| -> Result<usize, String> {
            value
                .parse::<usize>()
                .map_err(|e| format!("{what} {value:?}: {e}"))
        };
        match flag.as_str() {
            "--recipients" => options.campaign.recipients = number("--recipients")?,
            "--batch-size" => options.campaign.batch_size = number("--batch-size")?.max(1),
            "--smtp-connections" => {
                options.campaign.smtp_connections = number("--smtp-connections")?.max(1)
            }
            "--rate" => {
                let rate = number("--rate")?;
                options.campaign.rate_per_second = (rate > 0).then_some(rate);
            }
            "--max-attempts" => {
                options.campaign.max_attempts =
                    u32::try_from(number("--max-attempts")?.max(1)).map_err(|e| e.to_string())?
            }
            "--refuse-first-percent" => {
                options.refuse_first_percent =
                    u32::try_from(number("--refuse-first-percent")?.min(100))
                        .map_err(|e| e.to_string())?
            }
            "--strategy" => {
                options.strategy = Some(match value.to_ascii_lowercase().as_str() {
                    "uber" => Strategy::Uber,
                    "dedicated" => Strategy::Dedicated,
                    other => return Err(format!("--strategy {other:?}: uber or dedicated")),
                })
            }
            "--conf" => options.conf = Some(PathBuf::from(value)),
            "--metrics-addr" if cfg!(feature = "metrics") => {
                options.metrics_addr = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--metrics-addr {value:?}: {e} (HOST:PORT)"))?,
                )
            }
            "--metrics-addr" | "--metrics-linger" if !cfg!(feature = "metrics") => {
                return Err(format!(
                    "{flag} needs the `metrics` feature: cargo run --example email_campaign \
                     --features metrics -- {flag} {value}"
                ));
            }
            "--metrics-linger" => {
                options.metrics_linger = Duration::from_secs(number("--metrics-linger")? as u64)
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("email_campaign: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the campaign and prints the summary; `Ok(false)` when a recipient was not delivered
/// exactly once.
fn run(options: Options) -> Result<bool, Box<dyn std::error::Error>> {
    let mut config = PoolsConfig::discover(options.conf.as_deref(), &Resources::detect())?;
    if let Some(strategy) = options.strategy {
        config.strategy = strategy;
    }
    #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
    let mut builder = SchedulerService::builder().name("campaign").config(config);
    #[cfg(feature = "metrics")]
    let prometheus = match options.metrics_addr {
        Some(_) => {
            // Published every second to the global recorder, which the endpoint renders; each
            // scrape also publishes first, and the shutdown publishes the final figures.
            builder = builder.publish_metrics(Duration::from_secs(1));
            Some(metrics_endpoint::install_recorder()?)
        }
        None => None,
    };
    let service = builder.build()?;
    #[cfg(feature = "metrics")]
    let endpoint = match (options.metrics_addr, prometheus) {
        (Some(addr), Some(prometheus)) => {
            let endpoint = metrics_endpoint::Endpoint::serve(addr, prometheus, service.clone())?;
            println!("metrics: http://{}/metrics", endpoint.addr());
            Some(endpoint)
        }
        _ => None,
    };
    let campaign = options.campaign;
    let relay = Relay::start(RelayOptions {
        refuse_first_percent: options.refuse_first_percent,
        capacity: None,
    })?;
    let store = Arc::new(SubscriberStore::generate(campaign.recipients)?);
    println!(
        "{} recipients, {} strategy, relay 127.0.0.1:{} ({} connections{}, refusing {} % on first try)",
        campaign.recipients,
        service.strategy(),
        relay.port(),
        campaign.smtp_connections,
        campaign
            .rate_per_second
            .map_or(String::new(), |r| format!(", {r} messages/s")),
        options.refuse_first_percent,
    );

    let progress = ProgressBar::new(campaign.recipients as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {rate} ETA {eta}",
        )?
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:>6.0} messages/s", state.per_sec());
            },
        ),
    );
    progress.enable_steady_tick(Duration::from_millis(100));
    let report = run_campaign(&service, relay.port(), &store, &campaign, &progress)?;
    progress.finish();

    let metrics = service.metrics();
    let seconds = report.wall.as_secs_f64();
    println!();
    println!("{:<24}{:>12}", "sent", report.sent);
    println!("{:<24}{:>12}", "failed", report.failed.len());
    println!("{:<24}{:>12}", "retries", report.retries);
    println!("{:<24}{:>12.2} s", "wall time", seconds);
    println!(
        "{:<24}{:>12.0}",
        "messages/s",
        report.sent as f64 / seconds.max(1e-9)
    );
    println!(
        "{:<24}{:>12.1} ms",
        "mean SMTP transaction",
        report.mean_send.as_secs_f64() * 1e3
    );
    println!(
        "{:<24}{:>12}",
        "flow hops switched/elided",
        format!("{}/{}", metrics.hops_switched, metrics.hops_elided)
    );
    println!();
    println!(
        "{:<20}{:>12}{:>12}{:>12}{:>12}{:>12}",
        "pool", "peak thr", "completed", "rejected", "caller-ran", "hops elided"
    );
    for pool in &metrics.pools {
        println!(
            "{:<20}{:>12}{:>12}{:>12}{:>12}{:>12}",
            pool.name,
            pool.peak_threads,
            pool.completed,
            pool.rejected,
            pool.caller_ran,
            pool.hops_elided
        );
    }
    service.shutdown();
    // The shutdown published the final figures: any scrape from now on reads them.
    #[cfg(feature = "metrics")]
    let scrapes_before_the_end = endpoint.as_ref().map_or(0, |e| e.scrapes());

    for failure in report.failed.iter().take(20) {
        eprintln!(
            "failed: {} after {} tries: {}",
            failure.email,
            failure.attempts,
            failure.result.as_ref().err().map_or("", String::as_str)
        );
    }
    for error in &report.batch_errors {
        eprintln!("batch failed: {error}");
    }
    let log = relay.log();
    println!();
    println!(
        "relay: {} messages accepted, {} recipients refused on first try, {} duplicates dropped",
        log.messages,
        log.refused_first.len(),
        log.duplicates
    );
    let addresses = store.addresses()?;
    let verified = match log.verify_exactly_once(addresses.iter().map(String::as_str)) {
        Ok(()) if report.failed.is_empty() && report.batch_errors.is_empty() => {
            println!("verified: exactly one message per recipient");
            true
        }
        Ok(()) => {
            eprintln!("NOT verified: some recipients failed");
            false
        }
        Err(problems) => {
            eprintln!("NOT verified: {problems}");
            false
        }
    };
    #[cfg(feature = "metrics")]
    if let Some(endpoint) = endpoint {
        linger(&endpoint, scrapes_before_the_end, options.metrics_linger);
        endpoint.stop();
    }
    Ok(verified)
}

/// Keeps serving the final figures (the shutdown published them) until a scrape has read them —
/// one after the first `seen` — for at most `linger`: a scraper polling every few seconds still
/// sees how the campaign ended.
#[cfg(feature = "metrics")]
fn linger(endpoint: &metrics_endpoint::Endpoint, seen: u64, linger: Duration) {
    if linger.is_zero() {
        return;
    }
    println!(
        "metrics: serving the final figures until the next scrape (at most {} s)",
        linger.as_secs()
    );
    if !endpoint.wait_for_scrape_after(seen, linger) {
        println!("metrics: no scrape came");
    }
}

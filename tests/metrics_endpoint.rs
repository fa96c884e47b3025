//! The email campaign example's Prometheus endpoint, scraped over real HTTP while the example
//! runs a short rate-limited campaign: every family is there, the figures change during the
//! campaign, and the final scrape shows it all accounted for.
//!
//! It runs the example's binary, which `cargo test --features metrics` builds with the tests;
//! to run this file alone, build the example first:
//! `cargo build --features metrics --example email_campaign && cargo test --features metrics
//! --test metrics_endpoint`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// The failure guard of every wait here: a debug build on two busy cores, never a sequencing
/// device.
const GUARD: Duration = Duration::from_secs(120);

/// What the example prints once the campaign is over and its verdict printed, before it waits
/// for a last scrape.
const LINGERING: &str = "metrics: serving the final figures";

const RECIPIENTS: u64 = 400;
const RATE: u64 = 100; // messages per second: the campaign takes about four seconds
const CONNECTIONS: u64 = 4;

const FAMILIES: [&str; 21] = [
    "uberpool_pool_threads",
    "uberpool_pool_idle_threads",
    "uberpool_pool_active_threads",
    "uberpool_pool_queued_tasks",
    "uberpool_pool_peak_threads",
    "uberpool_pool_max_threads",
    "uberpool_pool_queue_capacity",
    "uberpool_pool_submitted_tasks_total",
    "uberpool_pool_completed_tasks_total",
    "uberpool_pool_cancelled_tasks_total",
    "uberpool_pool_rejected_tasks_total",
    "uberpool_pool_caller_ran_tasks_total",
    "uberpool_pool_waited_submissions_total",
    "uberpool_pool_panicked_tasks_total",
    "uberpool_pool_light_overruns_total",
    "uberpool_pool_hops_switched_total",
    "uberpool_pool_hops_elided_total",
    "uberpool_scheduler_rejected_tasks_total",
    "uberpool_scheduler_concurrency_limit",
    "uberpool_scheduler_in_flight_tasks",
    "uberpool_scheduler_held_tasks",
];

/// The example binary, beside this test's own executable (`target/<profile>/examples/`).
fn example_binary() -> PathBuf {
    let me = std::env::current_exe().expect("the test's own path");
    let profile_dir = me
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir
        .join("examples")
        .join(format!("email_campaign{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --features metrics --example email_campaign`",
        binary.display()
    );
    binary
}

/// One sample line of the text format: the family, its labels, the value.
#[derive(Debug)]
struct Sample {
    family: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let (family, labels) = match series.split_once('{') {
                Some((family, labels)) => (family, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("`key=\"value\"`");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                family: family.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// A scrape: what the endpoint's `GET /metrics` answered.
struct Scrape(Vec<Sample>);

impl Scrape {
    /// `GET /metrics` over a plain TCP connection; the body of a `200 OK`.
    fn take(addr: &str) -> Scrape {
        let mut stream = TcpStream::connect(addr).expect("the endpoint accepts");
        stream.set_read_timeout(Some(GUARD)).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("a response");
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        Scrape(parse(body))
    }

    /// The sum of `family` over the campaign service's series matching `labels`.
    fn sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(family, labels).map(|s| s.value).sum()
    }

    fn series<'a>(
        &'a self,
        family: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.family == family
                && s.labels.get("service").map(String::as_str) == Some("campaign")
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    fn has(&self, family: &str) -> bool {
        self.series(family, &[]).next().is_some()
    }

    fn completed(&self) -> f64 {
        self.sum("uberpool_pool_completed_tasks_total", &[])
    }
}

/// The example, with its stdout read line by line on a thread of its own.
struct Campaign {
    /// `None` once waited for.
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Campaign {
    fn start() -> Campaign {
        let mut child = Command::new(example_binary())
            .args(["--recipients", &RECIPIENTS.to_string()])
            .args(["--rate", &RATE.to_string()])
            .args(["--smtp-connections", &CONNECTIONS.to_string()])
            .args(["--metrics-addr", "127.0.0.1:0", "--metrics-linger", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Campaign {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `wanted`; panics at the guard or if the example ends.
    fn line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line {what}; the example printed {:#?}", self.seen),
            }
        }
    }

    /// `true` once the example is lingering (the campaign is over).
    fn finished(&mut self) -> bool {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().any(|l| l.starts_with(LINGERING))
    }

    /// Waits for the example to exit, within the guard; `true` if it succeeded.
    fn exit_status(&mut self) -> bool {
        let mut child = self.child.take().expect("not waited for yet");
        let (tx, exited) = channel();
        std::thread::spawn(move || tx.send(child.wait()));
        let status = exited
            .recv_timeout(GUARD)
            .expect("the example exits within the guard")
            .expect("its status");
        status.success()
    }
}

impl Drop for Campaign {
    /// A failed test leaves no example running.
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn the_campaigns_endpoint_serves_live_figures_over_http() {
    let mut campaign = Campaign::start();
    let line = campaign.line("with the endpoint's address", |l| {
        l.starts_with("metrics: http://")
    });
    let addr = line
        .trim_start_matches("metrics: http://")
        .trim_end_matches("/metrics")
        .to_owned();

    // The service's pools are there from the start; the campaign's throttled scheduler `smtp`
    // once the campaign has made it.
    let first = Scrape::take(&addr);
    for family in FAMILIES.iter().filter(|f| f.starts_with("uberpool_pool_")) {
        assert!(first.has(family), "the first scrape lacks {family}");
    }
    let smtp = [("scheduler", "smtp"), ("class", "IO")];
    let threads = |scrape: &Scrape| scrape.sum("uberpool_pool_threads", &[]);
    assert!(threads(&first) > 0.0, "the service runs");

    // Scrape on until the figures move: the campaign lasts about RECIPIENTS / RATE seconds.
    let started = Instant::now();
    let mut scrapes = 1;
    let during = loop {
        std::thread::sleep(Duration::from_millis(20)); // pacing the scrapes, not sequencing
        let scrape = Scrape::take(&addr);
        scrapes += 1;
        if scrape.completed() > first.completed() && scrape.has("uberpool_scheduler_held_tasks") {
            break scrape;
        }
        assert!(
            !campaign.finished(),
            "the campaign ended before a second scrape saw its figures move ({scrapes} scrapes)"
        );
        assert!(started.elapsed() < GUARD, "the figures never moved");
    };

    // Still running: the service shuts down as soon as the campaign is over.
    assert!(threads(&during) > 0.0, "a scrape during the campaign");
    for family in FAMILIES {
        assert!(
            during.has(family),
            "a scrape during the campaign lacks {family}"
        );
    }
    assert_eq!(
        during.sum("uberpool_scheduler_concurrency_limit", &smtp),
        CONNECTIONS as f64
    );

    campaign.line("saying the campaign is over", |l| l.starts_with(LINGERING));
    assert!(
        campaign
            .seen
            .iter()
            .any(|l| l == "verified: exactly one message per recipient"),
        "the relay got exactly one message per recipient: {:#?}",
        campaign.seen
    );
    // The example lingers until this scrape: the final figures, published at its shutdown.
    let last = Scrape::take(&addr);
    assert!(last.completed() >= during.completed());
    let submitted = last.sum("uberpool_pool_submitted_tasks_total", &[]);
    assert_eq!(last.completed(), submitted, "every task accepted ended");
    assert_eq!(last.sum("uberpool_pool_panicked_tasks_total", &[]), 0.0);
    assert_eq!(threads(&last), 0.0, "shut down");
    assert_eq!(last.sum("uberpool_scheduler_in_flight_tasks", &smtp), 0.0);
    assert!(
        last.sum("uberpool_pool_hops_switched_total", &[]) > 0.0,
        "the campaign is a flow"
    );
    let throttled = [("scheduler", "smtp"), ("kind", "throttled")];
    assert_eq!(
        last.series("uberpool_scheduler_rejected_tasks_total", &throttled)
            .count(),
        1
    );
    assert!(campaign.exit_status(), "the example exits once scraped");
}

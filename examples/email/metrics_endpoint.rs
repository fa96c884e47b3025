//! The campaign's Prometheus endpoint (`--metrics-addr`, cargo feature `metrics`): the service's
//! figures, rendered in the Prometheus text format by `metrics-exporter-prometheus`'s recorder
//! and served over HTTP/1.1 on a std listener, one request per connection. Each scrape publishes
//! the service's figures first, so a scrape is never older than itself.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use uberpool::SchedulerService;

/// The longest request head read, and the longest a client may take to send it.
const MAX_REQUEST: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's global `metrics` recorder; its handle
/// renders what was published to it.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new().install_recorder()
}

/// Scrapes answered so far, and a signal for each new one.
#[derive(Default)]
struct Scrapes {
    served: Mutex<u64>,
    signal: Condvar,
}

/// The endpoint's thread, serving until [`stop`](Endpoint::stop).
pub struct Endpoint {
    addr: SocketAddr,
    scrapes: Arc<Scrapes>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Listens on `addr` (port 0: any free port) and serves `GET /metrics` with `service`'s
    /// figures as `prometheus` renders them.
    pub fn serve(
        addr: SocketAddr,
        prometheus: PrometheusHandle,
        service: SchedulerService,
    ) -> io::Result<Endpoint> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let scrapes = Arc::new(Scrapes::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (scrapes, stopping) = (scrapes.clone(), stopping.clone());
            std::thread::Builder::new()
                .name("metrics-endpoint".to_owned())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::Acquire) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        match answer(stream, &prometheus, &service) {
                            Ok(true) => {
                                *scrapes.served.lock().unwrap() += 1;
                                scrapes.signal.notify_all();
                            }
                            Ok(false) => {}
                            Err(error) => eprintln!("metrics endpoint: {error}"),
                        }
                    }
                })?
        };
        Ok(Endpoint {
            addr,
            scrapes,
            stopping,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scrapes of `/metrics` answered so far.
    pub fn scrapes(&self) -> u64 {
        *self.scrapes.served.lock().unwrap()
    }

    /// Waits until more than `seen` scrapes were answered, for at most `timeout`; `true` if
    /// one was.
    pub fn wait_for_scrape_after(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut served = self.scrapes.served.lock().unwrap();
        while *served <= seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            served = self.scrapes.signal.wait_timeout(served, left).unwrap().0;
        }
        true
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the blocked `accept` with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, READ_TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request; `Ok(true)` for a scrape of `/metrics`.
fn answer(
    mut stream: TcpStream,
    prometheus: &PrometheusHandle,
    service: &SchedulerService,
) -> io::Result<bool> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(false); // closed before a whole request (the stop's wake-up does this)
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").map(|_| false);
        }
    }
    let request = String::from_utf8_lossy(&head);
    let mut first = request.lines().next().unwrap_or("").split_whitespace();
    match (first.next(), first.next()) {
        (Some("GET"), Some("/metrics")) => {
            service.publish_metrics_now();
            respond(&mut stream, "200 OK", &prometheus.render())?;
            Ok(true)
        }
        (Some("GET"), _) => respond(&mut stream, "404 Not Found", "try /metrics\n").map(|_| false),
        _ => respond(&mut stream, "405 Method Not Allowed", "").map(|_| false),
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

//! Helpers shared by the queue tests: a beanstalkd server of the test's own on a free loopback
//! port (with a binlog where durability matters), polling of its stats under a failure guard,
//! and an idempotent sink that counts duplicates.
//!
//! When the `beanstalkd` binary is missing, [`Beanstalkd::start`] prints a loud notice and the
//! test returns early — unless `UBERPOOL_REQUIRE_BEANSTALKD` is set (CI sets it), in which case
//! the test fails.
#![allow(dead_code)]

pub mod procs;
pub mod sink;

#[allow(unused_imports)] // not every test binary that includes this module uses both
pub use procs::{TempDir, Workers};

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use uberpool::queue::beanstalkd::{Client, Error, TubeStats};

/// The generous failure guard of every wait in the queue tests: never a sequencing device.
pub const GUARD: Duration = Duration::from_secs(30);

/// Polls `cond` every few milliseconds until it holds; panics naming `what` after [`GUARD`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The beanstalkd binary: `$UBERPOOL_BEANSTALKD`, else `beanstalkd` on the PATH or in the
/// Debian package's place.
pub fn beanstalkd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("UBERPOOL_BEANSTALKD") {
        return Some(PathBuf::from(path));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("beanstalkd"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/bin/beanstalkd"));
    candidates.push(PathBuf::from("/usr/sbin/beanstalkd"));
    candidates.into_iter().find(|path| path.is_file())
}

/// A beanstalkd process of the test's own; killed when dropped.
pub struct Beanstalkd {
    child: Option<Child>,
    binary: PathBuf,
    pub port: u16,
    binlog: Option<PathBuf>,
    extra: Vec<String>,
}

impl Beanstalkd {
    /// Starts a server without a binlog, or returns `None` (after a loud notice) when the
    /// binary is missing and `UBERPOOL_REQUIRE_BEANSTALKD` is unset.
    pub fn start() -> Option<Beanstalkd> {
        Self::start_with(None, &[])
    }

    /// Starts a server that keeps its binlog in `dir`.
    pub fn start_with_binlog(dir: &Path) -> Option<Beanstalkd> {
        Self::start_with(Some(dir.to_owned()), &[])
    }

    /// Starts a server with extra flags (such as `-z BYTES`).
    pub fn start_with(binlog: Option<PathBuf>, extra: &[&str]) -> Option<Beanstalkd> {
        let Some(binary) = beanstalkd_binary() else {
            let message = "beanstalkd is not installed (Debian package `beanstalkd`: \
                           apt-get install -y beanstalkd); set UBERPOOL_BEANSTALKD to its path";
            if std::env::var_os("UBERPOOL_REQUIRE_BEANSTALKD").is_some() {
                panic!("UBERPOOL_REQUIRE_BEANSTALKD is set but {message}");
            }
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n"
            );
            return None;
        };
        let mut server = Beanstalkd {
            child: None,
            binary,
            port: 0,
            binlog,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        // A free port can be taken between our probe and the server's bind: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("beanstalkd did not start on any of 5 free ports");
    }

    /// Starts the process on `self.port`; `true` once it accepts connections.
    fn spawn(&mut self) -> bool {
        let mut command = Command::new(&self.binary);
        command.args(["-l", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(dir) = &self.binlog {
            command.arg("-b").arg(dir);
        }
        command.args(&self.extra);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = command.spawn().expect("spawn beanstalkd");
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // exited: the port was taken, or the binlog is locked
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return true;
            }
            if start.elapsed() > GUARD {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// A new client.
    pub fn client(&self) -> Client {
        Client::connect(self.addr()).expect("connect to the test's beanstalkd")
    }

    /// Kills the server with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (and binlog).
    pub fn restart(&mut self) {
        self.kill();
        // The port is free again once the old process is gone; the guard covers a slow
        // release of the binlog lock.
        let start = Instant::now();
        while !self.spawn() {
            assert!(
                start.elapsed() < GUARD,
                "beanstalkd did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the server a signal (`USR1` puts it in drain mode).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A tube's stats; `None` when the tube does not exist (tubes vanish when empty and unused).
pub fn tube_stats(client: &mut Client, tube: &str) -> Option<TubeStats> {
    match client.stats_tube(tube) {
        Ok(stats) => Some(stats),
        Err(Error::NotFound) => None,
        Err(error) => panic!("stats-tube {tube}: {error}"),
    }
}

/// Jobs in `tube` in any state (zero when the tube does not exist).
pub fn jobs_in(client: &mut Client, tube: &str) -> u64 {
    match client.stats_tube(tube) {
        Ok(stats) => stats.jobs(),
        Err(Error::NotFound) => 0,
        Err(error) => panic!("stats-tube {tube}: {error}"),
    }
}

/// Waits until `tube` holds no job in any state.
pub fn wait_drained(client: &mut Client, tube: &str) {
    wait_until(&format!("tube {tube} to drain"), || {
        jobs_in(client, tube) == 0
    });
}

/// A unique tube name per call, so tests sharing a server never see each other's jobs.
pub fn tube(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{what}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

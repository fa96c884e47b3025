//! Helpers of the Redis queue tests: a Redis server or a three-master Redis Cluster of the
//! test's own on free loopback ports (append-only file on, in a temporary directory), killed
//! when dropped, and polling under a failure guard.
//!
//! When `redis-server` is missing, [`RedisServer::start`] and [`RedisCluster::start`] print a
//! loud notice and the test returns early — unless `UBERPOOL_REQUIRE_REDIS` is set (CI sets
//! it), in which case the test fails.
#![allow(dead_code)]

#[path = "../queue_common/procs.rs"]
pub mod procs;

#[allow(unused_imports)] // not every test binary that includes this module uses both
pub use procs::{TempDir, Workers};

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The generous failure guard of every wait in these tests: never a sequencing device.
pub const GUARD: Duration = Duration::from_secs(60);

/// Polls `cond` every few milliseconds until it holds; panics naming `what` after [`GUARD`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn binary(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/bin").join(name));
    candidates.into_iter().find(|path| path.is_file())
}

/// `redis-server` and `redis-cli`, or `None` after a loud notice (a panic when
/// `UBERPOOL_REQUIRE_REDIS` is set).
fn binaries() -> Option<(PathBuf, PathBuf)> {
    match (
        binary("redis-server", "UBERPOOL_REDIS_SERVER"),
        binary("redis-cli", "UBERPOOL_REDIS_CLI"),
    ) {
        (Some(server), Some(cli)) => Some((server, cli)),
        _ => {
            let message = "redis-server or redis-cli is not installed (Debian packages \
                           `redis-server` and `redis-tools`: apt-get install -y redis-server \
                           redis-tools); set UBERPOOL_REDIS_SERVER and UBERPOOL_REDIS_CLI to their paths";
            if std::env::var_os("UBERPOOL_REQUIRE_REDIS").is_some() {
                panic!("UBERPOOL_REQUIRE_REDIS is set but {message}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n"
            );
            None
        }
    }
}

/// A port free on loopback whose cluster bus port (port + 10000) is free too.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free loopback port");
        if port <= 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Sends `PING` on a fresh connection; `true` on `PONG`.
fn answers(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return false;
    };
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

/// One `redis-server` process with its data directory.
pub struct RedisNode {
    child: Option<Child>,
    server: PathBuf,
    pub port: u16,
    dir: TempDir,
    cluster: bool,
    /// `appendfsync always` instead of `everysec`.
    fsync_always: bool,
}

impl RedisNode {
    fn start(server: &Path, cluster: bool, fsync_always: bool) -> RedisNode {
        let mut node = RedisNode {
            child: None,
            server: server.to_owned(),
            port: 0,
            dir: TempDir::new("redis"),
            cluster,
            fsync_always,
        };
        // A probed port can be taken before the server binds it: try a few.
        for _ in 0..5 {
            node.port = free_port();
            if node.spawn() {
                return node;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts the process on `self.port` with its directory; `true` once it answers.
    fn spawn(&mut self) -> bool {
        let mut command = Command::new(&self.server);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"])
            .args([
                "--appendfsync",
                if self.fsync_always {
                    "always"
                } else {
                    "everysec"
                },
            ])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .arg("--logfile")
            .arg(self.dir.path().join("log"));
        if self.cluster {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]);
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = command.spawn().expect("spawn redis-server");
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // exited: most likely the port was taken
            }
            if answers(self.port) {
                self.child = Some(child);
                return true;
            }
            if start.elapsed() > GUARD {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and directory (its append-only file and,
    /// in a cluster, its node configuration).
    pub fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        while !self.spawn() {
            assert!(
                start.elapsed() < GUARD,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain connection to this node.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("connect to the test's redis-server")
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A single Redis server.
pub struct RedisServer {
    pub node: RedisNode,
}

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        let (server, _) = binaries()?;
        Some(RedisServer {
            node: RedisNode::start(&server, false, false),
        })
    }

    pub fn url(&self) -> String {
        self.node.url()
    }
}

/// A Redis Cluster of three masters (no replicas).
pub struct RedisCluster {
    pub nodes: Vec<RedisNode>,
}

impl RedisCluster {
    /// Three masters with `appendfsync everysec` (Redis's default).
    pub fn start() -> Option<RedisCluster> {
        Self::start_with(false)
    }

    /// Three masters; with `fsync_always`, `appendfsync always`: every write is in the file
    /// and synced before its reply. (With `everysec`, a master whose background sync is slow
    /// holds writes back for up to 2 s while it keeps replying: a SIGKILL then loses them.)
    pub fn start_with(fsync_always: bool) -> Option<RedisCluster> {
        let (server, cli) = binaries()?;
        let nodes: Vec<RedisNode> = (0..3)
            .map(|_| RedisNode::start(&server, true, fsync_always))
            .collect();
        let status = Command::new(&cli)
            .args(["--cluster", "create"])
            .args(nodes.iter().map(RedisNode::addr))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(
            status.success(),
            "redis-cli --cluster create failed: {status}"
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        Some(cluster)
    }

    /// Waits until every node answers `PING` (done loading its file) and reports
    /// `cluster_state:ok`.
    pub fn wait_ok(&self) {
        wait_until("the cluster's state to be ok on every node", || {
            self.nodes.iter().all(|node| {
                if !answers(node.port) {
                    return false;
                }
                let Ok(client) = redis::Client::open(node.url()) else {
                    return false;
                };
                let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2))
                else {
                    return false;
                };
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut conn)
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
        });
    }

    /// The nodes' URLs, comma-separated (the form the library takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node whose address is `addr` (`host:port`).
    pub fn node_mut(&mut self, addr: &str) -> &mut RedisNode {
        self.nodes
            .iter_mut()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node at {addr}"))
    }
}

/// A unique queue name per call, so tests sharing a server never see each other's jobs.
pub fn queue_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

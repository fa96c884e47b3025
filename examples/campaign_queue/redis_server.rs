//! A Redis Cluster of the demo's own: three masters started with `redis-server
//! --cluster-enabled yes` on free loopback ports (append-only files on, in a temporary
//! directory), joined with `redis-cli --cluster create`, and stopped when dropped.

use std::error::Error;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running three-master cluster.
pub struct LocalRedisCluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    pub dir: PathBuf,
}

/// `name` on the PATH or in /usr/bin, or the message telling the user how to get it.
fn binary(name: &str) -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/bin").join(name));
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "{name} is not installed. Install the Debian packages `redis-server` and \
                 `redis-tools` (sudo apt-get install -y redis-server redis-tools), or pass \
                 --redis URL[,URL…] of a running server or cluster."
            )
        })
}

/// A loopback port free now whose cluster bus port (port + 10000) is free too.
fn free_port() -> Result<u16, Box<dyn Error>> {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port <= 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free loopback port pair for a cluster node".into())
}

/// `PING` answered on `port`.
fn answers(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
        .is_ok()
}

/// `CLUSTER INFO` on `port` says the cluster is ok.
fn cluster_ok(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut conn| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn))
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

impl LocalRedisCluster {
    pub fn start() -> Result<LocalRedisCluster, Box<dyn Error>> {
        let server = binary("redis-server")?;
        let cli = binary("redis-cli")?;
        let dir =
            std::env::temp_dir().join(format!("uberpool-campaign-redis-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cluster = LocalRedisCluster {
            children: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            cluster.start_node(&server)?;
        }
        let status = Command::new(&cli)
            .args(["--cluster", "create"])
            .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
        if !status.success() {
            return Err(format!("redis-cli --cluster create failed: {status}").into());
        }
        // `create` returns before every node agrees that the cluster is up.
        let started = Instant::now();
        while !cluster.ports.iter().all(|&p| cluster_ok(p)) {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the demo's cluster did not reach cluster_state:ok in 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    fn start_node(&mut self, server: &PathBuf) -> Result<(), Box<dyn Error>> {
        // A port probed free can be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port()?;
            let dir = self.dir.join(port.to_string());
            std::fs::create_dir_all(&dir)?;
            let mut child = Command::new(server)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&dir)
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--cluster-node-timeout", "5000", "--appendonly", "yes"])
                .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
                .arg("--logfile")
                .arg(dir.join("log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if child.try_wait()?.is_some() {
                    break; // exited: most likely the port was taken
                }
                if answers(port) {
                    self.children.push(child);
                    self.ports.push(port);
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(format!("{} did not start on a free loopback port", server.display()).into())
    }

    /// The nodes' URLs, comma-separated.
    pub fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for LocalRedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Process helpers shared by the beanstalkd and Redis queue tests (and their benches): a
//! temporary directory, and the worker processes of one test — copies of the test binary started
//! with the environment that tells them their role, killed if the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "uberpool-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Worker processes of one test, killed if the test fails. Each is this test binary again,
/// started with `env` plus `UBERPOOL_QUEUE_TEST_WORKER` (its name); the binary's `main` sees the
/// role variable in `env` and runs as a worker until its stdin closes.
pub struct Workers {
    env: Vec<(&'static str, String)>,
    /// How long `stop_all` waits for a worker to exit before it fails the test.
    guard: Duration,
    children: Vec<(String, Child)>,
}

impl Workers {
    pub fn new(env: Vec<(&'static str, String)>, guard: Duration) -> Workers {
        Workers {
            env,
            guard,
            children: Vec::new(),
        }
    }

    pub fn spawn(&mut self, worker: &str) {
        let child = Command::new(std::env::current_exe().unwrap())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("UBERPOOL_QUEUE_TEST_WORKER", worker)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn a worker process");
        self.children.push((worker.to_owned(), child));
    }

    /// Kills `worker` with SIGKILL and waits for it to die.
    pub fn kill(&mut self, worker: &str) {
        let index = self
            .children
            .iter()
            .position(|(name, _)| name == worker)
            .unwrap();
        let (_, mut child) = self.children.remove(index);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
    }

    /// Closes every live worker's stdin and waits for each to exit successfully.
    pub fn stop_all(&mut self) {
        for (_, child) in &mut self.children {
            drop(child.stdin.take());
        }
        for (name, child) in &mut self.children {
            let start = Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    start.elapsed() < self.guard,
                    "timed out waiting for worker {name} to exit"
                );
                std::thread::sleep(Duration::from_millis(5));
            };
            assert!(status.success(), "worker {name}: {status}");
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! A beanstalkd of the demo's own: found on the PATH (or where the Debian package puts it),
//! started on a free loopback port with its binlog in a temporary directory, and stopped when
//! dropped.

use std::error::Error;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running beanstalkd.
pub struct LocalBeanstalkd {
    child: Child,
    pub addr: String,
    pub binlog: PathBuf,
}

/// The beanstalkd binary, or the message telling the user how to get one.
fn binary() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("beanstalkd"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/bin/beanstalkd"));
    candidates.push(PathBuf::from("/usr/sbin/beanstalkd"));
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .ok_or_else(|| {
            "beanstalkd is not installed. Install the Debian package `beanstalkd` \
         (sudo apt-get install -y beanstalkd), or pass --beanstalkd HOST:PORT of a running server."
                .to_owned()
        })
}

impl LocalBeanstalkd {
    pub fn start() -> Result<LocalBeanstalkd, Box<dyn Error>> {
        let binary = binary()?;
        let binlog =
            std::env::temp_dir().join(format!("uberpool-campaign-binlog-{}", std::process::id()));
        std::fs::create_dir_all(&binlog)?;
        // A port probed free can be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut child = Command::new(&binary)
                .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-b"])
                .arg(&binlog)
                // Its stderr notes every connection reset, as when a worker is killed.
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if child.try_wait()?.is_some() {
                    break; // exited: most likely the port was taken
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(LocalBeanstalkd {
                        child,
                        addr: format!("127.0.0.1:{port}"),
                        binlog,
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(format!("{} did not start on a free loopback port", binary.display()).into())
    }
}

impl Drop for LocalBeanstalkd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.binlog);
    }
}

//! [`Resources`]: the `cores` and `mem` that sizing expressions are evaluated against.
//!
//! This file detects what the current process may use (CPUs after affinity and cgroup quota,
//! memory after the cgroup limit, threads after the kernel's and the cgroup's limits) and nothing
//! else; expressions live in `expr/`.

use std::fs;

use crate::pool::MAX_THREADS;

/// Fallback for `mem` when the platform reports no memory at all: 1 GiB in KiB, the heap size
/// that Mule's standard distribution runs with.
const FALLBACK_MEM_KIB: u64 = 1024 * 1024;

/// A cgroup limit at or above this many bytes means "no limit" (cgroup v1 reports
/// `9223372036854771712` when unlimited).
const UNLIMITED_CGROUP_BYTES: u64 = 1 << 60;

/// The machine resources that sizing expressions see as `cores` and `mem`, and the most threads
/// one pool may have.
///
/// - `cores`: the number of CPUs this process may run on (CPU affinity and cgroup CPU quota
///   taken into account).
/// - `mem_kib`: the memory this process may use, in KiB (1024 bytes): the cgroup memory limit
///   when one is set and is below the physical RAM, else the physical RAM. It plays the role of
///   Mule's maximum heap, so Mule's constants (`245760` KiB = 240 MiB, `5120` KiB = 5 MiB per
///   thread) keep their meaning.
/// - `max_threads`: the most threads one pool may have: uberpool's own limit (32,767 per pool),
///   lowered by [`detect`](Resources::detect) to what the operating system lets this process run.
///   A configured core size above it is refused; a maximum size above it is lowered to it with a
///   warning (see [`PoolsConfig`](crate::PoolsConfig)).
///
/// [`Resources::detect`] reads them from the system; [`Resources::new`] fixes `cores` and `mem`
/// (with uberpool's own thread limit), which is what tests and the `uberpool resolve --cores N
/// --mem-kib N` command use.
///
/// ```
/// use uberpool::{PoolsConfig, Resources};
///
/// // 4 CPUs and 1 GiB: Mule's textbook example.
/// let res = Resources::new(4, 1_048_576);
/// assert_eq!(res.cores, 4);
/// let config = PoolsConfig::defaults(&res);
/// assert_eq!(config.uber.max_size, 4 + (1_048_576 - 245_760) / 5120);
///
/// // What this machine offers.
/// let here = Resources::detect();
/// assert!(here.cores >= 1);
/// assert!(here.mem_kib > 0);
/// assert!(here.max_threads >= 1 && here.max_threads <= res.max_threads);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[must_use]
pub struct Resources {
    /// CPUs this process may use: the value of `cores` in expressions.
    pub cores: usize,
    /// Memory this process may use, in KiB: the value of `mem` in expressions.
    pub mem_kib: u64,
    /// The most threads one pool may have: at least 1, at most uberpool's limit of 32,767.
    pub max_threads: usize,
}

impl Resources {
    /// Fixed resources: `cores` CPUs and `mem_kib` KiB of memory, with uberpool's own limit of
    /// 32,767 threads per pool (no operating-system limit is read).
    ///
    /// No value is corrected here; a configuration resolved against `cores == 0` reports the
    /// pools it cannot size (see [`PoolsConfig::defaults`](crate::PoolsConfig::defaults) for how
    /// the defaults treat it).
    pub const fn new(cores: usize, mem_kib: u64) -> Self {
        Resources {
            cores,
            mem_kib,
            max_threads: MAX_THREADS,
        }
    }

    /// The same resources with another thread limit per pool, kept between 1 and uberpool's
    /// own limit of 32,767.
    ///
    /// ```
    /// use uberpool::{PoolsConfig, Resources};
    ///
    /// let small = Resources::new(4, 1_048_576).with_max_threads(100);
    /// assert_eq!(small.max_threads, 100);
    /// // Mule's default maximum, 160 threads here, is lowered to the limit with a warning.
    /// let config = PoolsConfig::defaults(&small);
    /// assert_eq!(config.uber.max_size, 100);
    /// assert_eq!(config.warnings().len(), 1);
    /// assert_eq!(Resources::new(4, 1).with_max_threads(1 << 20).max_threads, 32_767);
    /// ```
    pub const fn with_max_threads(self, max_threads: usize) -> Self {
        let max_threads = if max_threads == 0 {
            1
        } else if max_threads > MAX_THREADS {
            MAX_THREADS
        } else {
            max_threads
        };
        Resources {
            max_threads,
            ..self
        }
    }

    /// The resources of the current process.
    ///
    /// `cores` is [`num_cpus::get`], which honours CPU affinity and the cgroup CPU quota.
    /// `mem_kib` is the cgroup memory limit (cgroup v2 `memory.max`, else v1
    /// `memory.limit_in_bytes`, for the process's own cgroup and then the root) when it is set
    /// and below the physical RAM; otherwise the physical RAM reported by `sysinfo`. `"max"`,
    /// zero and absurdly large limits (≥ 2^60 bytes) count as "no limit". If the platform reports
    /// no memory at all, 1 GiB is assumed and a warning is logged. `max_threads` is the smallest
    /// of uberpool's limit (32,767), the kernel's `threads-max`, this process's `RLIMIT_NPROC`
    /// (from `/proc/self/limits`) and its cgroup's `pids.max`, as far as they can be read
    /// (threads already running elsewhere are not subtracted).
    pub fn detect() -> Self {
        let cores = num_cpus::get().max(1);
        let max_threads = os_thread_limit().map_or(MAX_THREADS, |limit| {
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .min(MAX_THREADS)
        });
        let physical = physical_memory_bytes();
        let limit = cgroup_memory_limit_bytes();
        let bytes = match (limit, physical) {
            (Some(limit), Some(physical)) => limit.min(physical),
            (Some(limit), None) => limit,
            (None, Some(physical)) => physical,
            (None, None) => {
                tracing::warn!(
                    "uberpool could not detect the memory size; assuming {} KiB for `mem`",
                    FALLBACK_MEM_KIB
                );
                return Resources::new(cores, FALLBACK_MEM_KIB).with_max_threads(max_threads);
            }
        };
        Resources::new(cores, (bytes / 1024).max(1)).with_max_threads(max_threads)
    }
}

/// The most threads the operating system lets this process run, if any limit can be read: the
/// smallest of the kernel's `threads-max`, the soft `RLIMIT_NPROC` and the cgroup's `pids.max`.
fn os_thread_limit() -> Option<u64> {
    let kernel = fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let rlimit = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| parse_max_processes(&text));
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let cgroup = cgroup_pids_files(&own)
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .find_map(|text| parse_pids_max(&text));
    [kernel, rlimit, cgroup]
        .into_iter()
        .flatten()
        .filter(|&limit| limit > 0)
        .min()
}

/// The soft "Max processes" limit of a `/proc/self/limits` text (`None` if unlimited).
fn parse_max_processes(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max processes"))?;
    line["Max processes".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A cgroup `pids.max` value (`None` for `max`, no limit).
fn parse_pids_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The files that may hold this process's cgroup thread limit, most specific first.
fn cgroup_pids_files(proc_self_cgroup: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            files.push(format!("/sys/fs/cgroup{path}/pids.max"));
        } else if controllers.split(',').any(|c| c == "pids") {
            files.push(format!("/sys/fs/cgroup/pids{path}/pids.max"));
        }
    }
    files
}

/// Physical RAM in bytes, if the platform reports it.
fn physical_memory_bytes() -> Option<u64> {
    let mut system = sysinfo::System::new().ok()?;
    system.refresh_memory();
    Some(system.total_memory()).filter(|&bytes| bytes > 0)
}

/// The memory limit of this process's cgroup in bytes, if one is set.
fn cgroup_memory_limit_bytes() -> Option<u64> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    cgroup_limit_files(&own)
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .find_map(|text| parse_cgroup_memory_limit(&text))
}

/// The files that may hold this process's memory limit, most specific first, given the text of
/// `/proc/self/cgroup`.
fn cgroup_limit_files(proc_self_cgroup: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            files.push(format!("/sys/fs/cgroup{path}/memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
    }
    files.push("/sys/fs/cgroup/memory.max".to_owned());
    files.push("/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned());
    files
}

/// Reads a cgroup memory limit file's content: bytes, or `None` for "no limit".
fn parse_cgroup_memory_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|&bytes| bytes > 0 && bytes < UNLIMITED_CGROUP_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_max_means_no_limit() {
        assert_eq!(parse_cgroup_memory_limit("max\n"), None);
    }

    #[test]
    fn cgroup_limit_in_bytes_is_read() {
        assert_eq!(parse_cgroup_memory_limit("536870912\n"), Some(536_870_912));
    }

    #[test]
    fn cgroup_v1_unlimited_sentinel_means_no_limit() {
        assert_eq!(parse_cgroup_memory_limit("9223372036854771712"), None);
    }

    #[test]
    fn cgroup_zero_or_garbage_means_no_limit() {
        assert_eq!(parse_cgroup_memory_limit("0"), None);
        assert_eq!(parse_cgroup_memory_limit("lots"), None);
        assert_eq!(parse_cgroup_memory_limit(""), None);
    }

    #[test]
    fn cgroup_files_follow_the_process_cgroup_first() {
        let files = cgroup_limit_files("0::/system.slice/app.service\n");
        assert_eq!(
            files[0],
            "/sys/fs/cgroup/system.slice/app.service/memory.max"
        );
        let files = cgroup_limit_files("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n");
        assert_eq!(
            files[0],
            "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"
        );
        assert_eq!(files.len(), 3);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "sysinfo calls sysconf(_SC_CLK_TCK), which Miri does not implement"
    )]
    fn detected_resources_are_never_zero() {
        let res = Resources::detect();
        assert!(res.cores >= 1);
        assert!(res.mem_kib >= 1);
        assert!((1..=MAX_THREADS).contains(&res.max_threads));
    }

    #[test]
    fn max_processes_soft_limit_is_read_and_unlimited_means_none() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max processes             96364                96364                processes \n";
        assert_eq!(parse_max_processes(limits), Some(96_364));
        let unlimited =
            "Max processes             unlimited            unlimited            processes\n";
        assert_eq!(parse_max_processes(unlimited), None);
        assert_eq!(parse_max_processes(""), None);
    }

    #[test]
    fn pids_max_is_read_and_max_means_none() {
        assert_eq!(parse_pids_max("512\n"), Some(512));
        assert_eq!(parse_pids_max("max\n"), None);
        assert_eq!(
            cgroup_pids_files("0::/app.slice\n"),
            ["/sys/fs/cgroup/app.slice/pids.max"]
        );
        assert_eq!(
            cgroup_pids_files("8:pids:/docker/abc\n4:memory:/docker/abc\n"),
            ["/sys/fs/cgroup/pids/docker/abc/pids.max"]
        );
    }

    #[test]
    fn thread_limit_stays_between_one_and_the_pool_limit() {
        let res = Resources::new(2, 1024);
        assert_eq!(res.max_threads, MAX_THREADS);
        assert_eq!(res.with_max_threads(0).max_threads, 1);
        assert_eq!(res.with_max_threads(usize::MAX).max_threads, MAX_THREADS);
    }
}

//! [`Resources`]: the `cores` and `mem` that sizing expressions are evaluated against.
//!
//! This file detects what the current process may use (CPUs after affinity and cgroup quota,
//! memory after the cgroup limit) and nothing else; expressions live in `expr/`.

use std::fs;

/// Fallback for `mem` when the platform reports no memory at all: 1 GiB in KiB, the heap size
/// that Mule's standard distribution runs with.
const FALLBACK_MEM_KIB: u64 = 1024 * 1024;

/// A cgroup limit at or above this many bytes means "no limit" (cgroup v1 reports
/// `9223372036854771712` when unlimited).
const UNLIMITED_CGROUP_BYTES: u64 = 1 << 60;

/// The machine resources that sizing expressions see as `cores` and `mem`.
///
/// - `cores`: the number of CPUs this process may run on (CPU affinity and cgroup CPU quota
///   taken into account).
/// - `mem_kib`: the memory this process may use, in KiB (1024 bytes): the cgroup memory limit
///   when one is set and is below the physical RAM, else the physical RAM. It plays the role of
///   Mule's maximum heap, so Mule's constants (`245760` KiB = 240 MiB, `5120` KiB = 5 MiB per
///   thread) keep their meaning.
///
/// [`Resources::detect`] reads them from the system; [`Resources::new`] fixes them, which is what
/// tests and the `uberpool resolve --cores N --mem-kib N` command use.
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
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resources {
    /// CPUs this process may use: the value of `cores` in expressions.
    pub cores: usize,
    /// Memory this process may use, in KiB: the value of `mem` in expressions.
    pub mem_kib: u64,
}

impl Resources {
    /// Fixed resources: `cores` CPUs and `mem_kib` KiB of memory.
    ///
    /// No value is corrected here; a configuration resolved against `cores == 0` reports the
    /// pools it cannot size (see [`PoolsConfig::defaults`](crate::PoolsConfig::defaults) for how
    /// the defaults treat it).
    pub const fn new(cores: usize, mem_kib: u64) -> Self {
        Resources { cores, mem_kib }
    }

    /// The resources of the current process.
    ///
    /// `cores` is [`num_cpus::get`], which honours CPU affinity and the cgroup CPU quota.
    /// `mem_kib` is the cgroup memory limit (cgroup v2 `memory.max`, else v1
    /// `memory.limit_in_bytes`, for the process's own cgroup and then the root) when it is set
    /// and below the physical RAM; otherwise the physical RAM reported by `sysinfo`. `"max"`,
    /// zero and absurdly large limits (≥ 2^60 bytes) count as "no limit". If the platform reports
    /// no memory at all, 1 GiB is assumed and a warning is logged.
    pub fn detect() -> Self {
        let cores = num_cpus::get().max(1);
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
                return Resources::new(cores, FALLBACK_MEM_KIB);
            }
        };
        Resources::new(cores, (bytes / 1024).max(1))
    }
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
    }
}

//! The keys of `scheduler-pools.conf`: their names, which strategy reads them, and the nearest
//! valid key for a misspelt one.
//!
//! Names are Mule's, including their asymmetry: `cpuLight` and `cpuIntensive` take
//! `threadPool.size`, while `uber` and `io` take `threadPool.coreSize` and `threadPool.maxSize`.

use super::Strategy;

/// The prefix every key shares.
pub const PREFIX: &str = "org.mule.runtime.scheduler.";

/// `UBER` or `DEDICATED`; required in every file.
pub const STRATEGY: &str = "org.mule.runtime.scheduler.SchedulerPoolStrategy";
/// Milliseconds a graceful shutdown waits for running tasks (default `15000`).
pub const GRACEFUL_SHUTDOWN_TIMEOUT: &str = "org.mule.runtime.scheduler.gracefulShutdownTimeout";

/// UBER: threads kept even when idle (default `cores`).
pub const UBER_CORE_SIZE: &str = "org.mule.runtime.scheduler.uber.threadPool.coreSize";
/// UBER: the most threads (default `max(2, cores + ((mem - 245760) / 5120))`).
pub const UBER_MAX_SIZE: &str = "org.mule.runtime.scheduler.uber.threadPool.maxSize";
/// UBER: tasks that may wait for a thread (default `0`: hand-off).
pub const UBER_QUEUE_SIZE: &str = "org.mule.runtime.scheduler.uber.workQueue.size";
/// UBER: milliseconds an idle thread above the core size lives (default `30000`).
pub const UBER_KEEP_ALIVE: &str = "org.mule.runtime.scheduler.uber.threadPool.threadKeepAlive";

/// DEDICATED: CPU_LIGHT threads (default `2*cores`).
pub const CPU_LIGHT_SIZE: &str = "org.mule.runtime.scheduler.cpuLight.threadPool.size";
/// DEDICATED: CPU_LIGHT queue (default `0`).
pub const CPU_LIGHT_QUEUE_SIZE: &str = "org.mule.runtime.scheduler.cpuLight.workQueue.size";
/// DEDICATED: IO threads kept even when idle (default `cores`).
pub const IO_CORE_SIZE: &str = "org.mule.runtime.scheduler.io.threadPool.coreSize";
/// DEDICATED: the most IO threads (default `max(2, cores + ((mem - 245760) / 5120))`).
pub const IO_MAX_SIZE: &str = "org.mule.runtime.scheduler.io.threadPool.maxSize";
/// DEDICATED: IO queue (default `0`).
pub const IO_QUEUE_SIZE: &str = "org.mule.runtime.scheduler.io.workQueue.size";
/// DEDICATED: milliseconds an idle IO thread above the core size lives (default `30000`).
pub const IO_KEEP_ALIVE: &str = "org.mule.runtime.scheduler.io.threadPool.threadKeepAlive";
/// DEDICATED: CPU_INTENSIVE threads (default `2*cores`).
pub const CPU_INTENSIVE_SIZE: &str = "org.mule.runtime.scheduler.cpuIntensive.threadPool.size";
/// DEDICATED: CPU_INTENSIVE queue (default `2*cores`).
pub const CPU_INTENSIVE_QUEUE_SIZE: &str = "org.mule.runtime.scheduler.cpuIntensive.workQueue.size";

/// The strategy key as the shipped Mule comments and some articles wrongly spell it.
pub const MISDOCUMENTED_STRATEGY: &str = "org.mule.runtime.scheduler.threadPool.strategy";

/// Every valid key with the strategy that reads it (`None`: read under both).
pub const ALL: [(&str, Option<Strategy>); 14] = [
    (STRATEGY, None),
    (GRACEFUL_SHUTDOWN_TIMEOUT, None),
    (UBER_CORE_SIZE, Some(Strategy::Uber)),
    (UBER_MAX_SIZE, Some(Strategy::Uber)),
    (UBER_QUEUE_SIZE, Some(Strategy::Uber)),
    (UBER_KEEP_ALIVE, Some(Strategy::Uber)),
    (CPU_LIGHT_SIZE, Some(Strategy::Dedicated)),
    (CPU_LIGHT_QUEUE_SIZE, Some(Strategy::Dedicated)),
    (IO_CORE_SIZE, Some(Strategy::Dedicated)),
    (IO_MAX_SIZE, Some(Strategy::Dedicated)),
    (IO_QUEUE_SIZE, Some(Strategy::Dedicated)),
    (IO_KEEP_ALIVE, Some(Strategy::Dedicated)),
    (CPU_INTENSIVE_SIZE, Some(Strategy::Dedicated)),
    (CPU_INTENSIVE_QUEUE_SIZE, Some(Strategy::Dedicated)),
];

/// How a key is known: `None` if it is not a valid key, else the strategy that reads it.
pub(crate) fn lookup(key: &str) -> Option<Option<Strategy>> {
    ALL.iter()
        .find(|(name, _)| *name == key)
        .map(|(_, strategy)| *strategy)
}

/// The valid key nearest to an unknown one, if one is near enough to be a likely typo.
///
/// Distances are case-insensitive edit distances, also tried with [`PREFIX`] added when the key
/// lacks it. The misdocumented `...threadPool.strategy` always points at [`STRATEGY`].
pub(crate) fn suggest(key: &str) -> Option<&'static str> {
    if key.eq_ignore_ascii_case(MISDOCUMENTED_STRATEGY) {
        return Some(STRATEGY);
    }
    let lowered = key.to_ascii_lowercase();
    let prefixed = format!("{PREFIX}{lowered}");
    ALL.iter()
        .map(|(name, _)| {
            let name_lowered = name.to_ascii_lowercase();
            let distance =
                edit_distance(&lowered, &name_lowered).min(edit_distance(&prefixed, &name_lowered));
            (distance, *name)
        })
        .filter(|(distance, name)| *distance <= (name.len() - PREFIX.len()) / 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance over characters. Keys longer than 200 characters are never near.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 200 || b.len() > 200 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn typo_is_pointed_at_the_nearest_key() {
        assert_eq!(
            suggest("org.mule.runtime.scheduler.uber.threadPool.corSize"),
            Some(UBER_CORE_SIZE)
        );
        assert_eq!(
            suggest("org.mule.runtime.scheduler.io.threadpool.maxsize"),
            Some(IO_MAX_SIZE)
        );
    }

    #[test]
    fn key_without_prefix_is_pointed_at_the_prefixed_key() {
        assert_eq!(suggest("uber.workQueue.size"), Some(UBER_QUEUE_SIZE));
    }

    #[test]
    fn core_size_spelling_for_cpu_light_points_at_size() {
        assert_eq!(
            suggest("org.mule.runtime.scheduler.cpuLight.threadPool.coreSize"),
            Some(CPU_LIGHT_SIZE)
        );
    }

    #[test]
    fn misdocumented_strategy_key_points_at_the_real_one() {
        assert_eq!(suggest(MISDOCUMENTED_STRATEGY), Some(STRATEGY));
    }

    #[test]
    fn unrelated_key_gets_no_suggestion() {
        assert_eq!(suggest("log4j.rootLogger"), None);
        assert_eq!(suggest(&"x".repeat(5000)), None);
    }
}

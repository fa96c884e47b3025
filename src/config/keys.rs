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
    known(key).map(|(_, strategy)| strategy)
}

/// The valid key equal to `key`, with the strategy that reads it (`None`: both).
pub(crate) fn known(key: &str) -> Option<(&'static str, Option<Strategy>)> {
    ALL.iter().find(|(name, _)| *name == key).copied()
}

/// Keys longer than this (in characters) are never near a valid key and get no suggestion.
const MAX_SUGGESTED_KEY: usize = 200;

/// The valid key nearest to an unknown one, if one is near enough to be a likely typo.
///
/// Distances are case-insensitive edit distances, also tried with [`PREFIX`] added when the key
/// lacks it; a key is near a valid one when at most a third of the valid key's characters after
/// the prefix differ. The misdocumented `...threadPool.strategy` always points at [`STRATEGY`].
/// The work is bounded: no key longer than 200 characters is compared, and each comparison stops
/// as soon as the distance exceeds what could still count as near.
pub(crate) fn suggest(key: &str) -> Option<&'static str> {
    if key.eq_ignore_ascii_case(MISDOCUMENTED_STRATEGY) {
        return Some(STRATEGY);
    }
    if key.chars().count() > MAX_SUGGESTED_KEY {
        return None;
    }
    let lowered: Vec<char> = key.chars().map(|c| c.to_ascii_lowercase()).collect();
    let prefixed: Vec<char> = PREFIX.chars().chain(lowered.iter().copied()).collect();
    let mut rows = Rows::default();
    let mut name_lowered = Vec::new();
    ALL.iter()
        .filter_map(|(name, _)| {
            name_lowered.clear();
            name_lowered.extend(name.chars().map(|c| c.to_ascii_lowercase()));
            let near = (name.len() - PREFIX.len()) / 3;
            let distance = [&lowered, &prefixed]
                .into_iter()
                .filter_map(|candidate| rows.distance_within(candidate, &name_lowered, near))
                .min()?;
            Some((distance, *name))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// The two rows of the edit-distance table, reused from one comparison to the next.
#[derive(Default)]
struct Rows {
    previous: Vec<usize>,
    current: Vec<usize>,
}

impl Rows {
    /// The Levenshtein distance between `a` and `b` if it is at most `bound`, else `None`.
    /// Stops as soon as a whole row of the table exceeds `bound`.
    fn distance_within(&mut self, a: &[char], b: &[char], bound: usize) -> Option<usize> {
        if a.len().abs_diff(b.len()) > bound {
            return None;
        }
        let (previous, current) = (&mut self.previous, &mut self.current);
        previous.clear();
        previous.extend(0..=b.len());
        current.clear();
        current.resize(b.len() + 1, 0);
        for (i, ca) in a.iter().enumerate() {
            current[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let substitution = previous[j] + usize::from(ca != cb);
                current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            }
            if current.iter().all(|&d| d > bound) {
                return None;
            }
            std::mem::swap(previous, current);
        }
        Some(previous[b.len()]).filter(|&d| d <= bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(text: &str) -> Vec<char> {
        text.chars().collect()
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        let mut rows = Rows::default();
        let mut within =
            |a: &str, b: &str, bound| rows.distance_within(&chars(a), &chars(b), bound);
        assert_eq!(within("kitten", "sitting", 10), Some(3));
        assert_eq!(within("", "abc", 10), Some(3));
        assert_eq!(within("same", "same", 0), Some(0));
    }

    #[test]
    fn edit_distance_beyond_the_bound_is_none() {
        let mut rows = Rows::default();
        let mut within =
            |a: &str, b: &str, bound| rows.distance_within(&chars(a), &chars(b), bound);
        assert_eq!(within("kitten", "sitting", 2), None);
        assert_eq!(within("kitten", "sitting", 3), Some(3));
        // Lengths alone rule it out.
        assert_eq!(within("a", "abcdef", 4), None);
        // Every row beyond the bound: stops on the first row.
        assert_eq!(within("zzzzzz", "aaaaaa", 0), None);
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

//! Resolution of one file's entries into a [`PoolsConfig`]: the strategy first, then the
//! graceful shutdown timeout, then the active strategy's keys in Mule's order, stopping at the
//! first refused value. Keys that are not read become warnings (at most
//! [`MAX_LISTED_IGNORED_KEYS`] one by one, then one that counts the rest), so a file of a million
//! unknown keys costs as little as one of a hundred; suggestions are looked for only for the keys
//! listed.

use std::collections::HashMap;
use std::time::Duration;

use super::expr::{self, ExprError};
use super::properties::{self, Property};
use super::{
    BIG_POOL_DEFAULT_SIZE, ConfigError, ConfigWarning, DEFAULT_GRACEFUL_SHUTDOWN_MS,
    DEFAULT_KEEP_ALIVE_MS, InvalidReason, MAX_SIZE_LIMIT, PoolSpec, PoolsConfig, Resources,
    Strategy, WarningKind, default_size, keys,
};

/// The most ignored keys (unknown, of the other strategy, given again) listed one warning each.
pub(super) const MAX_LISTED_IGNORED_KEYS: usize = 32;

/// What a size key sizes, which decides its limits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    /// Threads started when the pool is built: at least 1, at most the thread limit (refused
    /// above it).
    Core,
    /// The most threads, started under load: at least 1; above the thread limit it is lowered
    /// to it with a warning, after resolution.
    Max,
    /// Queued tasks: at least 0.
    Queue,
}

/// Resolves the entries of one file. Memory grows with the distinct keys, not with the entries:
/// a key given a million times is held once.
pub(super) struct Resolver<'a> {
    file: &'a str,
    /// The last entry of each valid key (of either strategy).
    known: HashMap<&'static str, Property>,
    /// The last line of each key that is not valid.
    unknown: HashMap<String, usize>,
    /// The first keys given again, in line order (enough to list them): the later entry's line,
    /// the key and the earlier entry's line.
    duplicates: Vec<(usize, String, usize)>,
    /// Keys given again, in all.
    duplicate_count: usize,
    warnings: Vec<ConfigWarning>,
    resources: &'a Resources,
}

/// Keeps a key given again if it may be listed: only the first ones, in line order, can be.
fn record_duplicate(
    duplicates: &mut Vec<(usize, String, usize)>,
    line: usize,
    key: &str,
    first_line: usize,
) {
    if duplicates.len() <= MAX_LISTED_IGNORED_KEYS {
        duplicates.push((line, key.to_owned(), first_line));
    }
}

impl<'a> Resolver<'a> {
    pub(super) fn new(
        text: &str,
        file: &'a str,
        resources: &'a Resources,
    ) -> Result<Self, ConfigError> {
        let mut known: HashMap<&'static str, Property> = HashMap::new();
        let mut unknown: HashMap<String, usize> = HashMap::new();
        let mut duplicates = Vec::new();
        let mut duplicate_count = 0;
        properties::for_each_entry(text, |property| {
            let line = property.line;
            if let Some((name, _)) = keys::known(&property.key) {
                if let Some(earlier) = known.insert(name, property) {
                    duplicate_count += 1;
                    record_duplicate(&mut duplicates, line, name, earlier.line);
                }
            } else if let Some(last_line) = unknown.get_mut(&property.key) {
                let earlier = std::mem::replace(last_line, line);
                duplicate_count += 1;
                record_duplicate(&mut duplicates, line, &property.key, earlier);
            } else {
                unknown.insert(property.key, line);
            }
        })
        .map_err(|e| ConfigError::Syntax {
            file: file.to_owned(),
            line: e.line,
            found: e.found,
        })?;
        Ok(Resolver {
            file,
            known,
            unknown,
            duplicates,
            duplicate_count,
            warnings: Vec::new(),
            resources,
        })
    }

    pub(super) fn resolve(mut self) -> Result<PoolsConfig, ConfigError> {
        let strategy = self.strategy()?;
        self.warn_about_ignored_keys(strategy);
        let mut config = PoolsConfig::unchecked_defaults(self.resources);
        config.strategy = strategy;
        config.graceful_shutdown_timeout = self.millis(
            keys::GRACEFUL_SHUTDOWN_TIMEOUT,
            DEFAULT_GRACEFUL_SHUTDOWN_MS,
        )?;
        match strategy {
            Strategy::Uber => {
                config.uber = self.elastic_pool(
                    [
                        keys::UBER_CORE_SIZE,
                        keys::UBER_MAX_SIZE,
                        keys::UBER_QUEUE_SIZE,
                    ],
                    keys::UBER_KEEP_ALIVE,
                )?;
            }
            Strategy::Dedicated => {
                let size = self.size(keys::CPU_LIGHT_SIZE, "2*cores", Size::Core)?;
                config.cpu_light = PoolSpec {
                    core_size: size,
                    max_size: size,
                    queue_size: self.size(keys::CPU_LIGHT_QUEUE_SIZE, "0", Size::Queue)?,
                    keep_alive: Duration::ZERO,
                };
                config.io = self.elastic_pool(
                    [keys::IO_CORE_SIZE, keys::IO_MAX_SIZE, keys::IO_QUEUE_SIZE],
                    keys::IO_KEEP_ALIVE,
                )?;
                let size = self.size(keys::CPU_INTENSIVE_SIZE, "2*cores", Size::Core)?;
                config.cpu_intensive = PoolSpec {
                    core_size: size,
                    max_size: size,
                    queue_size: self.size(
                        keys::CPU_INTENSIVE_QUEUE_SIZE,
                        "2*cores",
                        Size::Queue,
                    )?,
                    keep_alive: Duration::ZERO,
                };
            }
        }
        config.warnings = std::mem::take(&mut self.warnings);
        let line_of = |key: &str| self.known.get(key).map(|p| p.line);
        config.cap_threads(self.resources.max_threads, Some(self.file), &line_of);
        let max_key = match strategy {
            Strategy::Uber => keys::UBER_MAX_SIZE,
            Strategy::Dedicated => keys::IO_MAX_SIZE,
        };
        let max_line = self.known.get(max_key).map(|p| p.line);
        config.raise_max_to_core(strategy, Some(self.file), max_line);
        // The inactive strategy keeps its defaults, adjusted silently: nothing in the file
        // asked for them.
        let inactive = match strategy {
            Strategy::Uber => &mut config.io,
            Strategy::Dedicated => &mut config.uber,
        };
        inactive.max_size = inactive.max_size.max(inactive.core_size);
        Ok(config)
    }

    fn strategy(&self) -> Result<Strategy, ConfigError> {
        let Some(entry) = self.known.get(keys::STRATEGY) else {
            return Err(ConfigError::MissingStrategy {
                file: self.file.to_owned(),
            });
        };
        entry
            .value
            .parse::<Strategy>()
            .map_err(|e| ConfigError::UnknownStrategy {
                file: self.file.to_owned(),
                line: entry.line,
                key: keys::STRATEGY.to_owned(),
                value: e.0,
            })
    }

    /// Warns about the keys that are not read and the keys given again, in line order: the
    /// first [`MAX_LISTED_IGNORED_KEYS`] one by one (unknown keys with a suggestion), then one
    /// warning that counts the rest.
    fn warn_about_ignored_keys(&mut self, active: Strategy) {
        /// Why a line's key is ignored.
        enum Ignored<'k> {
            Unknown(&'k str),
            OtherStrategy(&'k str, Strategy),
            Again(&'k str, usize),
        }
        let other_strategy = self
            .known
            .values()
            .filter_map(|p| match keys::lookup(&p.key) {
                Some(Some(read_under)) if read_under != active => {
                    Some((p.line, Ignored::OtherStrategy(&p.key, read_under)))
                }
                _ => None,
            });
        let unknown = self
            .unknown
            .iter()
            .map(|(key, line)| (*line, Ignored::Unknown(key)));
        // Only the first duplicates were kept; they are the only ones that can be listed.
        let again = self
            .duplicates
            .iter()
            .map(|(line, key, first_line)| (*line, Ignored::Again(key, *first_line)));
        let mut ignored: Vec<(usize, Ignored<'_>)> =
            other_strategy.chain(unknown).chain(again).collect();
        let total = ignored.len() - self.duplicates.len() + self.duplicate_count;
        if ignored.len() > MAX_LISTED_IGNORED_KEYS + 1 {
            ignored.select_nth_unstable_by_key(MAX_LISTED_IGNORED_KEYS, |(line, _)| *line);
            ignored.truncate(MAX_LISTED_IGNORED_KEYS + 1);
        }
        ignored.sort_by_key(|(line, _)| *line);
        let mut warnings = Vec::with_capacity(ignored.len());
        for (index, (line, why)) in ignored.into_iter().enumerate() {
            let (key, kind) = match why {
                // One more key is listed rather than counted.
                Ignored::Unknown(key) | Ignored::OtherStrategy(key, _) | Ignored::Again(key, _)
                    if index == MAX_LISTED_IGNORED_KEYS && total > MAX_LISTED_IGNORED_KEYS + 1 =>
                {
                    let count = total - MAX_LISTED_IGNORED_KEYS;
                    (key, WarningKind::MoreIgnoredKeys { count })
                }
                Ignored::Unknown(key) => {
                    let suggestion = keys::suggest(key).map(str::to_owned);
                    (key, WarningKind::UnknownKey { suggestion })
                }
                Ignored::OtherStrategy(key, read_under) => {
                    (key, WarningKind::OtherStrategyKey { read_under, active })
                }
                Ignored::Again(key, first_line) => (key, WarningKind::DuplicateKey { first_line }),
            };
            let warning = ConfigWarning {
                file: Some(self.file.to_owned()),
                line: Some(line),
                key: key.to_owned(),
                kind,
            };
            tracing::warn!("{warning}");
            warnings.push(warning);
        }
        self.warnings = warnings;
    }

    fn elastic_pool(
        &self,
        [core, max, queue]: [&str; 3],
        keep_alive: &str,
    ) -> Result<PoolSpec, ConfigError> {
        Ok(PoolSpec {
            core_size: self.size(core, "cores", Size::Core)?,
            max_size: self.size(max, BIG_POOL_DEFAULT_SIZE, Size::Max)?,
            queue_size: self.size(queue, "0", Size::Queue)?,
            keep_alive: self.millis(keep_alive, DEFAULT_KEEP_ALIVE_MS)?,
        })
    }

    fn invalid(&self, entry: &Property, reason: InvalidReason) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_owned(),
            line: entry.line,
            key: entry.key.clone(),
            value: entry.value.clone(),
            reason,
        }
    }

    /// A size key: an expression, truncated toward zero once. A default is capped later, with
    /// the maxima (see [`PoolsConfig::cap_threads`]).
    fn size(&self, key: &str, default: &str, size: Size) -> Result<usize, ConfigError> {
        let zero_allowed = size == Size::Queue;
        let Some(entry) = self.known.get(key) else {
            tracing::debug!("No property '{key}' found in config file. Using default value.");
            return Ok(default_size(
                default,
                &Resources::new(self.resources.cores.max(1), self.resources.mem_kib),
            ));
        };
        let value = expr::evaluate(&entry.value, self.resources)
            .map_err(|e: ExprError| self.invalid(entry, InvalidReason::Expression(Box::new(e))))?;
        let truncated = value.trunc();
        if truncated < 0.0 || (truncated == 0.0 && !zero_allowed) {
            let reason = if zero_allowed {
                InvalidReason::Negative
            } else {
                InvalidReason::NotPositive
            };
            return Err(self.invalid(entry, reason));
        }
        if truncated > MAX_SIZE_LIMIT as f64 {
            let reason = InvalidReason::TooLarge {
                result: value,
                limit: MAX_SIZE_LIMIT as u64,
            };
            return Err(self.invalid(entry, reason));
        }
        let limit = self.resources.max_threads;
        if size == Size::Core && truncated > limit as f64 {
            let reason = InvalidReason::TooManyThreads {
                requested: truncated as u64,
                limit,
            };
            return Err(self.invalid(entry, reason));
        }
        Ok(truncated as usize)
    }

    /// A millisecond key: an integer, at least 0.
    fn millis(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        let Some(entry) = self.known.get(key) else {
            tracing::debug!("No property '{key}' found in config file. Using default value.");
            return Ok(Duration::from_millis(default));
        };
        let text = entry.value.trim();
        let millis = text.parse::<i64>().map_err(|_| {
            self.invalid(
                entry,
                InvalidReason::NotAnInteger {
                    input: text.to_owned(),
                },
            )
        })?;
        let millis =
            u64::try_from(millis).map_err(|_| self.invalid(entry, InvalidReason::Negative))?;
        Ok(Duration::from_millis(millis))
    }
}

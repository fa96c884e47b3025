//! Resolution of one file's entries into a [`PoolsConfig`]: the strategy first, then the
//! graceful shutdown timeout, then the active strategy's keys in Mule's order, stopping at the
//! first refused value. Keys that are not read become warnings.

use std::collections::HashMap;
use std::time::Duration;

use super::expr::{self, ExprError};
use super::properties::{self, Property};
use super::{
    BIG_POOL_DEFAULT_SIZE, ConfigError, ConfigWarning, DEFAULT_GRACEFUL_SHUTDOWN_MS,
    DEFAULT_KEEP_ALIVE_MS, InvalidReason, MAX_SIZE_LIMIT, PoolSpec, PoolsConfig, Resources,
    Strategy, WarningKind, default_size, keys,
};

/// Resolves the entries of one file.
pub(super) struct Resolver<'a> {
    file: &'a str,
    /// The last entry of each key, by key.
    entries: HashMap<String, Property>,
    warnings: Vec<ConfigWarning>,
    resources: &'a Resources,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(
        text: &str,
        file: &'a str,
        resources: &'a Resources,
    ) -> Result<Self, ConfigError> {
        let parsed = properties::parse(text).map_err(|e| ConfigError::Syntax {
            file: file.to_owned(),
            line: e.line,
            found: e.found,
        })?;
        let mut entries = HashMap::new();
        let mut warnings = Vec::new();
        for property in parsed {
            if let Some(earlier) = entries.get(&property.key) {
                let earlier: &Property = earlier;
                warnings.push(ConfigWarning {
                    file: Some(file.to_owned()),
                    line: Some(property.line),
                    key: property.key.clone(),
                    kind: WarningKind::DuplicateKey {
                        first_line: earlier.line,
                    },
                });
            }
            entries.insert(property.key.clone(), property);
        }
        Ok(Resolver {
            file,
            entries,
            warnings,
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
                let size = self.size(keys::CPU_LIGHT_SIZE, "2*cores", false)?;
                config.cpu_light = PoolSpec {
                    core_size: size,
                    max_size: size,
                    queue_size: self.size(keys::CPU_LIGHT_QUEUE_SIZE, "0", true)?,
                    keep_alive: Duration::ZERO,
                };
                config.io = self.elastic_pool(
                    [keys::IO_CORE_SIZE, keys::IO_MAX_SIZE, keys::IO_QUEUE_SIZE],
                    keys::IO_KEEP_ALIVE,
                )?;
                let size = self.size(keys::CPU_INTENSIVE_SIZE, "2*cores", false)?;
                config.cpu_intensive = PoolSpec {
                    core_size: size,
                    max_size: size,
                    queue_size: self.size(keys::CPU_INTENSIVE_QUEUE_SIZE, "2*cores", true)?,
                    keep_alive: Duration::ZERO,
                };
            }
        }
        config.warnings = std::mem::take(&mut self.warnings);
        let max_key = match strategy {
            Strategy::Uber => keys::UBER_MAX_SIZE,
            Strategy::Dedicated => keys::IO_MAX_SIZE,
        };
        let max_line = self.entries.get(max_key).map(|p| p.line);
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
        let Some(entry) = self.entries.get(keys::STRATEGY) else {
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

    fn warn_about_ignored_keys(&mut self, active: Strategy) {
        let mut ignored: Vec<&Property> = self
            .entries
            .values()
            .filter(|p| keys::lookup(&p.key).is_none_or(|s| s.is_some_and(|s| s != active)))
            .collect();
        ignored.sort_by_key(|p| p.line);
        for property in ignored {
            let kind = match keys::lookup(&property.key) {
                Some(Some(read_under)) => WarningKind::OtherStrategyKey { read_under, active },
                _ => WarningKind::UnknownKey {
                    suggestion: keys::suggest(&property.key).map(str::to_owned),
                },
            };
            let warning = ConfigWarning {
                file: Some(self.file.to_owned()),
                line: Some(property.line),
                key: property.key.clone(),
                kind,
            };
            tracing::warn!("{warning}");
            self.warnings.push(warning);
        }
        self.warnings.sort_by_key(|w| w.line);
    }

    fn elastic_pool(
        &self,
        [core, max, queue]: [&str; 3],
        keep_alive: &str,
    ) -> Result<PoolSpec, ConfigError> {
        Ok(PoolSpec {
            core_size: self.size(core, "cores", false)?,
            max_size: self.size(max, BIG_POOL_DEFAULT_SIZE, false)?,
            queue_size: self.size(queue, "0", true)?,
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

    /// A size key: an expression, truncated toward zero once.
    fn size(&self, key: &str, default: &str, zero_allowed: bool) -> Result<usize, ConfigError> {
        let Some(entry) = self.entries.get(key) else {
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
        Ok(truncated as usize)
    }

    /// A millisecond key: an integer, at least 0.
    fn millis(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        let Some(entry) = self.entries.get(key) else {
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

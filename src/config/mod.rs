//! Configuration: which strategy runs the pools and how big they are, read from a
//! `scheduler-pools.conf` file in Mule 4's format.
//!
//! [`PoolsConfig`] is the resolved configuration; [`Resources`] holds the `cores` and `mem` that
//! sizing expressions see. The pieces live beside this file: `properties.rs` reads the file with
//! line numbers, `expr/` parses (once) and evaluates expressions, `keys.rs` names the keys,
//! `resolve.rs` turns entries into values, `error.rs` holds [`ConfigError`] and
//! [`ConfigWarning`], `render.rs` prints the resolved values and `resources.rs` detects the
//! machine. Building pools from a [`PoolsConfig`] is the service's
//! business, not this module's.
//!
//! # The file
//!
//! Keys, defaults, expressions and messages follow Mule 4's `scheduler-pools.conf`, so existing
//! files resolve to the same numbers. The differences, all deliberate:
//!
//! - every error names the file and line (`scheduler-pools.conf:7: <key>: <reason>`);
//! - unknown keys, the other strategy's keys and duplicated keys are [`ConfigWarning`]s (with the
//!   nearest valid key), not silence;
//! - `max(a, b)` and `min(a, b)` may nest anywhere; NaN, infinite and empty values, and sizes
//!   above `i32::MAX`, are errors;
//! - sizes beyond what the machine can give ([`Resources::max_threads`], at most 32,767 threads
//!   per pool): a core size (or the fixed size of the CPU_LIGHT and CPU_INTENSIVE pools), whose
//!   threads all start when the pool is built, is refused with an error naming file, line and key;
//!   a maximum size, reached only under load, is lowered to the limit with a
//!   [`WarningKind::SizeCapped`] warning, because Mule's own default maximum exceeds the limit
//!   on machines with more than about 160 GiB of memory;
//! - millisecond values may carry surrounding whitespace;
//! - a file that is not valid UTF-8 is read as ISO-8859-1, as Java reads `.properties` files, so
//!   a Latin-1 comment does no harm (a UTF-8 byte-order mark is skipped);
//! - a file larger than [`MAX_CONF_BYTES`] (1 MiB) is refused without reading further;
//! - at most 32 ignored keys (unknown, of the other strategy, given twice) are listed one by one,
//!   with a suggestion for each unknown one; one more warning counts the rest.
//!
//! See the repository's `scheduler-pools.conf` for every key with its unit, default and meaning.
//!
//! # Finding the file
//!
//! [`PoolsConfig::discover`]: an explicit path, else the file named by the `UBERPOOL_CONF`
//! environment variable, else the built-in defaults. A path that is given but cannot be read is
//! an error; no path at all means the defaults.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

mod error;
mod expr;
mod keys;
mod properties;
mod render;
mod resolve;
mod resources;

pub use error::{ConfigError, ConfigWarning, InvalidReason, WarningKind};
pub use expr::{ExprError, MAX_DEPTH, MAX_TOKENS};
pub use resources::Resources;

use resolve::Resolver;

/// The environment variable naming the configuration file when no explicit path is given.
pub const CONF_ENV: &str = "UBERPOOL_CONF";

/// The largest size an expression may give: `i32::MAX`, the largest value Mule can hold. Queue
/// sizes may reach it; thread counts are limited further by [`Resources::max_threads`].
pub const MAX_SIZE_LIMIT: usize = i32::MAX as usize;

/// The largest configuration file (or text) read: 1 MiB. A `scheduler-pools.conf` holds a few
/// kilobytes; anything larger is refused with [`ConfigError::FileTooLarge`] before it is parsed,
/// and [`PoolsConfig::load`] reads no further than this.
pub const MAX_CONF_BYTES: usize = 1 << 20;

/// The name used in messages for text given to [`PoolsConfig::parse`].
const TEXT_NAME: &str = "<string>";

/// The default of `uber.threadPool.maxSize` and `io.threadPool.maxSize`: `cores` plus one thread
/// per 5 MiB of memory above 240 MiB, never below 2.
pub const BIG_POOL_DEFAULT_SIZE: &str = "max(2, cores + ((mem - 245760) / 5120))";

const DEFAULT_GRACEFUL_SHUTDOWN_MS: u64 = 15_000;
const DEFAULT_KEEP_ALIVE_MS: u64 = 30_000;

/// How the pools are laid out.
///
/// `Display` writes Mule's names (`UBER`, `DEDICATED`); `FromStr` is case-insensitive.
///
/// ```
/// use uberpool::Strategy;
///
/// assert_eq!("dedicated".parse::<Strategy>(), Ok(Strategy::Dedicated));
/// assert_eq!(Strategy::Uber.to_string(), "UBER");
/// assert!("shared".parse::<Strategy>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// One elastic pool serves every task class (Mule's default since 4.3).
    #[default]
    Uber,
    /// One pool per task class: CPU_LIGHT, IO and CPU_INTENSIVE.
    Dedicated,
}

impl Strategy {
    /// Mule's name: `"UBER"` or `"DEDICATED"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::Uber => "UBER",
            Strategy::Dedicated => "DEDICATED",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Strategy`]; its `Display` is Mule's message, with the text
/// trimmed and lowercased as Mule reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("There's no SchedulerPoolStrategy named '{0}'")]
pub struct ParseStrategyError(pub String);

impl FromStr for Strategy {
    type Err = ParseStrategyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lowered = text.trim().to_lowercase();
        match lowered.as_str() {
            "uber" => Ok(Strategy::Uber),
            "dedicated" => Ok(Strategy::Dedicated),
            _ => Err(ParseStrategyError(lowered)),
        }
    }
}

/// The sizing of one pool, with Java `ThreadPoolExecutor` meanings.
///
/// `core_size` threads start with the pool and never retire; the pool grows up to `max_size`;
/// `queue_size` tasks may wait for a thread (`0`: hand-off, a task starts a thread or is
/// rejected); threads above the core size retire after `keep_alive` idle.
///
/// For the fixed-size CPU_LIGHT and CPU_INTENSIVE pools, `core_size == max_size` (Mule's
/// `threadPool.size`) and `keep_alive` is zero: no thread ever exceeds the core size, so there is
/// nothing to keep alive, and zero says so instead of borrowing the IO value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolSpec {
    /// Threads started with the pool and never retired.
    pub core_size: usize,
    /// The most threads; never below `core_size` in a resolved configuration.
    pub max_size: usize,
    /// Tasks that may wait for a thread; `0` is a hand-off.
    pub queue_size: usize,
    /// How long a thread above `core_size` may stay idle before it retires.
    pub keep_alive: Duration,
}

/// Where a [`PoolsConfig`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// The built-in defaults: no file was named.
    Defaults,
    /// Text given to [`PoolsConfig::parse`] or [`PoolsConfig::parse_named`], under that name.
    Text(String),
    /// A file.
    File(PathBuf),
}

/// The resolved scheduler configuration: the strategy, the graceful shutdown timeout and the four
/// pool sizings.
///
/// All four specs are always filled: those of the inactive strategy hold their defaults, so the
/// service can read any of them. Resolution never leaves `max_size < core_size`: such a maximum is
/// raised to the core size and reported in [`warnings`](PoolsConfig::warnings).
///
/// A value is made by [`defaults`](PoolsConfig::defaults), [`parse`](PoolsConfig::parse),
/// [`load`](PoolsConfig::load) or [`discover`](PoolsConfig::discover); code that sizes pools
/// itself starts from the defaults and sets the public fields (the warnings and the source stay
/// those of the value it started from).
///
/// ```
/// use std::time::Duration;
/// use uberpool::{PoolsConfig, Resources, Strategy};
///
/// let res = Resources::new(4, 1_048_576);
/// let config = PoolsConfig::parse(
///     "org.mule.runtime.scheduler.SchedulerPoolStrategy = DEDICATED\n\
///      org.mule.runtime.scheduler.io.threadPool.maxSize = max(8, cores * 4)\n",
///     &res,
/// )?;
/// assert_eq!(config.strategy, Strategy::Dedicated);
/// assert_eq!(config.io.max_size, 16);
/// assert_eq!(config.cpu_light.core_size, 8);
/// assert_eq!(config.graceful_shutdown_timeout, Duration::from_millis(15_000));
/// # Ok::<(), uberpool::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct PoolsConfig {
    /// The active strategy.
    pub strategy: Strategy,
    /// How long a graceful shutdown waits for running and queued tasks.
    pub graceful_shutdown_timeout: Duration,
    /// The single pool of [`Strategy::Uber`].
    pub uber: PoolSpec,
    /// The CPU_LIGHT pool of [`Strategy::Dedicated`].
    pub cpu_light: PoolSpec,
    /// The IO pool of [`Strategy::Dedicated`].
    pub io: PoolSpec,
    /// The CPU_INTENSIVE pool of [`Strategy::Dedicated`].
    pub cpu_intensive: PoolSpec,
    warnings: Vec<ConfigWarning>,
    source: ConfigSource,
}

impl PoolsConfig {
    /// Mule's built-in defaults (UBER), what runs when no file is given.
    ///
    /// | pool | core | max | queue | keep-alive |
    /// |---|---|---|---|---|
    /// | uber | `cores` | [`BIG_POOL_DEFAULT_SIZE`] | 0 | 30 s |
    /// | cpuLight | `2*cores` | `2*cores` | 0 | 0 |
    /// | io | `cores` | [`BIG_POOL_DEFAULT_SIZE`] | 0 | 30 s |
    /// | cpuIntensive | `2*cores` | `2*cores` | `2*cores` | 0 |
    ///
    /// The graceful shutdown timeout is 15 s. The defaults are evaluated by the same
    /// floating-point rules as file expressions, so a file spelling them out resolves to exactly
    /// these values. `cores == 0` is treated as 1 here so that the defaults always describe
    /// usable pools. A thread count above [`Resources::max_threads`] (a maximum on a machine with
    /// a lot of memory) is lowered to it, with a [`WarningKind::SizeCapped`] warning for the
    /// UBER pool; queue sizes are capped at [`MAX_SIZE_LIMIT`]. When the memory is small enough
    /// that the default maximum falls below the core size, the maximum is raised to the core
    /// size and a warning is recorded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::{PoolsConfig, Resources, Strategy};
    ///
    /// let config = PoolsConfig::defaults(&Resources::new(4, 1_048_576));
    /// assert_eq!(config.strategy, Strategy::Uber);
    /// assert_eq!((config.uber.core_size, config.uber.max_size, config.uber.queue_size), (4, 160, 0));
    /// assert_eq!(config.uber.keep_alive, Duration::from_secs(30));
    /// assert_eq!(config.cpu_intensive.queue_size, 8);
    /// assert!(config.warnings().is_empty());
    /// ```
    pub fn defaults(resources: &Resources) -> Self {
        let mut config = Self::unchecked_defaults(resources);
        config.cap_threads(resources.max_threads, None, &|_| None);
        config.raise_max_to_core(Strategy::Uber, None, None);
        // DEDICATED is inactive: its IO maximum is adjusted without a warning.
        config.io.max_size = config.io.max_size.max(config.io.core_size);
        config
    }

    /// Resolves the text of a `scheduler-pools.conf`; messages name it `<string>`.
    ///
    /// ```
    /// use uberpool::{PoolsConfig, Resources, Strategy};
    ///
    /// let res = Resources::new(4, 1_048_576);
    /// let config = PoolsConfig::parse(
    ///     "org.mule.runtime.scheduler.SchedulerPoolStrategy=uber\n\
    ///      org.mule.runtime.scheduler.uber.threadPool.coreSize = MAX(2, CORES / 2)\n\
    ///      org.mule.runtime.scheduler.uber.workQueue.size = 0.5 * cores\n",
    ///     &res,
    /// )?;
    /// assert_eq!(config.strategy, Strategy::Uber);
    /// assert_eq!(config.uber.core_size, 2);
    /// assert_eq!(config.uber.queue_size, 2);
    /// assert_eq!(config.uber.max_size, 160);
    ///
    /// let err = PoolsConfig::parse(
    ///     "org.mule.runtime.scheduler.SchedulerPoolStrategy=UBER\n\
    ///      org.mule.runtime.scheduler.uber.threadPool.coreSize=cores - (cores+1)\n",
    ///     &res,
    /// )
    /// .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "<string>:2: org.mule.runtime.scheduler.uber.threadPool.coreSize: Value has to be greater than 0"
    /// );
    /// assert_eq!(err.line(), Some(2));
    /// # Ok::<(), uberpool::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the line and key of the first value refused, or the missing
    /// strategy key; [`ConfigError::FileTooLarge`] for a text longer than [`MAX_CONF_BYTES`].
    pub fn parse(text: &str, resources: &Resources) -> Result<Self, ConfigError> {
        Self::parse_named(text, TEXT_NAME, resources)
    }

    /// Like [`parse`](PoolsConfig::parse), with `file_name` used in messages.
    ///
    /// # Errors
    ///
    /// As [`parse`](PoolsConfig::parse).
    pub fn parse_named(
        text: &str,
        file_name: &str,
        resources: &Resources,
    ) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONF_BYTES {
            return Err(ConfigError::FileTooLarge {
                file: file_name.to_owned(),
                limit: MAX_CONF_BYTES,
            });
        }
        let mut config = Resolver::new(text, file_name, resources)?.resolve()?;
        config.source = ConfigSource::Text(file_name.to_owned());
        Ok(config)
    }

    /// Reads and resolves the file at `path`; messages name the path as given.
    ///
    /// The file is read as UTF-8 when it is valid UTF-8, else as ISO-8859-1 (Java's encoding
    /// for `.properties` files), so every byte sequence reads. At most [`MAX_CONF_BYTES`] + 1
    /// bytes are read, so `/dev/zero` or a huge file fails at once.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] when the file cannot be read (including when it does not exist),
    /// [`ConfigError::FileTooLarge`] when it holds more than [`MAX_CONF_BYTES`], else as
    /// [`parse`](PoolsConfig::parse).
    pub fn load(path: impl AsRef<Path>, resources: &Resources) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = read_conf(path, &name)?;
        let mut config = Resolver::new(&text, &name, resources)?.resolve()?;
        config.source = ConfigSource::File(path.to_owned());
        Ok(config)
    }

    /// Finds and resolves the configuration: `explicit` if given, else the file named by the
    /// `UBERPOOL_CONF` environment variable (if set and not empty), else the built-in
    /// [`defaults`](PoolsConfig::defaults).
    ///
    /// # Errors
    ///
    /// As [`load`](PoolsConfig::load) for the file chosen; a named file that does not exist is an
    /// error, since the user asked for it.
    pub fn discover(explicit: Option<&Path>, resources: &Resources) -> Result<Self, ConfigError> {
        discover_from(explicit, std::env::var_os(CONF_ENV).as_deref(), resources)
    }

    /// What the user should look at: unknown keys (with the nearest valid key), keys of the
    /// inactive strategy, duplicated keys (at most 32 of these listed, then one warning counting
    /// the rest), maxima raised to the core size, thread counts lowered to the machine's limit.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Where this configuration came from.
    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// The defaults without the `max >= core` adjustment.
    fn unchecked_defaults(resources: &Resources) -> Self {
        let res = Resources::new(resources.cores.max(1), resources.mem_kib);
        let size = |expression: &str| default_size(expression, &res);
        let keep_alive = Duration::from_millis(DEFAULT_KEEP_ALIVE_MS);
        let big = size(BIG_POOL_DEFAULT_SIZE);
        PoolsConfig {
            strategy: Strategy::Uber,
            graceful_shutdown_timeout: Duration::from_millis(DEFAULT_GRACEFUL_SHUTDOWN_MS),
            uber: PoolSpec {
                core_size: size("cores"),
                max_size: big,
                queue_size: 0,
                keep_alive,
            },
            cpu_light: PoolSpec {
                core_size: size("2*cores"),
                max_size: size("2*cores"),
                queue_size: 0,
                keep_alive: Duration::ZERO,
            },
            io: PoolSpec {
                core_size: size("cores"),
                max_size: big,
                queue_size: 0,
                keep_alive,
            },
            cpu_intensive: PoolSpec {
                core_size: size("2*cores"),
                max_size: size("2*cores"),
                queue_size: size("2*cores"),
                keep_alive: Duration::ZERO,
            },
            warnings: Vec::new(),
            source: ConfigSource::Defaults,
        }
    }

    /// Lowers every thread count above `limit` to it: with a [`WarningKind::SizeCapped`] warning
    /// (naming `file` and the key's line from `line_of`) for the active strategy's pools,
    /// silently for the others. A core size from a file never gets here: the resolver refuses it.
    fn cap_threads(
        &mut self,
        limit: usize,
        file: Option<&str>,
        line_of: &dyn Fn(&str) -> Option<usize>,
    ) {
        let active: [(&mut PoolSpec, &str, &str); 4] = [
            (&mut self.uber, keys::UBER_CORE_SIZE, keys::UBER_MAX_SIZE),
            (
                &mut self.cpu_light,
                keys::CPU_LIGHT_SIZE,
                keys::CPU_LIGHT_SIZE,
            ),
            (&mut self.io, keys::IO_CORE_SIZE, keys::IO_MAX_SIZE),
            (
                &mut self.cpu_intensive,
                keys::CPU_INTENSIVE_SIZE,
                keys::CPU_INTENSIVE_SIZE,
            ),
        ];
        for (spec, core_key, max_key) in active {
            let read = keys::lookup(max_key).flatten() == Some(self.strategy);
            for (size, key) in [
                (&mut spec.core_size, core_key),
                (&mut spec.max_size, max_key),
            ] {
                if *size <= limit {
                    continue;
                }
                let requested = std::mem::replace(size, limit);
                let repeated = self
                    .warnings
                    .iter()
                    .any(|w| w.key == key && matches!(w.kind, WarningKind::SizeCapped { .. }));
                if read && !repeated {
                    let warning = ConfigWarning {
                        file: file.map(str::to_owned),
                        line: line_of(key),
                        key: key.to_owned(),
                        kind: WarningKind::SizeCapped { requested, limit },
                    };
                    tracing::warn!("{warning}");
                    self.warnings.push(warning);
                }
            }
        }
    }

    /// Raises the elastic pool's maximum of `strategy` to its core size, with a warning.
    fn raise_max_to_core(&mut self, strategy: Strategy, file: Option<&str>, line: Option<usize>) {
        let (spec, key) = match strategy {
            Strategy::Uber => (&mut self.uber, keys::UBER_MAX_SIZE),
            Strategy::Dedicated => (&mut self.io, keys::IO_MAX_SIZE),
        };
        if spec.max_size < spec.core_size {
            let warning = ConfigWarning {
                file: file.map(str::to_owned),
                line,
                key: key.to_owned(),
                kind: WarningKind::MaxRaisedToCore {
                    max: spec.max_size,
                    core: spec.core_size,
                },
            };
            tracing::warn!("{warning}");
            spec.max_size = spec.core_size;
            self.warnings.push(warning);
        }
    }
}

/// [`PoolsConfig::discover`] with the environment variable's value passed in.
fn discover_from(
    explicit: Option<&Path>,
    env_value: Option<&OsStr>,
    resources: &Resources,
) -> Result<PoolsConfig, ConfigError> {
    let named = explicit.or_else(|| env_value.filter(|v| !v.is_empty()).map(Path::new));
    match named {
        Some(path) => PoolsConfig::load(path, resources),
        None => {
            tracing::info!("no scheduler pools configuration file named; using the defaults");
            Ok(PoolsConfig::defaults(resources))
        }
    }
}

/// Reads at most [`MAX_CONF_BYTES`] + 1 bytes of `path`: UTF-8 if valid, else ISO-8859-1.
fn read_conf(path: &Path, name: &str) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let io_error = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONF_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() > MAX_CONF_BYTES {
        return Err(ConfigError::FileTooLarge {
            file: name.to_owned(),
            limit: MAX_CONF_BYTES,
        });
    }
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        // ISO-8859-1: every byte is the code point of the same value.
        Err(not_utf8) => not_utf8.into_bytes().into_iter().map(char::from).collect(),
    })
}

/// Evaluates a built-in default: truncated, at least 0, at most [`MAX_SIZE_LIMIT`].
fn default_size(expression: &str, resources: &Resources) -> usize {
    match expr::evaluate(expression, resources) {
        Ok(value) => value.trunc().clamp(0.0, MAX_SIZE_LIMIT as f64) as usize,
        // Unreachable with the constant expressions above and finite resources; the cap keeps
        // `defaults` infallible all the same.
        Err(_) => MAX_SIZE_LIMIT,
    }
}

// Not under Miri: proptest reads the working directory for its failure file, and the cases are
// safe string code that Miri would take minutes over.
#[cfg(all(test, not(loom), not(miri)))]
mod proptests;
#[cfg(test)]
mod tests;

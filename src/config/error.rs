//! [`ConfigError`] (a configuration that cannot be used) and [`ConfigWarning`] (one that can,
//! but probably not as its author meant).
//!
//! Messages follow Mule's wording, prefixed with `file:line:` and the full key, so that
//! `scheduler-pools.conf:7: org.mule.runtime.scheduler.uber.threadPool.coreSize: Value has to be
//! greater than 0` tells the user exactly what to fix.
//!
//! [`ConfigError::file`] and [`ConfigWarning::file`] both give `Option<&str>`: the file (or the
//! name given to parsed text) as messages write it, `None` where there is none — a warning about
//! the built-in defaults, or an unreadable path that is not valid Unicode.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::Strategy;
use super::expr::ExprError;
use super::keys;

/// A configuration that cannot be used. Nothing is resolved when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory).
    #[error("cannot read '{}': {source}", path.display())]
    #[non_exhaustive]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file (or text) is larger than [`MAX_CONF_BYTES`](super::MAX_CONF_BYTES): probably not a configuration file
    /// (`/dev/zero`, a log). Nothing beyond the limit is read.
    #[error(
        "{file}: larger than {limit} bytes, the most a scheduler-pools.conf may hold; is it the right file?"
    )]
    #[non_exhaustive]
    FileTooLarge {
        /// The file as named in messages (or `<string>` for parsed text).
        file: String,
        /// The limit, [`MAX_CONF_BYTES`](super::MAX_CONF_BYTES).
        limit: usize,
    },
    /// A `\u` escape without four hexadecimal digits.
    #[error("{file}:{line}: Malformed \\uxxxx encoding ('\\u{found}')")]
    #[non_exhaustive]
    Syntax {
        /// The file (or `<string>` for parsed text).
        file: String,
        /// The 1-based line.
        line: usize,
        /// What followed `\u`.
        found: String,
    },
    /// The file has no `SchedulerPoolStrategy` key (a missing file is not an error, a file
    /// without the strategy is).
    #[error(
        "Property 'org.mule.runtime.scheduler.SchedulerPoolStrategy' was not specified in file '{file}'"
    )]
    #[non_exhaustive]
    MissingStrategy {
        /// The file.
        file: String,
    },
    /// The strategy is neither `UBER` nor `DEDICATED`.
    #[error("{file}:{line}: {key}: There's no SchedulerPoolStrategy named '{value}'")]
    #[non_exhaustive]
    UnknownStrategy {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The full key.
        key: String,
        /// The value, trimmed and lowercased as Mule reports it.
        value: String,
    },
    /// A value that is refused.
    #[error("{file}:{line}: {key}: {reason}")]
    #[non_exhaustive]
    InvalidValue {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The full key.
        key: String,
        /// The value as written.
        value: String,
        /// Why it is refused.
        reason: InvalidReason,
    },
}

impl ConfigError {
    /// The full key at fault, if the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownStrategy { key, .. } | ConfigError::InvalidValue { key, .. } => {
                Some(key)
            }
            ConfigError::MissingStrategy { .. } => Some(keys::STRATEGY),
            ConfigError::Io { .. }
            | ConfigError::FileTooLarge { .. }
            | ConfigError::Syntax { .. } => None,
        }
    }

    /// The 1-based line at fault, if the error is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { line, .. }
            | ConfigError::UnknownStrategy { line, .. }
            | ConfigError::InvalidValue { line, .. } => Some(*line),
            ConfigError::Io { .. }
            | ConfigError::FileTooLarge { .. }
            | ConfigError::MissingStrategy { .. } => None,
        }
    }

    /// The file at fault as messages name it: the path as given, or `<string>` (or the name
    /// given to [`PoolsConfig::parse_named`](super::PoolsConfig::parse_named)) for parsed text.
    ///
    /// Always `Some`, except for an [`Io`](ConfigError::Io) error on a path that is not valid
    /// Unicode (its message shows it lossily). The type matches [`ConfigWarning::file`].
    pub fn file(&self) -> Option<&str> {
        match self {
            ConfigError::Io { path, .. } => path.to_str(),
            ConfigError::FileTooLarge { file, .. }
            | ConfigError::Syntax { file, .. }
            | ConfigError::MissingStrategy { file }
            | ConfigError::UnknownStrategy { file, .. }
            | ConfigError::InvalidValue { file, .. } => Some(file),
        }
    }

    /// The refused value as written, if the error is about one value.
    pub fn value(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownStrategy { value, .. }
            | ConfigError::InvalidValue { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// Why a value is refused. The first three wordings are Mule's (the third with an explanation
/// added).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidReason {
    /// A pool size that is zero or negative after truncation.
    #[error("Value has to be greater than 0")]
    NotPositive,
    /// A queue size, timeout or keep-alive below zero.
    #[error("Value has to be greater than or equal to 0")]
    Negative,
    /// A millisecond key that is not a whole number (Java's `Long.parseLong` refuses it too).
    #[error(
        "For input string: \"{input}\": expected a whole number of milliseconds from 0 to \
         9223372036854775807, such as 30000; decimals and expressions are not read here"
    )]
    NotAnInteger {
        /// The text that failed to parse.
        input: String,
    },
    /// An expression outside the grammar, or with a NaN or infinite result.
    #[error("Expression not valid: {0}")]
    Expression(Box<ExprError>),
    /// A pool size that starts more threads at build time (a core size, or the fixed size of
    /// the CPU_LIGHT and CPU_INTENSIVE pools) than one pool can have on this machine
    /// ([`Resources::max_threads`](super::Resources::max_threads)). A maximum size above it is
    /// capped with a [`WarningKind::SizeCapped`] warning instead.
    #[error(
        "Value has to be at most {limit}, the most threads one pool can start here \
         (the expression gives {requested})"
    )]
    TooManyThreads {
        /// The size asked for, truncated.
        requested: u64,
        /// The most threads one pool may have.
        limit: usize,
    },
    /// A result above the largest size uberpool accepts (`i32::MAX`, Mule's limit).
    #[error("Value does not fit: {} is above the largest allowed size, {limit}", show_number(*result))]
    TooLarge {
        /// The expression's result before truncation.
        result: f64,
        /// The largest accepted size.
        limit: u64,
    },
}

/// Writes a large float readably: digits when short, scientific notation when long.
fn show_number(value: f64) -> String {
    if value.abs() < 1e15 {
        format!("{}", value.trunc())
    } else {
        format!("{value:e}")
    }
}

/// A configuration that resolved, with something its author should look at.
///
/// `Display` gives `file:line: key: message` (parts that do not apply are left out).
///
/// ```
/// use uberpool::{PoolsConfig, Resources};
///
/// let text = "org.mule.runtime.scheduler.SchedulerPoolStrategy=UBER\n\
///             org.mule.runtime.scheduler.uber.threadPool.corSize=4\n";
/// let config = PoolsConfig::parse(text, &Resources::new(4, 1_048_576))?;
/// let warning = &config.warnings()[0];
/// assert_eq!(warning.line(), Some(2));
/// assert_eq!(
///     warning.to_string(),
///     "<string>:2: org.mule.runtime.scheduler.uber.threadPool.corSize: unknown key, ignored; \
///      did you mean 'org.mule.runtime.scheduler.uber.threadPool.coreSize'?"
/// );
/// # Ok::<(), uberpool::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) key: String,
    pub(crate) kind: WarningKind,
}

/// What a [`ConfigWarning`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A key no strategy reads; it is ignored.
    UnknownKey {
        /// The valid key it most likely meant.
        suggestion: Option<String>,
    },
    /// A key of the strategy that is not active; it is ignored.
    OtherStrategyKey {
        /// The strategy that reads the key.
        read_under: Strategy,
        /// The active strategy.
        active: Strategy,
    },
    /// A key given twice; the last value wins (as in Java properties).
    DuplicateKey {
        /// The line of the earlier occurrence.
        first_line: usize,
    },
    /// A maximum pool size below the core size, raised to the core size.
    MaxRaisedToCore {
        /// The maximum as resolved.
        max: usize,
        /// The core size it was raised to.
        core: usize,
    },
    /// A maximum pool size above the threads one pool can have on this machine
    /// ([`Resources::max_threads`](super::Resources::max_threads)), lowered to that limit. Mule's
    /// default maximum reaches it on machines with more than about 160 GiB of memory.
    SizeCapped {
        /// The size as resolved.
        requested: usize,
        /// The limit it was lowered to.
        limit: usize,
    },
    /// More keys were ignored (unknown, of the other strategy, or given again) than are listed
    /// one by one; this warning, on the first key left out, counts those left out.
    MoreIgnoredKeys {
        /// Ignored keys not listed, the one this warning names included.
        count: usize,
    },
}

impl ConfigWarning {
    /// The file the warning is about as messages name it, if it comes from one (`None` for a
    /// warning about the built-in defaults). The type matches [`ConfigError::file`].
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line, if the warning is about one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The key as written in the file.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the warning is about.
    pub fn kind(&self) -> &WarningKind {
        &self.kind
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
            }
            f.write_str(" ")?;
        }
        write!(f, "{}: ", self.key)?;
        match &self.kind {
            WarningKind::UnknownKey {
                suggestion: Some(suggestion),
            } => {
                write!(f, "unknown key, ignored; did you mean '{suggestion}'?")
            }
            WarningKind::UnknownKey { suggestion: None } => f.write_str("unknown key, ignored"),
            WarningKind::OtherStrategyKey { read_under, active } => write!(
                f,
                "only read when SchedulerPoolStrategy is {read_under}; ignored under {active}"
            ),
            WarningKind::DuplicateKey { first_line } => {
                write!(
                    f,
                    "given again (first on line {first_line}); the last value wins"
                )
            }
            WarningKind::MaxRaisedToCore { max, core } => {
                write!(
                    f,
                    "maximum size {max} is below the core size {core}; raised to {core}"
                )
            }
            WarningKind::SizeCapped { requested, limit } => write!(
                f,
                "size {requested} is more threads than one pool can have here; \
                 lowered to {limit}"
            ),
            WarningKind::MoreIgnoredKeys { count } => write!(
                f,
                "{count} ignored keys from here on (unknown, of the other strategy, or given \
                 again) are not listed one by one"
            ),
        }
    }
}

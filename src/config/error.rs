//! [`ConfigError`] (a configuration that cannot be used) and [`ConfigWarning`] (one that can,
//! but probably not as its author meant).
//!
//! Messages follow Mule's wording, prefixed with `file:line:` and the full key, so that
//! `scheduler-pools.conf:7: org.mule.runtime.scheduler.uber.threadPool.coreSize: Value has to be
//! greater than 0` tells the user exactly what to fix.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::Strategy;
use super::expr::ExprError;

/// A configuration that cannot be used. Nothing is resolved when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `\u` escape without four hexadecimal digits.
    #[error("{file}:{line}: Malformed \\uxxxx encoding ('\\u{found}')")]
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
    MissingStrategy {
        /// The file.
        file: String,
    },
    /// The strategy is neither `UBER` nor `DEDICATED`.
    #[error("{file}:{line}: {key}: There's no SchedulerPoolStrategy named '{value}'")]
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
            ConfigError::MissingStrategy { .. } => Some(super::keys::STRATEGY),
            ConfigError::Io { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    /// The 1-based line at fault, if the error is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { line, .. }
            | ConfigError::UnknownStrategy { line, .. }
            | ConfigError::InvalidValue { line, .. } => Some(*line),
            ConfigError::Io { .. } | ConfigError::MissingStrategy { .. } => None,
        }
    }

    /// The file at fault (`<string>` for text given to [`PoolsConfig::parse`](super::PoolsConfig::parse)).
    pub fn file(&self) -> String {
        match self {
            ConfigError::Io { path, .. } => path.display().to_string(),
            ConfigError::Syntax { file, .. }
            | ConfigError::MissingStrategy { file }
            | ConfigError::UnknownStrategy { file, .. }
            | ConfigError::InvalidValue { file, .. } => file.clone(),
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

/// Why a value is refused. The first four wordings are Mule's.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidReason {
    /// A pool size that is zero or negative after truncation.
    #[error("Value has to be greater than 0")]
    NotPositive,
    /// A queue size, timeout or keep-alive below zero.
    #[error("Value has to be greater than or equal to 0")]
    Negative,
    /// A millisecond key that is not an integer.
    #[error("For input string: \"{input}\"")]
    NotAnInteger {
        /// The text that failed to parse.
        input: String,
    },
    /// An expression outside the grammar, or with a NaN or infinite result.
    #[error("Expression not valid: {0}")]
    Expression(Box<ExprError>),
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
}

impl ConfigWarning {
    /// The file the warning is about, if it comes from one.
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
        }
    }
}

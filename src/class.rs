//! [`TaskClass`]: the three kinds of work uberpool schedules.
//!
//! This file holds only the class itself and its textual forms; which pool serves a class is
//! decided by the service from the strategy.

use std::fmt;
use std::str::FromStr;

/// The class of a task: what kind of work it does, and so which pool should run it.
///
/// The names follow Mule 4's processing types. Their textual form (`Display`) is Mule's constant
/// name; parsing (`FromStr`) is case-insensitive and also accepts Mule's older spelling
/// `CPU_LITE`.
///
/// ```
/// use uberpool::TaskClass;
///
/// assert_eq!(TaskClass::CpuLight.to_string(), "CPU_LIGHT");
/// assert_eq!("cpu_lite".parse::<TaskClass>(), Ok(TaskClass::CpuLight));
/// assert_eq!("io".parse::<TaskClass>(), Ok(TaskClass::Io));
/// assert!("gpu".parse::<TaskClass>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskClass {
    /// Short compute that never blocks: routing, parsing, logging (< 10 ms).
    CpuLight,
    /// Long compute that rarely blocks: templating, compression, crypto (> 10 ms).
    CpuIntensive,
    /// Work that is mostly blocked: sockets, files, databases, SMTP.
    Io,
}

impl TaskClass {
    /// All classes, in declaration order.
    pub const ALL: [TaskClass; 3] = [TaskClass::CpuLight, TaskClass::CpuIntensive, TaskClass::Io];

    /// Mule's constant name: `"CPU_LIGHT"`, `"CPU_INTENSIVE"` or `"IO"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskClass::CpuLight => "CPU_LIGHT",
            TaskClass::CpuIntensive => "CPU_INTENSIVE",
            TaskClass::Io => "IO",
        }
    }

    /// Work the pools keep to as many running threads as there are cores (`pool/cpu.rs`):
    /// CPU_LIGHT, the short work whose hand-off to a thread of its own would cost more than the
    /// work. CPU_INTENSIVE work keeps Mule's hand-off.
    pub(crate) const fn is_cpu(self) -> bool {
        matches!(self, TaskClass::CpuLight)
    }
}

impl fmt::Display for TaskClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`TaskClass`] from text; it carries the text that was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown task class '{0}': expected CPU_LIGHT (or CPU_LITE), CPU_INTENSIVE or IO")]
pub struct ParseTaskClassError(pub String);

impl FromStr for TaskClass {
    type Err = ParseTaskClassError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("CPU_LIGHT") || t.eq_ignore_ascii_case("CPU_LITE") {
            Ok(TaskClass::CpuLight)
        } else if t.eq_ignore_ascii_case("CPU_INTENSIVE") {
            Ok(TaskClass::CpuIntensive)
        } else if t.eq_ignore_ascii_case("IO") {
            Ok(TaskClass::Io)
        } else {
            Err(ParseTaskClassError(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for class in TaskClass::ALL {
            assert_eq!(class.to_string().parse::<TaskClass>(), Ok(class));
            assert_eq!(
                class.to_string().to_lowercase().parse::<TaskClass>(),
                Ok(class)
            );
        }
    }

    #[test]
    fn parse_refuses_unknown_names_with_the_text() {
        let err = "cpu".parse::<TaskClass>().unwrap_err();
        assert!(err.to_string().contains("'cpu'"));
    }
}

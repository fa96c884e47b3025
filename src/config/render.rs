//! Text renderings of a resolved [`PoolsConfig`]: a summary like Mule's startup splash, and the
//! JSON object printed by `uberpool resolve --json`.
//!
//! The JSON is written by hand (no serialization crate), so library users compile nothing for it.

use std::fmt::Write as _;

use super::{ConfigSource, PoolSpec, PoolsConfig, Strategy};

impl PoolsConfig {
    /// A multi-line summary of the resolved values, in the manner of Mule's startup splash.
    ///
    /// ```
    /// use uberpool::{PoolsConfig, Resources};
    ///
    /// let text = PoolsConfig::defaults(&Resources::new(4, 1_048_576)).splash();
    /// assert!(text.starts_with("Resolved configuration values:\n"));
    /// assert!(text.contains("uber.threadPool.maxSize:          160\n"));
    /// ```
    #[must_use]
    pub fn splash(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("Pooling strategy:", self.strategy.to_string()),
            (
                "gracefulShutdownTimeout:",
                format!("{} ms", self.graceful_shutdown_timeout.as_millis()),
            ),
        ];
        match self.strategy {
            Strategy::Uber => {
                rows.push(("uber.threadPool.coreSize:", self.uber.core_size.to_string()));
                rows.push(("uber.threadPool.maxSize:", self.uber.max_size.to_string()));
                rows.push(("uber.workQueue.size:", self.uber.queue_size.to_string()));
                rows.push((
                    "uber.threadPool.threadKeepAlive:",
                    format!("{} ms", self.uber.keep_alive.as_millis()),
                ));
            }
            Strategy::Dedicated => {
                rows.push((
                    "cpuLight.threadPool.size:",
                    self.cpu_light.core_size.to_string(),
                ));
                rows.push((
                    "cpuLight.workQueue.size:",
                    self.cpu_light.queue_size.to_string(),
                ));
                rows.push(("io.threadPool.coreSize:", self.io.core_size.to_string()));
                rows.push(("io.threadPool.maxSize:", self.io.max_size.to_string()));
                rows.push(("io.workQueue.size:", self.io.queue_size.to_string()));
                rows.push((
                    "io.threadPool.threadKeepAlive:",
                    format!("{} ms", self.io.keep_alive.as_millis()),
                ));
                rows.push((
                    "cpuIntensive.threadPool.size:",
                    self.cpu_intensive.core_size.to_string(),
                ));
                rows.push((
                    "cpuIntensive.workQueue.size:",
                    self.cpu_intensive.queue_size.to_string(),
                ));
            }
        }
        let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 2;
        let mut out = String::from("Resolved configuration values:\n\n");
        for (label, value) in rows {
            let _ = writeln!(out, "{label:<width$}{value}");
        }
        out.push('\n');
        match &self.source {
            ConfigSource::File(path) => {
                let _ = writeln!(out, "These can be modified by editing '{}'", path.display());
            }
            ConfigSource::Text(name) => {
                let _ = writeln!(out, "These come from '{name}'");
            }
            ConfigSource::Defaults => out.push_str(
                "These are the built-in defaults; name a scheduler-pools.conf file in \
                 $UBERPOOL_CONF to change them\n",
            ),
        }
        out
    }

    /// The resolved values as one line of JSON, with the warnings as strings.
    ///
    /// Under UBER `pools` holds `uber`; under DEDICATED it holds `cpuLight`, `io` and
    /// `cpuIntensive`.
    ///
    /// ```
    /// use uberpool::{PoolsConfig, Resources};
    ///
    /// assert_eq!(
    ///     PoolsConfig::defaults(&Resources::new(4, 1_048_576)).to_json(),
    ///     r#"{"strategy":"UBER","graceful_shutdown_timeout_ms":15000,"pools":{"uber":{"core_size":4,"max_size":160,"queue_size":0,"keep_alive_ms":30000}},"warnings":[]}"#
    /// );
    /// ```
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"strategy\":\"{}\",\"graceful_shutdown_timeout_ms\":{},\"pools\":{{",
            self.strategy,
            self.graceful_shutdown_timeout.as_millis()
        );
        let pools: Vec<(&str, &PoolSpec)> = match self.strategy {
            Strategy::Uber => vec![("uber", &self.uber)],
            Strategy::Dedicated => vec![
                ("cpuLight", &self.cpu_light),
                ("io", &self.io),
                ("cpuIntensive", &self.cpu_intensive),
            ],
        };
        for (index, (name, spec)) in pools.into_iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "\"{name}\":{{\"core_size\":{},\"max_size\":{},\"queue_size\":{},\"keep_alive_ms\":{}}}",
                spec.core_size,
                spec.max_size,
                spec.queue_size,
                spec.keep_alive.as_millis()
            );
        }
        out.push_str("},\"warnings\":[");
        for (index, warning) in self.warnings().iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_json_string(&mut out, &warning.to_string());
        }
        out.push_str("]}");
        out
    }
}

/// Appends `text` as a JSON string literal.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}

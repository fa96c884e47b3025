//! Mule files as Java reads them: a `.properties` file is ISO-8859-1 unless it is valid UTF-8, so
//! a Latin-1 comment does no harm and errors still name the file and line; and the values Java
//! users write by habit (`1.5` milliseconds, `cores == 2`, `1e12`) get messages that say what is
//! expected instead of puzzling ones.

use std::path::PathBuf;

use uberpool::config::WarningKind;
use uberpool::{ConfigError, PoolsConfig, Resources};

const RES: Resources = Resources::new(4, 1_048_576);
const P: &str = "org.mule.runtime.scheduler.";

/// Writes `bytes` to a fresh `scheduler-pools.conf` and returns its path.
fn conf_file(test: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uberpool-java-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scheduler-pools.conf");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `text` encoded as ISO-8859-1 (every character below U+0100).
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character"))
        .collect()
}

fn uber_with(key: &str, value: &str) -> Result<PoolsConfig, ConfigError> {
    PoolsConfig::parse(
        &format!("{P}SchedulerPoolStrategy=UBER\n{P}{key}={value}\n"),
        &RES,
    )
}

#[test]
fn a_latin1_comment_does_not_fail_the_file() {
    // 'é', 'à', '×' and '«»' are single bytes in ISO-8859-1 ('œ' is not Latin-1 at all).
    let bytes = latin1(&format!(
        "# Réglages du planificateur, à lire avant la mise en production\n\
         {P}SchedulerPoolStrategy=UBER\n# Taille maximale : 2 × cores (« par défaut »)\n\
         {P}uber.threadPool.maxSize=cores * 2\n"
    ));
    assert!(String::from_utf8(bytes.clone()).is_err(), "not valid UTF-8");
    let path = conf_file("latin1-comment", &bytes);
    let config = PoolsConfig::load(&path, &RES).unwrap();
    assert_eq!(config.uber.max_size, 8);
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}

#[test]
fn errors_in_a_latin1_file_still_name_file_line_and_key() {
    let bytes = latin1(&format!(
        "# Paramètres\n{P}SchedulerPoolStrategy=UBER\n\n{P}uber.threadPool.coreSize=0\n"
    ));
    let path = conf_file("latin1-error", &bytes);
    let err = PoolsConfig::load(&path, &RES).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4: {P}uber.threadPool.coreSize: Value has to be greater than 0",
            path.display()
        )
    );
    assert_eq!(err.line(), Some(4));
}

#[test]
fn latin1_bytes_in_a_key_are_read_as_iso_8859_1() {
    let bytes = latin1(&format!(
        "{P}SchedulerPoolStrategy=UBER\n{P}uber.threadPool.tailléMax=3\n"
    ));
    let path = conf_file("latin1-key", &bytes);
    let config = PoolsConfig::load(&path, &RES).unwrap();
    assert_eq!(config.warnings().len(), 1);
    assert_eq!(
        config.warnings()[0].key(),
        format!("{P}uber.threadPool.tailléMax")
    );
}

#[test]
fn a_valid_utf8_file_is_read_as_utf8() {
    let text = format!("# Größe: 2×cores\n{P}SchedulerPoolStrategy=UBER\n{P}uber.größe=1\n");
    let path = conf_file("utf8", text.as_bytes());
    let config = PoolsConfig::load(&path, &RES).unwrap();
    assert_eq!(config.warnings()[0].key(), format!("{P}uber.größe"));
    assert_eq!(config.warnings()[0].line(), Some(3));
}

#[test]
fn a_fractional_millisecond_value_says_a_whole_number_is_expected() {
    let err = uber_with("uber.threadPool.threadKeepAlive", "1.5").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}uber.threadPool.threadKeepAlive: For input string: \"1.5\": expected a \
             whole number of milliseconds from 0 to 9223372036854775807, such as 30000; decimals \
             and expressions are not read here"
        )
    );
    assert_eq!(
        err.key(),
        Some(format!("{P}uber.threadPool.threadKeepAlive").as_str())
    );
}

#[test]
fn a_comparison_says_comparisons_are_not_allowed_and_what_is() {
    let err = uber_with("uber.threadPool.coreSize", "cores == 2").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}uber.threadPool.coreSize: Expression not valid: '==' at column 7: \
             comparisons and logical operators are not allowed; a size is written with numbers, \
             cores, mem, + - * /, parentheses, max(a, b) and min(a, b)"
        )
    );
}

#[test]
fn scientific_notation_says_to_write_the_number_out() {
    let err = uber_with("uber.workQueue.size", "1e12").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}uber.workQueue.size: Expression not valid: scientific notation '1e12' \
             at column 1 is not supported: write the number out, as 1000000000000"
        )
    );
    assert_eq!(err.line(), Some(2));
}

#[test]
fn an_error_and_a_warning_name_their_file_in_the_same_type() {
    let path = conf_file(
        "file-type",
        format!("{P}SchedulerPoolStrategy=UBER\n{P}uber.coreSize=2\n").as_bytes(),
    );
    let warning_file = PoolsConfig::load(&path, &RES).unwrap().warnings()[0]
        .file()
        .map(str::to_owned);
    let name = path.display().to_string();
    assert_eq!(warning_file.as_deref(), Some(name.as_str()));
    assert!(matches!(
        PoolsConfig::load(&path, &RES).unwrap().warnings()[0].kind(),
        WarningKind::UnknownKey { .. }
    ));
    std::fs::write(&path, format!("{P}SchedulerPoolStrategy=BOTH\n")).unwrap();
    let err = PoolsConfig::load(&path, &RES).unwrap_err();
    assert_eq!(err.file(), Some(name.as_str()));
    // Warnings about the built-in defaults come from no file.
    let defaults = PoolsConfig::defaults(&Resources::new(16, 100_000));
    assert_eq!(defaults.warnings()[0].file(), None);
}

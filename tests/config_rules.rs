//! uberpool's own configuration rules, beyond Mule's test list: nesting, float arithmetic,
//! non-finite and oversized results, warnings with suggestions, file encodings, and the
//! repository's documented `scheduler-pools.conf`.

use std::time::Duration;

use uberpool::config::WarningKind;
use uberpool::{ConfigError, PoolsConfig, Resources, Strategy};

const RES: Resources = Resources::new(4, 1_048_576);
const P: &str = "org.mule.runtime.scheduler.";
/// What uberpool adds to Mule's `For input string: "..."`.
const WHOLE_MILLIS: &str = ": expected a whole number of milliseconds from 0 to \
                            9223372036854775807, such as 30000; decimals and expressions are not \
                            read here";

fn uber_with(key: &str, value: &str) -> Result<PoolsConfig, ConfigError> {
    PoolsConfig::parse(
        &format!("{P}SchedulerPoolStrategy=UBER\n{P}{key}={value}\n"),
        &RES,
    )
}

fn error_of(key: &str, value: &str) -> String {
    uber_with(key, value).unwrap_err().to_string()
}

#[test]
fn max_and_min_nest_inside_arithmetic_and_each_other() {
    let config = uber_with(
        "uber.threadPool.maxSize",
        "2 * max(min(cores, 3), min(mem, 1)) + 1",
    )
    .unwrap();
    assert_eq!(config.uber.max_size, 7);
    let config = uber_with("uber.threadPool.maxSize", "MIN(MAX(cores * 10, 16), 64)").unwrap();
    assert_eq!(config.uber.max_size, 40);
}

#[test]
fn integer_division_is_floating_point() {
    assert_eq!(
        uber_with("uber.threadPool.coreSize", "(1/2)*cores")
            .unwrap()
            .uber
            .core_size,
        2
    );
    assert_eq!(
        uber_with("uber.threadPool.coreSize", "cores / 0.5")
            .unwrap()
            .uber
            .core_size,
        8
    );
    assert_eq!(
        uber_with("uber.threadPool.coreSize", "cores * (3/4)")
            .unwrap()
            .uber
            .core_size,
        3
    );
}

#[test]
fn result_is_truncated_once_at_the_end() {
    // 0.6 + 0.6 = 1.2 → 1; truncating each operand first would give 0.
    assert_eq!(
        uber_with("uber.threadPool.coreSize", "0.6 + 0.6")
            .unwrap()
            .uber
            .core_size,
        1
    );
    assert_eq!(
        uber_with("uber.workQueue.size", "1/2")
            .unwrap()
            .uber
            .queue_size,
        0
    );
    assert_eq!(
        uber_with("uber.workQueue.size", "-0.5")
            .unwrap()
            .uber
            .queue_size,
        0
    );
}

#[test]
fn division_by_zero_is_an_error() {
    assert_eq!(
        error_of("uber.threadPool.maxSize", "cores/0"),
        format!(
            "<string>:2: {P}uber.threadPool.maxSize: Expression not valid: the result is \
             infinite, as for a division by zero"
        )
    );
}

#[test]
fn zero_divided_by_zero_is_an_error() {
    assert_eq!(
        error_of("uber.workQueue.size", "0/0"),
        format!(
            "<string>:2: {P}uber.workQueue.size: Expression not valid: the result is not a \
             number (NaN), as for 0/0"
        )
    );
    assert!(error_of("uber.workQueue.size", "max(0/0, 1)").contains("(NaN)"));
}

#[test]
fn empty_values_are_errors() {
    assert_eq!(
        error_of("uber.threadPool.coreSize", ""),
        format!(
            "<string>:2: {P}uber.threadPool.coreSize: Expression not valid: the value is empty"
        )
    );
    assert_eq!(
        error_of("uber.threadPool.coreSize", "   "),
        format!(
            "<string>:2: {P}uber.threadPool.coreSize: Expression not valid: the value is empty"
        )
    );
    assert_eq!(
        error_of("gracefulShutdownTimeout", ""),
        format!("<string>:2: {P}gracefulShutdownTimeout: For input string: \"\"{WHOLE_MILLIS}")
    );
}

#[test]
fn sizes_up_to_i32_max_are_accepted() {
    let config = uber_with("uber.workQueue.size", "2147483647").unwrap();
    assert_eq!(config.uber.queue_size, 2_147_483_647);
}

#[test]
fn sizes_beyond_i32_max_are_errors() {
    assert_eq!(
        error_of("uber.workQueue.size", "2147483648"),
        format!(
            "<string>:2: {P}uber.workQueue.size: Value does not fit: 2147483648 is above the \
             largest allowed size, 2147483647"
        )
    );
    assert!(
        error_of("uber.threadPool.maxSize", "mem * mem * mem")
            .contains("does not fit: 1.152921504606847e18")
    );
}

#[test]
fn huge_literals_are_errors_not_panics() {
    let huge = format!("1{}", "0".repeat(400));
    assert!(error_of("uber.threadPool.maxSize", &huge).contains("infinite"));
    assert_eq!(
        error_of("gracefulShutdownTimeout", "99999999999999999999"),
        format!(
            "<string>:2: {P}gracefulShutdownTimeout: For input string: \"99999999999999999999\"{WHOLE_MILLIS}"
        )
    );
}

#[test]
fn large_millisecond_values_are_kept() {
    let config = uber_with("gracefulShutdownTimeout", "9223372036854775807").unwrap();
    assert_eq!(
        config.graceful_shutdown_timeout,
        Duration::from_millis(i64::MAX as u64)
    );
}

#[test]
fn millisecond_values_may_carry_whitespace() {
    let config = uber_with("uber.threadPool.threadKeepAlive", " 500 \t").unwrap();
    assert_eq!(config.uber.keep_alive, Duration::from_millis(500));
}

#[test]
fn unknown_key_warns_with_the_nearest_valid_key() {
    let config = uber_with("uber.threadPool.maxSzie", "3").unwrap();
    assert_eq!(config.uber.max_size, 160, "the misspelt key is not read");
    let warning = &config.warnings()[0];
    assert_eq!(warning.line(), Some(2));
    assert_eq!(
        warning.kind(),
        &WarningKind::UnknownKey {
            suggestion: Some(format!("{P}uber.threadPool.maxSize"))
        }
    );
    assert_eq!(
        warning.to_string(),
        format!(
            "<string>:2: {P}uber.threadPool.maxSzie: unknown key, ignored; did you mean \
             '{P}uber.threadPool.maxSize'?"
        )
    );
}

#[test]
fn unknown_key_far_from_any_valid_key_warns_without_suggestion() {
    let config =
        PoolsConfig::parse(&format!("{P}SchedulerPoolStrategy=UBER\nfoo=bar\n"), &RES).unwrap();
    assert_eq!(
        config.warnings()[0].to_string(),
        "<string>:2: foo: unknown key, ignored"
    );
}

#[test]
fn misdocumented_strategy_key_points_at_the_real_one() {
    let text = format!("{P}SchedulerPoolStrategy=UBER\n{P}threadPool.strategy=DEDICATED\n");
    let config = PoolsConfig::parse(&text, &RES).unwrap();
    assert_eq!(config.strategy, Strategy::Uber);
    assert_eq!(
        config.warnings()[0].kind(),
        &WarningKind::UnknownKey {
            suggestion: Some(format!("{P}SchedulerPoolStrategy"))
        }
    );
}

#[test]
fn other_strategy_key_warns_that_it_is_ignored() {
    let config = uber_with("io.threadPool.maxSize", "12").unwrap();
    assert_eq!(config.io.max_size, 160);
    assert_eq!(
        config.warnings()[0].to_string(),
        format!(
            "<string>:2: {P}io.threadPool.maxSize: only read when SchedulerPoolStrategy is \
             DEDICATED; ignored under UBER"
        )
    );
}

#[test]
fn duplicated_key_warns_and_the_last_value_wins() {
    let text = format!(
        "{P}SchedulerPoolStrategy=UBER\n{P}uber.threadPool.coreSize=2\n{P}uber.threadPool.coreSize=3\n"
    );
    let config = PoolsConfig::parse(&text, &RES).unwrap();
    assert_eq!(config.uber.core_size, 3);
    assert_eq!(
        config.warnings()[0].kind(),
        &WarningKind::DuplicateKey { first_line: 2 }
    );
    assert_eq!(config.warnings()[0].line(), Some(3));
}

#[test]
fn max_below_core_is_raised_to_core_with_a_warning() {
    let text = format!(
        "{P}SchedulerPoolStrategy=DEDICATED\n{P}io.threadPool.coreSize=10\n{P}io.threadPool.maxSize=5\n"
    );
    let config = PoolsConfig::parse(&text, &RES).unwrap();
    assert_eq!((config.io.core_size, config.io.max_size), (10, 10));
    assert_eq!(
        config.warnings()[0].to_string(),
        format!(
            "<string>:3: {P}io.threadPool.maxSize: maximum size 5 is below the core size 10; \
             raised to 10"
        )
    );
}

#[test]
fn default_max_below_core_on_small_memory_is_raised_with_a_warning() {
    // 16 cores and ~98 MiB: max(2, 16 + (100000 - 245760) / 5120) = 2 < 16.
    let config = PoolsConfig::defaults(&Resources::new(16, 100_000));
    assert_eq!((config.uber.core_size, config.uber.max_size), (16, 16));
    assert_eq!(config.io.max_size, 16);
    assert_eq!(
        config.warnings()[0].kind(),
        &WarningKind::MaxRaisedToCore { max: 2, core: 16 }
    );
}

#[test]
fn zero_cores_is_treated_as_one_by_the_defaults() {
    let config = PoolsConfig::defaults(&Resources::new(0, 1_048_576));
    assert_eq!(config.uber.core_size, 1);
    assert_eq!(config.cpu_light.core_size, 2);
}

#[test]
fn crlf_files_resolve_with_correct_line_numbers() {
    let text = format!(
        "# comment\r\n{P}SchedulerPoolStrategy=DEDICATED\r\n\r\n{P}io.threadPool.maxSize=cores*3\r\n{P}io.workQueue.size=-1\r\n"
    );
    let err = PoolsConfig::parse(&text, &RES).unwrap_err();
    assert_eq!(err.line(), Some(5));
    let ok = text.replace("=-1", "=1");
    let config = PoolsConfig::parse(&ok, &RES).unwrap();
    assert_eq!((config.io.max_size, config.io.queue_size), (12, 1));
}

#[test]
fn byte_order_mark_is_skipped() {
    let text = format!("\u{feff}{P}SchedulerPoolStrategy=DEDICATED\n");
    assert_eq!(
        PoolsConfig::parse(&text, &RES).unwrap().strategy,
        Strategy::Dedicated
    );
}

#[test]
fn continuation_lines_join_and_later_lines_keep_their_numbers() {
    let text = format!(
        "{P}SchedulerPoolStrategy=UBER\n{P}uber.threadPool.maxSize = max(2, \\\n    cores + \\\n    ((mem - 245760) / 5120))\n{P}uber.workQueue.size=-3\n"
    );
    let err = PoolsConfig::parse(&text, &RES).unwrap_err();
    assert_eq!(err.line(), Some(5));
    let config = PoolsConfig::parse(&text.replace("=-3", "=3"), &RES).unwrap();
    assert_eq!(config.uber.max_size, 160);
}

#[test]
fn malformed_unicode_escape_names_file_and_line() {
    let text = format!("{P}SchedulerPoolStrategy=UBER\n{P}uber.workQueue.size=\\u00\n");
    let err = PoolsConfig::parse_named(&text, "pools.conf", &RES).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pools.conf:2: Malformed \\uxxxx encoding ('\\u00')"
    );
}

#[test]
fn errors_from_a_loaded_file_name_its_path() {
    let dir = std::env::temp_dir().join(format!("uberpool-config-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scheduler-pools.conf");
    std::fs::write(
        &path,
        format!("{P}SchedulerPoolStrategy=UBER\n\n{P}uber.threadPool.coreSize=0\n"),
    )
    .unwrap();
    let err = PoolsConfig::load(&path, &RES).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: {P}uber.threadPool.coreSize: Value has to be greater than 0",
            path.display()
        )
    );
    assert_eq!(err.file(), Some(path.display().to_string().as_str()));
}

#[test]
fn loading_a_missing_file_is_an_io_error() {
    let err = PoolsConfig::load("/nonexistent/scheduler-pools.conf", &RES).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert_eq!(err.line(), None);
}

#[test]
fn repository_conf_resolves_exactly_like_the_defaults() {
    for res in [
        RES,
        Resources::new(1, 100_000),
        Resources::new(3, 300_000),
        Resources::new(16, 33_554_432),
        Resources::detect(),
    ] {
        let config = PoolsConfig::load("scheduler-pools.conf", &res).unwrap();
        let defaults = PoolsConfig::defaults(&res);
        assert_eq!(config.strategy, defaults.strategy);
        assert_eq!(
            config.graceful_shutdown_timeout,
            defaults.graceful_shutdown_timeout
        );
        assert_eq!(
            (
                config.uber,
                config.cpu_light,
                config.io,
                config.cpu_intensive
            ),
            (
                defaults.uber,
                defaults.cpu_light,
                defaults.io,
                defaults.cpu_intensive
            ),
            "{res:?}"
        );
        let kinds: Vec<_> = config.warnings().iter().map(|w| w.kind().clone()).collect();
        let default_kinds: Vec<_> = defaults
            .warnings()
            .iter()
            .map(|w| w.kind().clone())
            .collect();
        assert_eq!(kinds, default_kinds, "{res:?}");
    }
}

#[test]
fn repository_conf_with_dedicated_keys_uncommented_resolves_to_the_dedicated_defaults() {
    let text = std::fs::read_to_string("scheduler-pools.conf")
        .unwrap()
        .replace("\n#org.mule", "\norg.mule")
        .replace(
            "SchedulerPoolStrategy=UBER",
            "SchedulerPoolStrategy=DEDICATED",
        );
    let config = PoolsConfig::parse(&text, &RES).unwrap();
    let defaults = PoolsConfig::defaults(&RES);
    assert_eq!(config.strategy, Strategy::Dedicated);
    assert_eq!(
        (config.cpu_light, config.io, config.cpu_intensive),
        (defaults.cpu_light, defaults.io, defaults.cpu_intensive)
    );
    assert_eq!(
        config.warnings().len(),
        4,
        "the four UBER keys are reported as ignored"
    );
}

#[test]
fn dedicated_json_lists_the_three_pools() {
    let config =
        PoolsConfig::parse(&format!("{P}SchedulerPoolStrategy=DEDICATED\n"), &RES).unwrap();
    assert_eq!(
        config.to_json(),
        r#"{"strategy":"DEDICATED","graceful_shutdown_timeout_ms":15000,"pools":{"cpuLight":{"core_size":8,"max_size":8,"queue_size":0,"keep_alive_ms":0},"io":{"core_size":4,"max_size":160,"queue_size":0,"keep_alive_ms":30000},"cpuIntensive":{"core_size":8,"max_size":8,"queue_size":8,"keep_alive_ms":0}},"warnings":[]}"#
    );
}

#[test]
fn json_warnings_are_escaped_strings() {
    let text = format!("{P}SchedulerPoolStrategy=UBER\nsay\\\"hi\\\"=1\n");
    let config = PoolsConfig::parse(&text, &RES).unwrap();
    assert!(
        config
            .to_json()
            .ends_with(r#""warnings":["<string>:2: say\"hi\": unknown key, ignored"]}"#),
        "{}",
        config.to_json()
    );
}

/// The value printed after `label` on its splash line.
fn splash_value<'a>(splash: &'a str, label: &str) -> Option<&'a str> {
    splash
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .map(str::trim)
}

#[test]
fn splash_lists_the_uber_values_and_the_file() {
    let splash = PoolsConfig::load("scheduler-pools.conf", &RES)
        .unwrap()
        .splash();
    assert!(splash.starts_with("Resolved configuration values:\n\n"));
    assert_eq!(splash_value(&splash, "Pooling strategy:"), Some("UBER"));
    assert_eq!(
        splash_value(&splash, "gracefulShutdownTimeout:"),
        Some("15000 ms")
    );
    assert_eq!(
        splash_value(&splash, "uber.threadPool.coreSize:"),
        Some("4")
    );
    assert_eq!(
        splash_value(&splash, "uber.threadPool.maxSize:"),
        Some("160")
    );
    assert_eq!(
        splash_value(&splash, "uber.threadPool.threadKeepAlive:"),
        Some("30000 ms")
    );
    assert!(splash.ends_with("These can be modified by editing 'scheduler-pools.conf'\n"));
}

#[test]
fn splash_lists_the_dedicated_values() {
    let text = format!("{P}SchedulerPoolStrategy=DEDICATED\n{P}io.workQueue.size=3\n");
    let splash = PoolsConfig::parse(&text, &RES).unwrap().splash();
    assert_eq!(
        splash_value(&splash, "Pooling strategy:"),
        Some("DEDICATED")
    );
    assert_eq!(
        splash_value(&splash, "cpuLight.threadPool.size:"),
        Some("8")
    );
    assert_eq!(splash_value(&splash, "io.threadPool.maxSize:"), Some("160"));
    assert_eq!(splash_value(&splash, "io.workQueue.size:"), Some("3"));
    assert_eq!(
        splash_value(&splash, "cpuIntensive.workQueue.size:"),
        Some("8")
    );
    assert!(!splash.contains("uber."));
}

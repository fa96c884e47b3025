//! What the configuration reader does with sizes and files beyond reason: a thread count beyond
//! what the machine can give (refused for core sizes, lowered with a warning for maxima), a file
//! of thousands of unknown or repeated keys (a bounded list of warnings, suggestions only for
//! those listed), and text or files larger than `MAX_CONF_BYTES`.

use std::fmt::Write as _;
use std::path::PathBuf;

use uberpool::config::{InvalidReason, MAX_CONF_BYTES, WarningKind};
use uberpool::{ConfigError, PoolsConfig, Resources};

const RES: Resources = Resources::new(4, 1_048_576);
const P: &str = "org.mule.runtime.scheduler.";

fn parse(strategy: &str, lines: &str, res: &Resources) -> Result<PoolsConfig, ConfigError> {
    PoolsConfig::parse(
        &format!("{P}SchedulerPoolStrategy={strategy}\n{lines}"),
        res,
    )
}

#[test]
fn a_core_size_beyond_what_a_pool_can_start_is_refused_naming_file_line_and_key() {
    let err = parse(
        "UBER",
        &format!("{P}uber.threadPool.coreSize=2147483647\n"),
        &RES,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}uber.threadPool.coreSize: Value has to be at most 32767, the most \
             threads one pool can start here (the expression gives 2147483647)"
        )
    );
    assert!(matches!(
        err,
        ConfigError::InvalidValue {
            reason: InvalidReason::TooManyThreads {
                requested: 2_147_483_647,
                limit: 32_767
            },
            ..
        }
    ));
}

#[test]
fn the_fixed_sizes_of_the_cpu_pools_are_refused_beyond_the_limit_too() {
    for key in ["cpuLight.threadPool.size", "cpuIntensive.threadPool.size"] {
        let err = parse("DEDICATED", &format!("{P}{key}=cores * 10000\n"), &RES).unwrap_err();
        assert_eq!(err.key(), Some(format!("{P}{key}").as_str()));
        assert_eq!(err.line(), Some(2));
    }
    let err = parse(
        "DEDICATED",
        &format!("\n{P}io.threadPool.coreSize=40000\n"),
        &RES,
    )
    .unwrap_err();
    assert_eq!(err.line(), Some(3));
}

#[test]
fn a_core_size_at_the_limit_is_accepted() {
    let config = parse(
        "UBER",
        &format!("{P}uber.threadPool.coreSize=32767\n"),
        &RES,
    )
    .unwrap();
    assert_eq!(config.uber.core_size, 32_767);
    assert_eq!(
        config.uber.max_size, 32_767,
        "the maximum is raised to the core size"
    );
}

#[test]
fn a_maximum_beyond_the_limit_is_lowered_with_a_warning() {
    let config = parse(
        "UBER",
        &format!("\n{P}uber.threadPool.maxSize=2147483647\n"),
        &RES,
    )
    .unwrap();
    assert_eq!(config.uber.max_size, 32_767);
    let warning = &config.warnings()[0];
    assert_eq!(warning.line(), Some(3));
    assert_eq!(
        warning.kind(),
        &WarningKind::SizeCapped {
            requested: 2_147_483_647,
            limit: 32_767
        }
    );
    assert_eq!(
        warning.to_string(),
        format!(
            "<string>:3: {P}uber.threadPool.maxSize: size 2147483647 is more threads than one \
             pool can have here; lowered to 32767"
        )
    );
}

#[test]
fn the_limit_is_the_one_the_resources_carry() {
    let small = RES.with_max_threads(100);
    let err = parse(
        "UBER",
        &format!("{P}uber.threadPool.coreSize=101\n"),
        &small,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("Value has to be at most 100"),
        "{err}"
    );
    let config = parse(
        "DEDICATED",
        &format!("{P}io.threadPool.maxSize=500\n"),
        &small,
    )
    .unwrap();
    assert_eq!(config.io.max_size, 100);
    assert_eq!(
        config.warnings()[0].kind(),
        &WarningKind::SizeCapped {
            requested: 500,
            limit: 100
        }
    );
}

#[test]
fn the_default_maximum_on_a_huge_machine_is_lowered_with_a_warning() {
    // 1 TiB: Mule's formula gives 4 + (2^30 - 245760) / 5120 = 209,667 threads.
    let huge = Resources::new(4, 1 << 30);
    let config = PoolsConfig::defaults(&huge);
    assert_eq!(config.uber.max_size, 32_767);
    assert_eq!(
        config.io.max_size, 32_767,
        "inactive pools are capped silently"
    );
    assert_eq!(config.warnings().len(), 1);
    assert_eq!(config.warnings()[0].file(), None);
    // A file that leaves the key out gets the same value and a warning naming the file.
    let config = parse("DEDICATED", "", &huge).unwrap();
    assert_eq!(config.io.max_size, 32_767);
    assert_eq!(config.warnings()[0].file(), Some("<string>"));
    assert_eq!(config.warnings()[0].line(), None);
}

#[test]
fn queue_sizes_are_not_thread_counts() {
    let config = parse(
        "UBER",
        &format!("{P}uber.workQueue.size=2147483647\n"),
        &RES,
    )
    .unwrap();
    assert_eq!(config.uber.queue_size, 2_147_483_647);
    assert!(config.warnings().is_empty());
}

/// A text of distinct unknown keys just under `MAX_CONF_BYTES`, and how many keys it holds.
fn many_unknown_keys() -> (String, usize) {
    let mut text = format!("{P}SchedulerPoolStrategy=UBER\n");
    let mut keys = 0;
    while text.len() < MAX_CONF_BYTES - 64 {
        writeln!(text, "{P}uber.threadPool.unknown{keys}=1").unwrap();
        keys += 1;
    }
    (text, keys)
}

#[test]
fn a_megabyte_of_unknown_keys_gives_a_bounded_list_of_warnings() {
    let (text, keys) = many_unknown_keys();
    assert!(keys > 10_000);
    let config = PoolsConfig::parse(&text, &RES).unwrap();
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 33);
    assert!(
        warnings[..32]
            .iter()
            .all(|w| matches!(w.kind(), WarningKind::UnknownKey { .. }))
    );
    assert_eq!(warnings[0].line(), Some(2));
    assert_eq!(
        warnings[32].kind(),
        &WarningKind::MoreIgnoredKeys { count: keys - 32 }
    );
    assert_eq!(warnings[32].line(), Some(34));
    assert_eq!(
        warnings[32].to_string(),
        format!(
            "<string>:34: {P}uber.threadPool.unknown32: {} ignored keys from here on (unknown, of \
             the other strategy, or given again) are not listed one by one",
            keys - 32
        )
    );
}

#[test]
fn repeated_keys_count_toward_the_same_bounded_list() {
    let mut text = String::new();
    for size in 0..100 {
        writeln!(text, "{P}uber.workQueue.size={size}").unwrap();
    }
    let config = parse("UBER", &text, &RES).unwrap();
    assert_eq!(config.uber.queue_size, 99, "the last value wins");
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 33);
    assert_eq!(
        warnings[0].kind(),
        &WarningKind::DuplicateKey { first_line: 2 }
    );
    assert_eq!(warnings[0].line(), Some(3));
    assert_eq!(
        warnings[32].kind(),
        &WarningKind::MoreIgnoredKeys { count: 99 - 32 }
    );
}

#[test]
fn one_key_more_than_the_list_is_listed_rather_than_counted() {
    let lines: String = (0..33).map(|n| format!("unknown{n}=1\n")).collect();
    let config = parse("UBER", &lines, &RES).unwrap();
    assert_eq!(config.warnings().len(), 33);
    assert!(
        config
            .warnings()
            .iter()
            .all(|w| matches!(w.kind(), WarningKind::UnknownKey { .. }))
    );
    let lines: String = (0..34).map(|n| format!("unknown{n}=1\n")).collect();
    let config = parse("UBER", &lines, &RES).unwrap();
    assert_eq!(
        config.warnings()[32].kind(),
        &WarningKind::MoreIgnoredKeys { count: 2 }
    );
}

#[test]
fn text_larger_than_the_limit_is_refused_before_it_is_parsed() {
    let text = format!(
        "{P}SchedulerPoolStrategy=UBER\n#{}\n",
        "x".repeat(MAX_CONF_BYTES)
    );
    let err = PoolsConfig::parse_named(&text, "big.conf", &RES).unwrap_err();
    assert_eq!(
        err.to_string(),
        "big.conf: larger than 1048576 bytes, the most a scheduler-pools.conf may hold; is it \
         the right file?"
    );
    assert_eq!(err.file(), Some("big.conf"));
}

fn temp_path(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uberpool-limits-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("scheduler-pools.conf")
}

#[test]
fn a_file_larger_than_the_limit_is_refused_naming_it() {
    let path = temp_path("big-file");
    let (mut text, _) = many_unknown_keys();
    text.push_str(&"#".repeat(100));
    assert!(text.len() > MAX_CONF_BYTES);
    std::fs::write(&path, &text).unwrap();
    let err = PoolsConfig::load(&path, &RES).unwrap_err();
    assert!(matches!(err, ConfigError::FileTooLarge { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: larger than 1048576 bytes", path.display()))
    );
    // Just under the limit it reads.
    text.truncate(MAX_CONF_BYTES);
    std::fs::write(&path, &text).unwrap();
    assert!(PoolsConfig::load(&path, &RES).is_ok());
}

#[cfg(target_os = "linux")]
#[test]
fn an_endless_file_is_refused_after_the_limit() {
    let err = PoolsConfig::load("/dev/zero", &RES).unwrap_err();
    assert!(matches!(err, ConfigError::FileTooLarge { .. }), "{err}");
}

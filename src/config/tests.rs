//! Unit tests of configuration discovery, which needs the environment variable's value passed in
//! (tests must not change the process environment), and of the repository's documented file
//! against the crate-private key list. File-format behaviour is tested in `tests/config_*.rs`.

use super::*;

const RES: Resources = Resources::new(4, 1_048_576);

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uberpool-unit-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scheduler-pools.conf");
    std::fs::write(&path, text).unwrap();
    path
}

const DEDICATED: &str = "org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n";

#[test]
fn discovery_without_path_or_variable_gives_the_defaults() {
    let config = discover_from(None, None, &RES).unwrap();
    assert_eq!(config, PoolsConfig::defaults(&RES));
    assert_eq!(config.source(), &ConfigSource::Defaults);
}

#[test]
fn discovery_with_empty_variable_gives_the_defaults() {
    let config = discover_from(None, Some(OsStr::new("")), &RES).unwrap();
    assert_eq!(config.source(), &ConfigSource::Defaults);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads and writes real files, which Miri's isolation forbids"
)]
fn discovery_reads_the_file_named_by_the_variable() {
    let path = temp_file("env", DEDICATED);
    let config = discover_from(None, Some(path.as_os_str()), &RES).unwrap();
    assert_eq!(config.strategy, Strategy::Dedicated);
    assert_eq!(config.source(), &ConfigSource::File(path));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads and writes real files, which Miri's isolation forbids"
)]
fn explicit_path_wins_over_the_variable() {
    let explicit = temp_file("explicit", DEDICATED);
    let config = discover_from(
        Some(&explicit),
        Some(OsStr::new("/nonexistent/uberpool.conf")),
        &RES,
    )
    .unwrap();
    assert_eq!(config.strategy, Strategy::Dedicated);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads and writes real files, which Miri's isolation forbids"
)]
fn named_file_that_does_not_exist_is_an_error_naming_it() {
    let err =
        discover_from(None, Some(OsStr::new("/nonexistent/uberpool.conf")), &RES).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("cannot read '/nonexistent/uberpool.conf': ")
    );
}

#[test]
fn repository_conf_documents_every_key() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scheduler-pools.conf"))
            .unwrap();
    for (key, strategy) in keys::ALL {
        let active = format!("\n{key}=");
        let commented = format!("\n#{key}=");
        match strategy {
            Some(Strategy::Dedicated) => assert!(text.contains(&commented), "{key}"),
            _ => assert!(text.contains(&active), "{key}"),
        }
    }
}

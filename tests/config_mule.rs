//! Mule's configuration test list (its `ThreadPoolsConfigTestCase`), row by row, against
//! uberpool's `PoolsConfig`: existing Mule files must resolve to Mule's numbers and fail with
//! Mule's messages (prefixed with `file:line:`).

use std::time::Duration;

use uberpool::config::InvalidReason;
use uberpool::{ConfigError, PoolSpec, PoolsConfig, Resources, Strategy};

const RES: Resources = Resources::new(4, 1_048_576);
const P: &str = "org.mule.runtime.scheduler.";
/// What uberpool adds to Mule's `For input string: "..."`.
const WHOLE_MILLIS: &str = ": expected a whole number of milliseconds from 0 to \
                            9223372036854775807, such as 30000; decimals and expressions are not \
                            read here";

/// A file selecting `strategy`, followed by `lines` (keys given without the prefix).
fn file(strategy: &str, lines: &[(&str, &str)]) -> String {
    let mut text = format!("{P}SchedulerPoolStrategy={strategy}\n");
    for (key, value) in lines {
        text.push_str(&format!("{P}{key}={value}\n"));
    }
    text
}

fn uber(lines: &[(&str, &str)]) -> Result<PoolsConfig, ConfigError> {
    PoolsConfig::parse(&file("UBER", lines), &RES)
}

fn dedicated(lines: &[(&str, &str)]) -> Result<PoolsConfig, ConfigError> {
    PoolsConfig::parse(&file("DEDICATED", lines), &RES)
}

fn spec(core: usize, max: usize, queue: usize, keep_alive_ms: u64) -> PoolSpec {
    PoolSpec {
        core_size: core,
        max_size: max,
        queue_size: queue,
        keep_alive: Duration::from_millis(keep_alive_ms),
    }
}

#[test]
fn defaults_without_a_file_are_uber_with_mule_sizes() {
    let config = PoolsConfig::defaults(&RES);
    assert_eq!(config.strategy, Strategy::Uber);
    assert_eq!(
        config.graceful_shutdown_timeout,
        Duration::from_millis(15_000)
    );
    assert_eq!(config.uber, spec(4, 160, 0, 30_000));
    assert_eq!(config.cpu_light, spec(8, 8, 0, 0));
    assert_eq!(config.io, spec(4, 160, 0, 30_000));
    assert_eq!(config.cpu_intensive, spec(8, 8, 8, 0));
    assert!(config.warnings().is_empty());
}

#[test]
fn mule_shipped_file_resolves_to_mule_numbers() {
    let config = PoolsConfig::load("tests/data/mule-scheduler-pools.conf", &RES).unwrap();
    assert_eq!(config.strategy, Strategy::Uber);
    assert_eq!(config.uber, spec(4, 160, 0, 30_000));
    assert_eq!(
        config.graceful_shutdown_timeout,
        Duration::from_millis(15_000)
    );
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}

#[test]
fn mule_shipped_file_resolves_like_the_defaults_on_other_machines() {
    for res in [
        Resources::new(1, 262_144),
        Resources::new(2, 8_388_608),
        Resources::new(16, 67_108_864),
        Resources::new(64, 1_073_741_824),
    ] {
        let config = PoolsConfig::load("tests/data/mule-scheduler-pools.conf", &res).unwrap();
        let defaults = PoolsConfig::defaults(&res);
        assert_eq!(config.uber, defaults.uber, "{res:?}");
        // Mule's formula, lowered to uberpool's 32,767 threads per pool (1 TiB gives 209,731).
        assert_eq!(
            config.uber.max_size,
            (res.cores + ((res.mem_kib as usize - 245_760) / 5120)).min(32_767)
        );
    }
}

#[test]
fn dedicated_file_with_odd_spacing_and_upper_case_resolves() {
    let text = format!(
        "{P}SchedulerPoolStrategy =   dedicated  \n\
         {P}gracefulShutdownTimeout   =  15000 \n\
         {P}cpuLight.threadPool.coreSize=   2 *  CORES \n\
         {P}cpuLight.workQueue.size=  0\n\
         {P}io.threadPool.coreSize  =CORES\n\
         {P}io.threadPool.maxSize = MAX(2, CORES + ((MEM - 245760) / 5120))   \n\
         {P}io.workQueue.size =0\n\
         {P}io.threadPool.threadKeepAlive= 30000\n\
         {P}cpuIntensive.threadPool.coreSize =2*cores\n\
         {P}cpuIntensive.workQueue.size = 2 * cores\n"
    );
    let config = PoolsConfig::parse(&text, &RES).unwrap();
    assert_eq!(config.strategy, Strategy::Dedicated);
    assert_eq!(config.cpu_light, spec(8, 8, 0, 0));
    assert_eq!(config.io, spec(4, 160, 0, 30_000));
    assert_eq!(config.cpu_intensive, spec(8, 8, 8, 0));
    // Mule silently ignores the two `threadPool.coreSize` keys; uberpool says so.
    let ignored: Vec<_> = config
        .warnings()
        .iter()
        .map(|w| w.key().to_owned())
        .collect();
    assert_eq!(
        ignored,
        [
            format!("{P}cpuLight.threadPool.coreSize"),
            format!("{P}cpuIntensive.threadPool.coreSize")
        ]
    );
}

#[test]
fn decimals_are_evaluated_in_floating_point() {
    let config = uber(&[
        ("uber.threadPool.coreSize", "0.5 *cores"),
        ("uber.threadPool.maxSize", "cores / 0.5"),
    ])
    .unwrap();
    assert_eq!((config.uber.core_size, config.uber.max_size), (2, 8));
}

#[test]
fn plus_and_minus_are_evaluated() {
    let config = uber(&[
        ("uber.threadPool.coreSize", "cores - 1"),
        ("uber.threadPool.maxSize", "cores + 1"),
    ])
    .unwrap();
    assert_eq!((config.uber.core_size, config.uber.max_size), (3, 5));
}

#[test]
fn times_and_divide_are_evaluated() {
    let config = uber(&[
        ("uber.threadPool.coreSize", "cores / 2"),
        ("uber.threadPool.maxSize", "cores * 2"),
    ])
    .unwrap();
    assert_eq!((config.uber.core_size, config.uber.max_size), (2, 8));
}

#[test]
fn parentheses_change_precedence() {
    let config = uber(&[
        ("uber.threadPool.coreSize", "(cores + 2) * 2"),
        ("uber.threadPool.maxSize", "cores + 2 * 2"),
    ])
    .unwrap();
    assert_eq!((config.uber.core_size, config.uber.max_size), (12, 12));
}

#[test]
fn fixed_numbers_are_accepted() {
    let config = dedicated(&[
        ("cpuLight.threadPool.size", "3"),
        ("io.threadPool.coreSize", "5"),
        ("io.threadPool.maxSize", "17"),
        ("cpuIntensive.threadPool.size", "6"),
        ("cpuIntensive.workQueue.size", "7"),
    ])
    .unwrap();
    assert_eq!(config.cpu_light, spec(3, 3, 0, 0));
    assert_eq!(config.io, spec(5, 17, 0, 30_000));
    assert_eq!(config.cpu_intensive, spec(6, 6, 7, 0));
}

#[test]
fn negative_expression_result_is_refused_as_not_greater_than_zero() {
    let err = uber(&[("uber.threadPool.coreSize", "cores - (cores+1)")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("<string>:2: {P}uber.threadPool.coreSize: Value has to be greater than 0")
    );
    assert_eq!(err.key(), Some(&*format!("{P}uber.threadPool.coreSize")));
    assert_eq!(err.line(), Some(2));
    assert_eq!(err.value(), Some("cores - (cores+1)"));
}

#[test]
fn zero_pool_size_is_refused() {
    let err = dedicated(&[("io.threadPool.maxSize", "0")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("<string>:2: {P}io.threadPool.maxSize: Value has to be greater than 0")
    );
}

#[test]
fn zero_work_queue_size_is_allowed() {
    let config = dedicated(&[
        ("cpuIntensive.workQueue.size", "0"),
        ("io.workQueue.size", "0"),
    ])
    .unwrap();
    assert_eq!(config.cpu_intensive.queue_size, 0);
    assert_eq!(config.io.queue_size, 0);
}

#[test]
fn negative_work_queue_size_is_refused() {
    let err = uber(&[("uber.workQueue.size", "-1")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("<string>:2: {P}uber.workQueue.size: Value has to be greater than or equal to 0")
    );
}

#[test]
fn invalid_expression_is_refused() {
    let err = uber(&[("uber.threadPool.maxSize", "invalid")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}uber.threadPool.maxSize: Expression not valid: unknown name 'invalid' \
             at column 1 (allowed: cores, mem, max(a, b), min(a, b))"
        )
    );
}

#[test]
fn injection_attempt_is_refused_before_evaluation() {
    let err = uber(&[("uber.threadPool.maxSize", "; print('aha!')")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}uber.threadPool.maxSize: Expression not valid: statement separators \
             are not allowed: found ';' at column 1"
        )
    );
}

#[test]
fn non_numeric_shutdown_timeout_is_refused_like_java() {
    let err = uber(&[("gracefulShutdownTimeout", "cores")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}gracefulShutdownTimeout: For input string: \"cores\"{WHOLE_MILLIS}"
        )
    );
    match err {
        ConfigError::InvalidValue {
            reason: InvalidReason::NotAnInteger { input },
            ..
        } => {
            assert_eq!(input, "cores")
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn negative_shutdown_timeout_is_refused() {
    let err = uber(&[("gracefulShutdownTimeout", "-1")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}gracefulShutdownTimeout: Value has to be greater than or equal to 0"
        )
    );
}

#[test]
fn non_numeric_io_keep_alive_is_refused() {
    let err = dedicated(&[("io.threadPool.threadKeepAlive", "cores")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}io.threadPool.threadKeepAlive: For input string: \"cores\"{WHOLE_MILLIS}"
        )
    );
}

#[test]
fn negative_io_keep_alive_is_refused() {
    let err = dedicated(&[("io.threadPool.threadKeepAlive", "-2")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:2: {P}io.threadPool.threadKeepAlive: Value has to be greater than or equal to 0"
        )
    );
}

#[test]
fn zero_shutdown_timeout_and_keep_alive_are_allowed() {
    let config = uber(&[
        ("gracefulShutdownTimeout", "0"),
        ("uber.threadPool.threadKeepAlive", "0"),
    ])
    .unwrap();
    assert_eq!(config.graceful_shutdown_timeout, Duration::ZERO);
    assert_eq!(config.uber.keep_alive, Duration::ZERO);
}

#[test]
fn unbalanced_parenthesis_reports_missing_close() {
    let err = uber(&[("uber.threadPool.coreSize", "(-2")]).unwrap_err();
    assert!(
        err.to_string().contains("missing ) in parenthetical"),
        "{err}"
    );
    assert_eq!(err.line(), Some(2));
}

#[test]
fn missing_expression_key_falls_back_to_its_default() {
    let config = uber(&[("uber.threadPool.coreSize", "2")]).unwrap();
    assert_eq!(config.uber, spec(2, 160, 0, 30_000));
    let config = dedicated(&[("io.threadPool.coreSize", "2")]).unwrap();
    assert_eq!(config.io, spec(2, 160, 0, 30_000));
    assert_eq!(config.cpu_light, spec(8, 8, 0, 0));
}

#[test]
fn missing_number_key_falls_back_to_its_default() {
    let config = dedicated(&[("io.threadPool.coreSize", "2")]).unwrap();
    assert_eq!(
        config.graceful_shutdown_timeout,
        Duration::from_millis(15_000)
    );
    assert_eq!(config.io.keep_alive, Duration::from_millis(30_000));
}

#[test]
fn config_file_is_loaded_from_a_path() {
    let dir = std::env::temp_dir().join(format!("uberpool-config-mule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scheduler-pools.conf");
    std::fs::write(&path, file("DEDICATED", &[("io.threadPool.maxSize", "40")])).unwrap();
    let config = PoolsConfig::load(&path, &RES).unwrap();
    assert_eq!(config.strategy, Strategy::Dedicated);
    assert_eq!(config.io.max_size, 40);
}

#[test]
fn unknown_strategy_is_refused_with_the_lowercased_value() {
    let err = PoolsConfig::parse(&file("Shared ", &[]), &RES).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "<string>:1: {P}SchedulerPoolStrategy: There's no SchedulerPoolStrategy named 'shared'"
        )
    );
}

#[test]
fn file_without_strategy_is_refused_naming_the_file() {
    let err = PoolsConfig::parse_named(
        &format!("{P}uber.threadPool.coreSize=2\n"),
        "conf/scheduler-pools.conf",
        &RES,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Property 'org.mule.runtime.scheduler.SchedulerPoolStrategy' was not specified in file \
         'conf/scheduler-pools.conf'"
    );
    assert_eq!(
        err.key(),
        Some("org.mule.runtime.scheduler.SchedulerPoolStrategy")
    );
}

#[test]
fn other_strategy_keys_are_not_read() {
    let config = uber(&[
        ("io.threadPool.coreSize", "-5"),
        ("cpuLight.threadPool.size", "1"),
    ])
    .unwrap();
    assert_eq!(config.io, PoolsConfig::defaults(&RES).io);
    assert_eq!(config.cpu_light, PoolsConfig::defaults(&RES).cpu_light);
    let config = dedicated(&[("uber.threadPool.coreSize", "invalid")]).unwrap();
    assert_eq!(config.uber, PoolsConfig::defaults(&RES).uber);
}

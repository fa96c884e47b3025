//! The `uberpool` binary, run as a user would: `resolve` (text and JSON, with and without a
//! file, through `--conf` and `$UBERPOOL_CONF`) and `check` (exit status and stderr).

use std::path::PathBuf;
use std::process::{Command, Output};

const P: &str = "org.mule.runtime.scheduler.";

/// Runs the binary with `args` and without `$UBERPOOL_CONF`.
fn uberpool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uberpool"))
        .args(args)
        .env_remove("UBERPOOL_CONF")
        .output()
        .expect("the uberpool binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Writes `text` to a fresh file named `scheduler-pools.conf` and returns its path.
fn conf_file(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uberpool-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scheduler-pools.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn resolve_json_without_a_file_prints_the_defaults_exactly() {
    let output = uberpool(&["resolve", "--json", "--cores", "4", "--mem-kib", "1048576"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "{\"strategy\":\"UBER\",\"graceful_shutdown_timeout_ms\":15000,\"pools\":{\"uber\":{\"core_size\":4,\"max_size\":160,\"queue_size\":0,\"keep_alive_ms\":30000}},\"warnings\":[]}\n"
    );
}

#[test]
fn resolve_json_of_a_dedicated_file_lists_three_pools_and_warnings() {
    let path = conf_file(
        "dedicated",
        &format!(
            "{P}SchedulerPoolStrategy=DEDICATED\n{P}io.threadPool.maxSize=cores * 8\n{P}uber.workQueue.size=3\n"
        ),
    );
    let output = uberpool(&[
        "resolve",
        "--conf",
        path.to_str().unwrap(),
        "--cores=2",
        "--mem-kib=1048576",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "{{\"strategy\":\"DEDICATED\",\"graceful_shutdown_timeout_ms\":15000,\"pools\":{{\"cpuLight\":{{\"core_size\":4,\"max_size\":4,\"queue_size\":0,\"keep_alive_ms\":0}},\"io\":{{\"core_size\":2,\"max_size\":16,\"queue_size\":0,\"keep_alive_ms\":30000}},\"cpuIntensive\":{{\"core_size\":4,\"max_size\":4,\"queue_size\":4,\"keep_alive_ms\":0}}}},\"warnings\":[\"{}:3: {P}uber.workQueue.size: only read when SchedulerPoolStrategy is UBER; ignored under DEDICATED\"]}}\n",
            path.display()
        )
    );
}

#[test]
fn resolve_uses_the_file_named_by_the_environment_variable() {
    let path = conf_file("env", &format!("{P}SchedulerPoolStrategy=DEDICATED\n"));
    let output = Command::new(env!("CARGO_BIN_EXE_uberpool"))
        .args(["resolve", "--json", "--cores", "4", "--mem-kib", "1048576"])
        .env("UBERPOOL_CONF", &path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("{\"strategy\":\"DEDICATED\""),
        "{}",
        stdout(&output)
    );
}

#[test]
fn resolve_prints_a_splash_and_warnings_as_text() {
    let path = conf_file(
        "text",
        &format!("{P}SchedulerPoolStrategy=UBER\n{P}uber.threadPool.coreSise=2\n"),
    );
    let output = uberpool(&[
        "resolve",
        "--conf",
        path.to_str().unwrap(),
        "--cores",
        "4",
        "--mem-kib",
        "1048576",
    ]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.starts_with("Resolved configuration values:\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("uber.threadPool.maxSize:") && l.ends_with(" 160"))
    );
    assert_eq!(
        stderr(&output),
        format!(
            "warning: {}:2: {P}uber.threadPool.coreSise: unknown key, ignored; did you mean '{P}uber.threadPool.coreSize'?\n",
            path.display()
        )
    );
}

#[test]
fn resolve_of_the_repository_file_matches_resolve_without_a_file() {
    let args = ["resolve", "--json", "--cores", "3", "--mem-kib", "2000000"];
    let defaults = uberpool(&args);
    let mut with_file = args.to_vec();
    with_file.extend(["--conf", "scheduler-pools.conf"]);
    let from_file = uberpool(&with_file);
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    assert_eq!(stdout(&from_file), stdout(&defaults));
}

#[test]
fn resolve_with_an_invalid_file_exits_1_with_the_error() {
    let path = conf_file(
        "invalid-resolve",
        &format!("{P}SchedulerPoolStrategy=UBER\n{P}uber.threadPool.coreSize=0\n"),
    );
    let output = uberpool(&["resolve", "--conf", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert_eq!(
        stderr(&output),
        format!(
            "error: {}:2: {P}uber.threadPool.coreSize: Value has to be greater than 0\n",
            path.display()
        )
    );
}

#[test]
fn check_of_a_valid_file_exits_0_with_ok() {
    let output = uberpool(&["check", "scheduler-pools.conf"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "OK: scheduler-pools.conf is valid (strategy UBER, 0 warnings)\n"
    );
    assert!(stderr(&output).is_empty());
}

#[test]
fn check_reports_warnings_of_a_valid_file() {
    let path = conf_file(
        "warnings",
        &format!("{P}SchedulerPoolStrategy=UBER\n{P}threadPool.strategy=UBER\n"),
    );
    let output = uberpool(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).ends_with("is valid (strategy UBER, 1 warning)\n"));
    assert!(
        stderr(&output)
            .contains("did you mean 'org.mule.runtime.scheduler.SchedulerPoolStrategy'?"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_of_an_invalid_file_exits_1_with_the_error_on_stderr() {
    let path = conf_file(
        "invalid",
        &format!("{P}SchedulerPoolStrategy=UBER\n\n{P}uber.threadPool.maxSize=max(2, cores\n"),
    );
    let output = uberpool(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert_eq!(
        stderr(&output),
        format!(
            "error: {}:3: {P}uber.threadPool.maxSize: Expression not valid: missing ) in parenthetical: the '(' at column 4 is never closed\n",
            path.display()
        )
    );
}

#[test]
fn check_of_a_file_without_strategy_exits_1() {
    let path = conf_file("no-strategy", &format!("{P}uber.threadPool.coreSize=2\n"));
    let output = uberpool(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("SchedulerPoolStrategy' was not specified in file"));
}

#[test]
fn check_of_a_missing_file_exits_1() {
    let output = uberpool(&["check", "/nonexistent/scheduler-pools.conf"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: cannot read '/nonexistent/scheduler-pools.conf': ")
    );
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["check"][..],
        &["resolve", "--cores", "zero"][..],
        &["resolve", "--bogus"][..],
    ] {
        let output = uberpool(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains("Usage:"), "{args:?}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    let output = uberpool(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output)
            .contains("uberpool resolve [--conf PATH] [--cores N] [--mem-kib N] [--json]")
    );
    assert!(stdout(&output).contains("uberpool check PATH"));
}

#[test]
fn check_of_a_core_size_beyond_the_machine_exits_1_naming_file_line_and_key() {
    let path = conf_file(
        "huge-core",
        &format!("{P}SchedulerPoolStrategy=UBER\n{P}uber.threadPool.coreSize=2147483647\n"),
    );
    let output = uberpool(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).is_empty());
    let error = stderr(&output);
    assert!(
        error.starts_with(&format!(
            "error: {}:2: {P}uber.threadPool.coreSize: Value has to be at most ",
            path.display()
        )),
        "{error}"
    );
    assert!(
        error.contains("(the expression gives 2147483647)"),
        "{error}"
    );
}

#[test]
fn check_reports_a_maximum_beyond_the_machine_as_lowered() {
    let path = conf_file(
        "huge-max",
        &format!("{P}SchedulerPoolStrategy=UBER\n{P}uber.threadPool.maxSize=2147483647\n"),
    );
    let output = uberpool(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).ends_with("is valid (strategy UBER, 1 warning)\n"));
    assert!(
        stderr(&output).starts_with(&format!(
            "warning: {}:2: {P}uber.threadPool.maxSize: size 2147483647 is more threads than one \
             pool can have here; lowered to ",
            path.display()
        )),
        "{}",
        stderr(&output)
    );
}

/// Runs `uberpool check PATH` under a 1 GiB address-space limit (so that a reader without a size
/// cap fails instead of taking the machine's memory), killed after a generous guard.
#[cfg(target_os = "linux")]
fn check_limited(path: &str) -> Output {
    use std::sync::mpsc;
    use std::time::Duration;
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" check \"$1\"")
        .arg(env!("CARGO_BIN_EXE_uberpool"))
        .arg(path)
        .env_remove("UBERPOOL_CONF")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("uberpool check {path} still reading after 60 s");
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn check_of_an_endless_file_fails_at_once_with_a_clear_error() {
    let output = check_limited("/dev/zero");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: /dev/zero: larger than 1048576 bytes, the most a scheduler-pools.conf may hold; \
         is it the right file?\n"
    );
}

#[test]
fn check_of_a_megabyte_of_unknown_keys_lists_a_bounded_number_of_warnings() {
    let mut text = format!("{P}SchedulerPoolStrategy=UBER\n");
    let mut keys = 0;
    while text.len() < 1_000_000 {
        text.push_str(&format!("{P}io.threadPool.unknown{keys}=1\n"));
        keys += 1;
    }
    let path = conf_file("many-unknown", &text);
    let output = uberpool(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 33);
    assert!(stdout(&output).ends_with("is valid (strategy UBER, 33 warnings)\n"));
}

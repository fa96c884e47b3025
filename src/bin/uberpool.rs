//! The `uberpool` command: resolve and check `scheduler-pools.conf` files.
//!
//! ```text
//! uberpool resolve [--conf PATH] [--cores N] [--mem-kib N] [--json]
//! uberpool check PATH [--cores N] [--mem-kib N]
//! ```
//!
//! Arguments are parsed by hand and JSON is written by the library, so the binary adds no
//! dependency that library users would compile. Exit status: 0 success, 1 invalid
//! configuration (the error on stderr), 2 usage error.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use uberpool::{PoolsConfig, Resources};

const USAGE: &str = "\
Usage:
  uberpool resolve [--conf PATH] [--cores N] [--mem-kib N] [--json]
  uberpool check PATH [--cores N] [--mem-kib N]
  uberpool --help | --version

Commands:
  resolve   Print the resolved scheduler pool configuration (like Mule's startup splash, or one
            JSON object with --json). Without --conf the file named by $UBERPOOL_CONF is used,
            else the built-in defaults.
  check     Validate PATH: print OK and any warnings, exit 1 with the error if it is invalid.
            Thread counts are checked against what this machine lets one pool start.

Options:
  --conf PATH     the scheduler-pools.conf file to read
  --cores N       value of `cores` in expressions (default: CPUs this process may use)
  --mem-kib N     value of `mem` in expressions, in KiB (default: cgroup limit, else RAM)
  --json          print JSON instead of text (resolve only)
  -h, --help      print this help
  -V, --version   print the version

Exit status: 0 success, 1 invalid configuration, 2 usage error.
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Resolve {
        conf: Option<PathBuf>,
        cores: Option<usize>,
        mem_kib: Option<u64>,
        json: bool,
    },
    Check {
        path: PathBuf,
        cores: Option<usize>,
        mem_kib: Option<u64>,
    },
    Help,
    Version,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match parse_args(args) {
        Ok(command) => run(command),
        Err(message) => {
            eprintln!("uberpool: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> ExitCode {
    match command {
        Command::Help => emit(USAGE),
        Command::Version => emit(&format!("uberpool {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Resolve {
            conf,
            cores,
            mem_kib,
            json,
        } => {
            let resources = resources(cores, mem_kib);
            match PoolsConfig::discover(conf.as_deref(), &resources) {
                Ok(config) => {
                    if json {
                        emit(&format!("{}\n", config.to_json()))
                    } else {
                        print_warnings(&config);
                        emit(&format!(
                            "{}\nEvaluated with cores = {}, mem = {} KiB\n",
                            config.splash(),
                            resources.cores,
                            resources.mem_kib
                        ))
                    }
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check {
            path,
            cores,
            mem_kib,
        } => {
            let resources = resources(cores, mem_kib);
            match PoolsConfig::load(&path, &resources) {
                Ok(config) => {
                    let count = config.warnings().len();
                    print_warnings(&config);
                    emit(&format!(
                        "OK: {} is valid (strategy {}, {count} warning{})\n",
                        path.display(),
                        config.strategy,
                        if count == 1 { "" } else { "s" }
                    ))
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// The resources given on the command line, detected where not given. The thread limit per pool
/// is always this machine's, so that `check` refuses what this machine could not start.
fn resources(cores: Option<usize>, mem_kib: Option<u64>) -> Resources {
    let detected = Resources::detect();
    Resources::new(
        cores.unwrap_or(detected.cores),
        mem_kib.unwrap_or(detected.mem_kib),
    )
    .with_max_threads(detected.max_threads)
}

fn print_warnings(config: &PoolsConfig) {
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
}

/// Writes `text` to stdout; a failed write (a closed pipe) is a failure, not a panic.
fn emit(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

/// Parses the arguments after the program name.
fn parse_args(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Err("missing command".to_owned());
    };
    let subcommand = match first.to_str() {
        Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some("-V" | "--version") => return Ok(Command::Version),
        Some(name @ ("resolve" | "check")) => name.to_owned(),
        _ => return Err(format!("unknown command '{}'", first.to_string_lossy())),
    };
    let mut conf = None;
    let mut cores = None;
    let mut mem_kib = None;
    let mut json = false;
    let mut positional: Vec<OsString> = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value)),
            _ => (text.clone(), None),
        };
        let mut value = |name: &str| -> Result<OsString, String> {
            match inline {
                Some(value) => Ok(OsString::from(value)),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--conf" if subcommand == "resolve" => {
                set_once(&mut conf, PathBuf::from(value("--conf")?), "--conf")?;
            }
            "--cores" => {
                let n = parse_count(&value("--cores")?, "--cores")?;
                set_once(
                    &mut cores,
                    usize::try_from(n).map_err(|_| "--cores is too large")?,
                    "--cores",
                )?;
            }
            "--mem-kib" => {
                set_once(
                    &mut mem_kib,
                    parse_count(&value("--mem-kib")?, "--mem-kib")?,
                    "--mem-kib",
                )?;
            }
            "--json" if subcommand == "resolve" && inline.is_none() => {
                if json {
                    return Err("--json given twice".to_owned());
                }
                json = true;
            }
            _ if text.starts_with('-') && text != "-" => {
                return Err(format!("unknown option '{text}' for {subcommand}"));
            }
            _ => positional.push(arg),
        }
    }
    if subcommand == "resolve" {
        if let Some(extra) = positional.first() {
            return Err(format!("unexpected argument '{}'", extra.to_string_lossy()));
        }
        return Ok(Command::Resolve {
            conf,
            cores,
            mem_kib,
            json,
        });
    }
    let mut positional = positional.into_iter();
    let path = positional
        .next()
        .ok_or_else(|| "check needs a PATH".to_owned())?;
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument '{}'", extra.to_string_lossy()));
    }
    Ok(Command::Check {
        path: PathBuf::from(path),
        cores,
        mem_kib,
    })
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), String> {
    if slot.replace(value).is_some() {
        return Err(format!("{name} given twice"));
    }
    Ok(())
}

/// A positive whole number for `--cores` and `--mem-kib`.
fn parse_count(value: &OsString, name: &str) -> Result<u64, String> {
    let text = value.to_string_lossy();
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{name} needs a whole number greater than 0, not '{text}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn resolve_accepts_every_option_in_both_spellings() {
        assert_eq!(
            parse(&[
                "resolve",
                "--conf",
                "a.conf",
                "--cores=4",
                "--mem-kib",
                "1048576",
                "--json"
            ]),
            Ok(Command::Resolve {
                conf: Some(PathBuf::from("a.conf")),
                cores: Some(4),
                mem_kib: Some(1_048_576),
                json: true
            })
        );
    }

    #[test]
    fn check_takes_one_path() {
        assert_eq!(
            parse(&["check", "x.conf"]),
            Ok(Command::Check {
                path: PathBuf::from("x.conf"),
                cores: None,
                mem_kib: None
            })
        );
        assert!(parse(&["check"]).is_err());
        assert!(parse(&["check", "a", "b"]).is_err());
    }

    #[test]
    fn help_and_version_are_recognised() {
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["resolve", "-h"]), Ok(Command::Help));
        assert_eq!(parse(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn usage_errors_are_reported() {
        assert_eq!(parse(&[]), Err("missing command".to_owned()));
        assert_eq!(
            parse(&["frobnicate"]),
            Err("unknown command 'frobnicate'".to_owned())
        );
        assert_eq!(
            parse(&["resolve", "--cores"]),
            Err("--cores needs a value".to_owned())
        );
        assert_eq!(
            parse(&["resolve", "--cores", "0"]),
            Err("--cores needs a whole number greater than 0, not '0'".to_owned())
        );
        assert_eq!(
            parse(&["resolve", "--mem-kib", "lots"]),
            Err("--mem-kib needs a whole number greater than 0, not 'lots'".to_owned())
        );
        assert_eq!(
            parse(&["resolve", "--json", "--json"]),
            Err("--json given twice".to_owned())
        );
        assert_eq!(
            parse(&["resolve", "--conf", "a", "--conf", "b"]),
            Err("--conf given twice".to_owned())
        );
        assert_eq!(
            parse(&["check", "a", "--json"]),
            Err("unknown option '--json' for check".to_owned())
        );
        assert_eq!(
            parse(&["resolve", "stray"]),
            Err("unexpected argument 'stray'".to_owned())
        );
    }
}

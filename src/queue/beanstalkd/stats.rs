//! The `stats-job`, `stats-tube` and `stats` replies: the server's YAML-ish dictionaries read
//! into typed structs.
//!
//! The server writes a `---` line, then one `key: value` line per field; string values may be
//! in double quotes. Only that subset is read. Unknown keys are ignored, so newer servers with
//! more fields work; a missing or malformed field the structs need is an error.

use std::collections::HashMap;
use std::time::Duration;

use super::proto::ProtocolError;

/// The fields of one stats reply, borrowed from its body.
struct Dict<'a> {
    what: &'static str,
    fields: HashMap<&'a str, &'a str>,
}

impl<'a> Dict<'a> {
    fn parse(what: &'static str, body: &'a [u8]) -> Result<Dict<'a>, ProtocolError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ProtocolError::Malformed(format!("{what}: not UTF-8")))?;
        let mut fields = HashMap::new();
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() || line == "---" {
                continue;
            }
            let (key, value) = line.split_once(':').ok_or_else(|| {
                ProtocolError::Malformed(format!("{what}: line without a key: {line:?}"))
            })?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            fields.insert(key.trim(), value);
        }
        Ok(Dict { what, fields })
    }

    fn text(&self, key: &str) -> Result<&'a str, ProtocolError> {
        self.fields
            .get(key)
            .copied()
            .ok_or_else(|| ProtocolError::Malformed(format!("{}: no field {key:?}", self.what)))
    }

    fn number(&self, key: &str) -> Result<u64, ProtocolError> {
        let text = self.text(key)?;
        text.parse().map_err(|_| {
            ProtocolError::Malformed(format!("{}: field {key:?} is {text:?}", self.what))
        })
    }

    /// A field the server prints as a signed number of seconds (`time-left` goes negative when
    /// an expiry is overdue); negative values read as zero.
    fn seconds(&self, key: &str) -> Result<Duration, ProtocolError> {
        let text = self.text(key)?;
        let value: i64 = text.parse().map_err(|_| {
            ProtocolError::Malformed(format!("{}: field {key:?} is {text:?}", self.what))
        })?;
        Ok(Duration::from_secs(value.max(0).unsigned_abs()))
    }

    fn flag(&self, key: &str) -> Result<bool, ProtocolError> {
        match self.text(key)? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(ProtocolError::Malformed(format!(
                "{}: field {key:?} is {other:?}",
                self.what
            ))),
        }
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting to be reserved.
    Ready,
    /// Reserved by a worker until it deletes, releases, buries or touches it, or its TTR ends.
    Reserved,
    /// Waiting for its delay to pass.
    Delayed,
    /// Set aside until kicked (a dead letter).
    Buried,
}

/// One job's `stats-job` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStats {
    /// The job's id.
    pub id: u64,
    /// Its tube.
    pub tube: String,
    /// Its state.
    pub state: JobState,
    /// Its priority (0 is most urgent).
    pub priority: u32,
    /// Time since it was put.
    pub age: Duration,
    /// Its delay, as put or released.
    pub delay: Duration,
    /// Its time to run.
    pub ttr: Duration,
    /// Time until a reserved job's TTR ends or a delayed job becomes ready; zero otherwise.
    pub time_left: Duration,
    /// How many times it was reserved: its delivery count.
    pub reserves: u32,
    /// How many times its TTR ran out while reserved.
    pub timeouts: u32,
    /// How many times it was released.
    pub releases: u32,
    /// How many times it was buried.
    pub buries: u32,
    /// How many times it was kicked.
    pub kicks: u32,
}

fn count(dict: &Dict<'_>, key: &str) -> Result<u32, ProtocolError> {
    let value = dict.number(key)?;
    u32::try_from(value)
        .map_err(|_| ProtocolError::Malformed(format!("{}: field {key:?} is {value}", dict.what)))
}

impl JobStats {
    pub(crate) fn parse(body: &[u8]) -> Result<JobStats, ProtocolError> {
        let dict = Dict::parse("stats-job", body)?;
        let state = match dict.text("state")? {
            "ready" => JobState::Ready,
            "reserved" => JobState::Reserved,
            "delayed" => JobState::Delayed,
            "buried" => JobState::Buried,
            other => {
                return Err(ProtocolError::Malformed(format!(
                    "stats-job: unknown state {other:?}"
                )));
            }
        };
        Ok(JobStats {
            id: dict.number("id")?,
            tube: dict.text("tube")?.to_owned(),
            state,
            priority: count(&dict, "pri")?,
            age: dict.seconds("age")?,
            delay: dict.seconds("delay")?,
            ttr: dict.seconds("ttr")?,
            time_left: dict.seconds("time-left")?,
            reserves: count(&dict, "reserves")?,
            timeouts: count(&dict, "timeouts")?,
            releases: count(&dict, "releases")?,
            buries: count(&dict, "buries")?,
            kicks: count(&dict, "kicks")?,
        })
    }
}

/// One tube's `stats-tube` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TubeStats {
    /// The tube's name.
    pub name: String,
    /// Ready jobs with a priority below 1024.
    pub urgent: u64,
    /// Ready jobs.
    pub ready: u64,
    /// Reserved jobs.
    pub reserved: u64,
    /// Delayed jobs.
    pub delayed: u64,
    /// Buried jobs.
    pub buried: u64,
    /// Jobs ever put into the tube (since the server started).
    pub total_jobs: u64,
    /// Connections using the tube.
    pub using: u64,
    /// Connections watching the tube.
    pub watching: u64,
    /// Connections waiting in a reserve on the tube.
    pub waiting: u64,
    /// `delete` commands for jobs of the tube.
    pub deletes: u64,
}

impl TubeStats {
    pub(crate) fn parse(body: &[u8]) -> Result<TubeStats, ProtocolError> {
        let dict = Dict::parse("stats-tube", body)?;
        Ok(TubeStats {
            name: dict.text("name")?.to_owned(),
            urgent: dict.number("current-jobs-urgent")?,
            ready: dict.number("current-jobs-ready")?,
            reserved: dict.number("current-jobs-reserved")?,
            delayed: dict.number("current-jobs-delayed")?,
            buried: dict.number("current-jobs-buried")?,
            total_jobs: dict.number("total-jobs")?,
            using: dict.number("current-using")?,
            watching: dict.number("current-watching")?,
            waiting: dict.number("current-waiting")?,
            deletes: dict.number("cmd-delete")?,
        })
    }

    /// Jobs in the tube in any state: zero means drained.
    pub fn jobs(&self) -> u64 {
        self.ready + self.reserved + self.delayed + self.buried
    }
}

/// The server-wide `stats` reply (the fields uberpool and its tests use).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Ready jobs in all tubes.
    pub ready: u64,
    /// Reserved jobs in all tubes.
    pub reserved: u64,
    /// Delayed jobs in all tubes.
    pub delayed: u64,
    /// Buried jobs in all tubes.
    pub buried: u64,
    /// Jobs ever put (since the server started).
    pub total_jobs: u64,
    /// Reservations that ended because their TTR ran out.
    pub job_timeouts: u64,
    /// The largest body a `put` may carry (the server's `-z`).
    pub max_job_size: u64,
    /// Open connections.
    pub connections: u64,
    /// The server's process id.
    pub pid: u64,
    /// The server's version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime: Duration,
    /// `true` while the server refuses puts (drain mode).
    pub draining: bool,
}

impl ServerStats {
    pub(crate) fn parse(body: &[u8]) -> Result<ServerStats, ProtocolError> {
        let dict = Dict::parse("stats", body)?;
        Ok(ServerStats {
            ready: dict.number("current-jobs-ready")?,
            reserved: dict.number("current-jobs-reserved")?,
            delayed: dict.number("current-jobs-delayed")?,
            buried: dict.number("current-jobs-buried")?,
            total_jobs: dict.number("total-jobs")?,
            job_timeouts: dict.number("job-timeouts")?,
            max_job_size: dict.number("max-job-size")?,
            connections: dict.number("current-connections")?,
            pid: dict.number("pid")?,
            version: dict.text("version")?.to_owned(),
            uptime: dict.seconds("uptime")?,
            draining: dict.flag("draining")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &[u8] = b"---\nid: 1\ntube: my-tube\nstate: reserved\npri: 5\nage: 0\ndelay: 0\n\
        ttr: 10\ntime-left: 9\nfile: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n";

    #[test]
    fn a_job_reply_reads_into_its_fields() {
        let stats = JobStats::parse(JOB).unwrap();
        assert_eq!(stats.id, 1);
        assert_eq!(stats.tube, "my-tube");
        assert_eq!(stats.state, JobState::Reserved);
        assert_eq!(stats.priority, 5);
        assert_eq!(stats.ttr, Duration::from_secs(10));
        assert_eq!(stats.time_left, Duration::from_secs(9));
        assert_eq!(stats.reserves, 1);
    }

    #[test]
    fn an_overdue_time_left_reads_as_zero() {
        let text = String::from_utf8(JOB.to_vec())
            .unwrap()
            .replace("time-left: 9", "time-left: -2");
        let stats = JobStats::parse(text.as_bytes()).unwrap();
        assert_eq!(stats.time_left, Duration::ZERO);
    }

    #[test]
    fn a_server_reply_unquotes_its_version() {
        let body =
            b"---\ncurrent-jobs-ready: 1\ncurrent-jobs-reserved: 0\ncurrent-jobs-delayed: 0\n\
            current-jobs-buried: 0\ntotal-jobs: 1\njob-timeouts: 0\nmax-job-size: 65535\n\
            current-connections: 1\npid: 9\nversion: \"1.12\"\nuptime: 2\ndraining: false\n\
            hostname: vm\nos: #1 SMP PREEMPT_DYNAMIC @0\n";
        let stats = ServerStats::parse(body).unwrap();
        assert_eq!(stats.version, "1.12");
        assert_eq!(stats.max_job_size, 65_535);
        assert!(!stats.draining);
    }

    #[test]
    fn missing_and_malformed_fields_are_errors() {
        assert!(JobStats::parse(b"---\nid: 1\n").is_err());
        let text = String::from_utf8(JOB.to_vec())
            .unwrap()
            .replace("pri: 5", "pri: 99999999999");
        assert!(JobStats::parse(text.as_bytes()).is_err());
        assert!(JobStats::parse(b"---\nno colon here\n").is_err());
        assert!(JobStats::parse(&[0xff, 0xfe]).is_err());
        assert!(TubeStats::parse(b"---\nname: t\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = JobStats::parse(&body);
            let _ = TubeStats::parse(&body);
            let _ = ServerStats::parse(&body);
        }
    }
}

//! The beanstalkd client against a real server started by each test (every command, the error
//! replies a real server gives, reconnecting, pipelined batches) and against a scripted server
//! on loopback for the replies a well-behaved client cannot provoke (`OUT_OF_MEMORY`,
//! `INTERNAL_ERROR`, `BAD_FORMAT`, `UNKNOWN_COMMAND`, `EXPECTED_CRLF`, garbage, silence).

mod queue_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use queue_common::{Beanstalkd, jobs_in, tube, tube_stats, wait_until};
use uberpool::queue::beanstalkd::{
    Backoff, Client, Error, JobState, Producer, PutOptions, ServerStats,
};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn put_reserve_and_delete_carry_priority_delay_and_ttr() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut client = server.client();
    let tube = tube("basic");
    client.use_tube(&tube).unwrap();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    let options = PutOptions::new().priority(7).ttr(Duration::from_secs(30));
    let id = client.put(b"hello\r\nworld", options).unwrap();
    let stats = client.stats_job(id).unwrap();
    assert_eq!(
        (stats.priority, stats.ttr, stats.state),
        (7, Duration::from_secs(30), JobState::Ready)
    );
    assert_eq!(stats.tube, tube);

    let job = client.reserve_with_timeout(SECOND).unwrap();
    assert_eq!((job.id, &job.body[..]), (id, &b"hello\r\nworld"[..]));
    let stats = client.stats_job(id).unwrap();
    assert_eq!((stats.state, stats.reserves), (JobState::Reserved, 1));
    client.delete(id).unwrap();
    assert!(matches!(client.stats_job(id), Err(Error::NotFound)));
    assert!(matches!(client.delete(id), Err(Error::NotFound)));
}

#[test]
fn a_delayed_put_waits_and_a_poll_times_out() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut client = server.client();
    let tube = tube("delay");
    client.use_tube(&tube).unwrap();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    let id = client
        .put(b"later", PutOptions::new().delay(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(client.stats_job(id).unwrap().state, JobState::Delayed);
    assert!(matches!(
        client.reserve_with_timeout(Duration::ZERO),
        Err(Error::TimedOut)
    ));
    // kick moves delayed jobs when none is buried.
    assert_eq!(client.kick(10).unwrap(), 1);
    assert_eq!(client.reserve_with_timeout(SECOND).unwrap().id, id);
}

#[test]
fn watch_and_ignore_choose_the_tubes_reserve_takes_from() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut client = server.client();
    let (a, b) = (tube("a"), tube("b"));
    client.use_tube(&a).unwrap();
    client.put(b"from a", PutOptions::new()).unwrap();
    client.use_tube(&b).unwrap();
    client.put(b"from b", PutOptions::new()).unwrap();
    assert_eq!(client.using(), b);

    assert_eq!(client.watch(&b).unwrap(), 2);
    assert_eq!(client.ignore("default").unwrap(), 1);
    assert_eq!(client.watching(), std::slice::from_ref(&b));
    assert_eq!(client.reserve_with_timeout(SECOND).unwrap().body, b"from b");
    assert!(matches!(client.ignore(&b), Err(Error::NotIgnored)));
    assert!(matches!(
        client.reserve_with_timeout(Duration::ZERO),
        Err(Error::TimedOut)
    ));
    client.watch(&a).unwrap();
    assert_eq!(client.reserve_with_timeout(SECOND).unwrap().body, b"from a");
    assert!(matches!(
        client.use_tube("-bad"),
        Err(Error::InvalidTube { .. })
    ));
    assert!(matches!(
        client.watch(&"x".repeat(201)),
        Err(Error::InvalidTube { .. })
    ));
}

#[test]
fn release_bury_kick_and_touch_move_a_job_through_its_states() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut client = server.client();
    let tube = tube("life");
    client.use_tube(&tube).unwrap();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    let id = client.put(b"job", PutOptions::new().priority(5)).unwrap();

    let job = client.reserve_with_timeout(SECOND).unwrap();
    client.touch(job.id).unwrap();
    client
        .release(job.id, 9, Duration::from_secs(3600))
        .unwrap();
    let stats = client.stats_job(id).unwrap();
    assert_eq!(
        (stats.state, stats.priority, stats.releases),
        (JobState::Delayed, 9, 1)
    );
    client.kick_job(id).unwrap();
    assert_eq!(client.stats_job(id).unwrap().state, JobState::Ready);

    let job = client.reserve_with_timeout(SECOND).unwrap();
    client.bury(job.id, 3).unwrap();
    let stats = client.stats_job(id).unwrap();
    assert_eq!(
        (stats.state, stats.priority, stats.buries),
        (JobState::Buried, 3, 1)
    );
    assert_eq!(tube_stats(&mut client, &tube).unwrap().buried, 1);
    assert_eq!(client.kick(5).unwrap(), 1);
    assert_eq!(client.stats_job(id).unwrap().kicks, 2); // kick-job, then kick
    assert!(matches!(client.kick_job(id), Err(Error::NotFound)));

    // Only the reserving connection may release, bury or touch.
    let job = client.reserve_with_timeout(SECOND).unwrap();
    let mut other = server.client();
    assert!(matches!(other.touch(job.id), Err(Error::NotFound)));
    assert!(matches!(
        other.release(job.id, 1, Duration::ZERO),
        Err(Error::NotFound)
    ));
    assert!(matches!(other.bury(job.id, 1), Err(Error::NotFound)));
    assert!(matches!(other.delete(job.id), Err(Error::NotFound)));
    client.delete(job.id).unwrap();
}

#[test]
fn stats_tube_counts_jobs_and_an_unknown_tube_is_not_found() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut client = server.client();
    let tube = tube("count");
    client.use_tube(&tube).unwrap();
    for _ in 0..3 {
        client.put(b"x", PutOptions::new().priority(10)).unwrap();
    }
    client
        .put(b"y", PutOptions::new().delay(Duration::from_secs(600)))
        .unwrap();
    let stats = tube_stats(&mut client, &tube).unwrap();
    assert_eq!(
        (stats.ready, stats.urgent, stats.delayed, stats.total_jobs),
        (3, 3, 1, 4)
    );
    assert_eq!(stats.jobs(), 4);
    assert!(matches!(
        client.stats_tube("no-such-tube"),
        Err(Error::NotFound)
    ));
    let server_stats: ServerStats = client.stats().unwrap();
    assert!(server_stats.ready >= 3);
    assert_eq!(server_stats.max_job_size, 65_535);
    assert!(!server_stats.draining);
}

#[test]
fn a_reserve_while_holding_a_job_near_its_deadline_says_deadline_soon() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut client = server.client();
    let tube = tube("deadline");
    client.use_tube(&tube).unwrap();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    // With a TTR of one second a reservation starts inside the server's one-second margin.
    client.put(b"short", PutOptions::new().ttr(SECOND)).unwrap();
    client.reserve_with_timeout(SECOND).unwrap();
    assert!(matches!(
        client.reserve_with_timeout(Duration::from_secs(5)),
        Err(Error::DeadlineSoon)
    ));
}

#[test]
fn an_expired_ttr_returns_the_job_to_ready_when_its_worker_stops_touching_it() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut worker = server.client();
    let tube = tube("ttr");
    worker.use_tube(&tube).unwrap();
    worker.watch(&tube).unwrap();
    worker.ignore("default").unwrap();
    let id = worker
        .put(b"slow", PutOptions::new().ttr(Duration::from_secs(2)))
        .unwrap();
    let job = worker.reserve_with_timeout(SECOND).unwrap();
    worker.touch(job.id).unwrap(); // touched once, then never again
    // The holder keeps talking (its own stats-job) so the server re-checks its deadlines.
    wait_until("the TTR to expire", || {
        let stats = worker.stats_job(id).unwrap();
        stats.state == JobState::Ready && stats.timeouts == 1
    });
    assert!(matches!(worker.touch(id), Err(Error::NotFound)));
    let mut other = server.client();
    other.watch(&tube).unwrap();
    assert_eq!(other.reserve_with_timeout(SECOND).unwrap().id, id);
    assert_eq!(other.stats_job(id).unwrap().reserves, 2);
}

#[test]
fn bodies_over_the_limit_are_refused_before_sending_and_by_the_server() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut small = Client::builder(server.addr())
        .max_body(10)
        .connect()
        .unwrap();
    let tube = tube("big");
    small.use_tube(&tube).unwrap();
    assert!(matches!(
        small.put(&[0; 11], PutOptions::new()),
        Err(Error::BodyTooLarge {
            size: 11,
            limit: 10
        })
    ));
    small.put(&[0; 10], PutOptions::new()).unwrap();
    assert_eq!(tube_stats(&mut small, &tube).unwrap().total_jobs, 1);

    let mut large = Client::builder(server.addr())
        .max_body(1 << 20)
        .connect()
        .unwrap();
    large.use_tube(&tube).unwrap();
    large.put(&vec![7; 65_535], PutOptions::new()).unwrap();
    assert!(matches!(
        large.put(&vec![7; 65_536], PutOptions::new()),
        Err(Error::JobTooBig)
    ));
    // The server skipped the body: the connection is still in step.
    assert!(large.is_connected());
    large.put(b"after", PutOptions::new()).unwrap();
    assert_eq!(tube_stats(&mut large, &tube).unwrap().total_jobs, 3);
}

#[test]
fn a_draining_server_refuses_puts() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let mut client = server.client();
    client.put(b"before", PutOptions::new()).unwrap();
    server.signal("USR1");
    wait_until("drain mode", || client.stats().unwrap().draining);
    assert!(matches!(
        client.put(b"after", PutOptions::new()),
        Err(Error::Draining)
    ));
    assert!(client.is_connected());
}

#[test]
fn a_restarted_server_is_dialled_again_with_the_tubes_restored() {
    let Some(mut server) = Beanstalkd::start() else {
        return;
    };
    let mut client = Client::builder(server.addr())
        .reconnect(Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(500),
            attempts: 100,
        })
        .connect()
        .unwrap();
    let tube = tube("again");
    client.use_tube(&tube).unwrap();
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    assert_eq!(client.generation(), 1);
    server.restart();
    // The first command finds the old connection dead, and says so.
    let error = client.put(b"lost?", PutOptions::new()).unwrap_err();
    assert!(error.is_connection_error(), "{error}");
    assert!(!client.is_connected());
    // The next dials again and restores `use` and the watch list.
    let id = client.put(b"after restart", PutOptions::new()).unwrap();
    assert_eq!(client.generation(), 2);
    assert_eq!(client.stats_job(id).unwrap().tube, tube);
    assert_eq!(client.reserve_with_timeout(SECOND).unwrap().id, id);
}

#[test]
fn a_connection_to_nothing_fails_with_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = Client::builder(format!("127.0.0.1:{port}"))
        .connect_timeout(SECOND)
        .connect()
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error}");
}

#[test]
fn a_batch_is_pipelined_in_chunks_and_an_oversized_body_fails_alone() {
    let Some(server) = Beanstalkd::start() else {
        return;
    };
    let tube = tube("batch");
    let mut producer = Producer::connect(server.addr(), &tube).unwrap();
    let mut bodies: Vec<Vec<u8>> = (0..1_500)
        .map(|i| format!("job {i}").into_bytes())
        .collect();
    bodies[700] = vec![0; 70_000];
    let results = producer.put_batch(bodies.iter().map(|b| (&b[..], PutOptions::new())));
    assert_eq!(results.len(), 1_500);
    assert!(matches!(results[700], Err(Error::BodyTooLarge { .. })));
    let ids: Vec<u64> = results
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 700)
        .map(|(_, r)| *r.as_ref().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in put order");
    let client = producer.client();
    assert_eq!(jobs_in(client, &tube), 1_499);
    client.watch(&tube).unwrap();
    client.ignore("default").unwrap();
    assert_eq!(client.reserve_with_timeout(SECOND).unwrap().body, b"job 0");
}

/// A server on loopback that answers each command line with the next scripted reply (or
/// closes, or stays silent), for replies a real server gives only to broken clients.
fn scripted(replies: Vec<Option<&'static [u8]>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut replies = replies.into_iter();
        // Each connection gets the next replies; `None` closes the connection.
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(size) = line
                    .strip_prefix("put ")
                    .and_then(|l| l.split_whitespace().nth(3))
                {
                    let mut body = vec![0; size.parse::<usize>().unwrap() + 2];
                    reader.read_exact(&mut body).unwrap();
                }
                match replies.next() {
                    Some(Some(reply)) => writer.write_all(reply).unwrap(),
                    Some(None) => break,
                    None => {
                        // Out of script: stay silent until the client gives up.
                        let mut rest = Vec::new();
                        let _ = reader.read_to_end(&mut rest);
                        return;
                    }
                }
            }
        }
    });
    addr
}

#[test]
fn every_server_error_reply_is_a_typed_error() {
    type Case = (&'static [u8], fn(&Error) -> bool, bool);
    let cases: [Case; 8] = [
        (
            b"OUT_OF_MEMORY\r\n",
            |e| matches!(e, Error::OutOfMemory),
            false,
        ),
        (
            b"INTERNAL_ERROR\r\n",
            |e| matches!(e, Error::InternalError),
            true,
        ),
        (b"BAD_FORMAT\r\n", |e| matches!(e, Error::BadFormat), true),
        (
            b"UNKNOWN_COMMAND\r\n",
            |e| matches!(e, Error::UnknownCommand),
            true,
        ),
        (
            b"EXPECTED_CRLF\r\n",
            |e| matches!(e, Error::ExpectedCrlf),
            true,
        ),
        (
            b"BURIED 12\r\n",
            |e| matches!(e, Error::Buried { id: Some(12) }),
            false,
        ),
        (b"DRAINING\r\n", |e| matches!(e, Error::Draining), false),
        (b"JOB_TOO_BIG\r\n", |e| matches!(e, Error::JobTooBig), false),
    ];
    for (reply, is_expected, drops_connection) in cases {
        let addr = scripted(vec![Some(reply), Some(b"INSERTED 1\r\n")]);
        let mut client = Client::connect(addr).unwrap();
        let error = client.put(b"x", PutOptions::new()).unwrap_err();
        assert!(
            is_expected(&error),
            "{}: got {error}",
            String::from_utf8_lossy(reply)
        );
        assert_eq!(!client.is_connected(), drops_connection, "{error}");
    }
    // A release the server turns into a burial.
    let addr = scripted(vec![Some(b"BURIED\r\n")]);
    let error = Client::connect(addr)
        .unwrap()
        .release(5, 1, Duration::ZERO)
        .unwrap_err();
    assert!(matches!(error, Error::Buried { id: Some(5) }), "{error}");
}

#[test]
fn garbage_a_wrong_reply_and_a_closed_connection_drop_the_connection() {
    let addr = scripted(vec![Some(b"\xff\xfe garbage\r\n")]);
    let mut client = Client::connect(addr).unwrap();
    assert!(matches!(client.delete(1), Err(Error::Protocol(_))));
    assert!(!client.is_connected());

    let addr = scripted(vec![Some(b"TOUCHED\r\n")]);
    let mut client = Client::connect(addr).unwrap();
    assert!(matches!(
        client.delete(1),
        Err(Error::UnexpectedReply {
            command: "delete",
            ..
        })
    ));
    assert!(!client.is_connected());

    let addr = scripted(vec![None]);
    let mut client = Client::connect(addr).unwrap();
    assert!(matches!(client.delete(1), Err(Error::Closed)));
}

#[test]
fn a_silent_server_times_out_within_the_io_timeout() {
    let addr = scripted(vec![]);
    let mut client = Client::builder(addr)
        .io_timeout(Duration::from_millis(200))
        .connect()
        .unwrap();
    let started = Instant::now();
    let error = client.delete(1).unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!client.is_connected());
}

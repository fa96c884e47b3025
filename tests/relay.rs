//! The example SMTP relay (`examples/email/relay/`), spoken to over loopback: the dialogue a
//! plaintext client needs (with dot-unstuffing and out-of-order commands refused), duplicate
//! messages dropped by their `X-Idempotency-Key`, and the capacity model (latency that grows with
//! the sessions beyond K, `421` beyond the hard limit, K changed while running). Every step waits
//! for the relay's answer on the socket; nothing sleeps to synchronize.

#[allow(dead_code)]
#[path = "../examples/email/relay/mod.rs"]
mod relay;

#[allow(dead_code)]
#[path = "../examples/email/client.rs"]
mod client;

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use client::{Mailer, SendError};
use relay::{Capacity, IDEMPOTENCY_HEADER, Relay, RelayOptions};

/// A failure guard only: every read is answered at once unless the relay is broken.
const GUARD: Duration = Duration::from_secs(30);

/// A raw SMTP client: one command per line, one reply (possibly multi-line) per command.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and returns the client with the relay's first reply (the greeting, or `421`).
    fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).expect("relay reachable");
        stream.set_read_timeout(Some(GUARD)).unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = client.reply();
        (client, greeting)
    }

    /// Reads one reply: lines until one whose fourth character is a space.
    fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .expect("reply before the guard");
            assert!(read > 0, "connection closed; reply so far: {reply:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    /// `true` once the relay has closed the connection (reads to the end).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }

    /// A whole transaction; returns the reply to the end of `DATA`.
    fn send(&mut self, to: &str, message: &str) -> String {
        assert!(
            self.command("MAIL FROM:<news@example.com>")
                .starts_with("250")
        );
        assert!(self.command(&format!("RCPT TO:<{to}>")).starts_with("250"));
        assert!(self.command("DATA").starts_with("354"));
        self.writer.write_all(message.as_bytes()).unwrap();
        self.command(".")
    }
}

fn code(reply: &str) -> &str {
    &reply[..3]
}

fn plain_relay() -> Relay {
    Relay::start(RelayOptions::default()).expect("relay starts")
}

fn capacity_relay(soft_limit: usize, hard_limit: usize) -> Relay {
    Relay::start(RelayOptions {
        refuse_first_percent: 0,
        capacity: Some(Capacity {
            soft_limit,
            base_latency: Duration::from_millis(1),
            latency_per_excess: Duration::from_millis(3),
            hard_limit,
        }),
    })
    .expect("relay starts")
}

#[test]
fn a_message_is_accepted_and_dot_unstuffed() {
    let relay = plain_relay();
    let (mut client, greeting) = Client::connect(relay.addr());
    assert_eq!(code(&greeting), "220");
    let ehlo = client.command("EHLO client.example.com");
    assert!(ehlo.starts_with("250-"), "{ehlo}");
    assert!(ehlo.lines().last().unwrap().starts_with("250 "), "{ehlo}");
    // The client stuffs a dot before each line that begins with one; ".." is not the end.
    let reply = client.send(
        "ada@example.com",
        "Subject: dots\r\n\r\n..\r\n..hidden\r\nplain\r\n",
    );
    assert_eq!(code(&reply), "250", "{reply}");
    assert_eq!(code(&client.command("QUIT")), "221");
    assert!(client.closed());
    let log = relay.stop();
    assert_eq!(log.messages, 1);
    assert_eq!(log.accepted["ada@example.com"], 1);
    let stored = "Subject: dots\r\n\r\n.\r\n.hidden\r\nplain\r\n";
    assert_eq!(log.bytes, stored.len() as u64);
}

#[test]
fn commands_out_of_order_are_refused_and_rset_clears_the_transaction() {
    let relay = plain_relay();
    let (mut client, _) = Client::connect(relay.addr());
    assert_eq!(code(&client.command("MAIL FROM:<a@example.com>")), "503");
    assert_eq!(code(&client.command("HELO client")), "250");
    assert_eq!(code(&client.command("RCPT TO:<b@example.com>")), "503");
    assert_eq!(code(&client.command("DATA")), "503");
    assert_eq!(code(&client.command("MAIL FROM:<a@example.com>")), "250");
    assert_eq!(code(&client.command("MAIL FROM:<a@example.com>")), "503");
    assert_eq!(code(&client.command("RCPT TO:<b@example.com>")), "250");
    assert_eq!(code(&client.command("RSET")), "250");
    assert_eq!(code(&client.command("DATA")), "503");
    assert_eq!(code(&client.command("NOOP")), "250");
    assert_eq!(code(&client.command("VRFY b@example.com")), "502");
    assert_eq!(code(&client.command("MAIL FROM:a@example.com")), "501");
    assert_eq!(code(&client.command(&"X".repeat(70_000))), "500");
    assert_eq!(code(&client.command("QUIT")), "221");
    assert_eq!(relay.stop().messages, 0);
}

fn letter(key: Option<&str>) -> String {
    let key = key.map_or(String::new(), |key| {
        format!("{IDEMPOTENCY_HEADER}: {key}\n")
    });
    format!("From: news@example.com\n{key}Subject: hello\n\nDear reader\n.signature\n")
}

#[test]
fn a_repeated_idempotency_key_is_dropped_and_counted_as_a_duplicate() {
    let relay = plain_relay();
    let mailer = Mailer::new(relay.addr(), 2, GUARD);
    let send = |to: &str, key| mailer.send("news@example.com", to, &letter(key));
    // The sender sees every send succeed: a duplicate is answered 250 and dropped.
    send("ada@example.com", Some("k-1")).unwrap();
    send("ada@example.com", Some("k-1")).unwrap();
    send("grace@example.com", Some("k-1")).unwrap();
    send("ada@example.com", Some("k-2")).unwrap();
    send("ada@example.com", None).unwrap();
    send("ada@example.com", None).unwrap();
    drop(mailer);
    let log = relay.stop();
    assert_eq!(log.duplicates, 2);
    assert_eq!(log.messages, 4);
    assert_eq!(log.accepted["ada@example.com"], 4);
    assert!(!log.accepted.contains_key("grace@example.com"));
    assert_eq!(log.answered.len(), 6);
    // The client stuffed the dot of ".signature"; the relay stored it unstuffed.
    let stored = letter(Some("k-1")).replace('\n', "\r\n").len()
        + letter(Some("k-2")).replace('\n', "\r\n").len()
        + 2 * letter(None).replace('\n', "\r\n").len();
    assert_eq!(log.bytes, stored as u64);
}

#[test]
fn the_client_reports_a_refusal_as_transient_and_reuses_its_connection() {
    let relay = Relay::start(RelayOptions {
        refuse_first_percent: 100,
        capacity: None,
    })
    .expect("relay starts");
    let mailer = Mailer::new(relay.addr(), 1, GUARD);
    let refused = mailer
        .send("news@example.com", "ada@example.com", &letter(None))
        .unwrap_err();
    assert!(
        matches!(refused, SendError::Refused { code: 450, .. }),
        "{refused}"
    );
    assert!(refused.is_transient());
    mailer
        .send("news@example.com", "ada@example.com", &letter(None))
        .unwrap();
    // Both transactions went over the one pooled connection (reset after the refusal).
    assert_eq!(relay.log().peak_sessions, 1);
    drop(mailer);
    let log = relay.stop();
    assert_eq!(log.messages, 1);
    assert!(log.refused_first.contains("ada@example.com"));
}

#[test]
fn a_folded_idempotency_key_is_read_whole() {
    let relay = plain_relay();
    let (mut client, _) = Client::connect(relay.addr());
    client.command("EHLO client");
    let folded = "x-idempotency-key: part-one\r\n\tpart-two\r\nSubject: a\r\n\r\nbody\r\n";
    let same = "X-Idempotency-Key: part-one part-two\r\n\r\nbody\r\n";
    let other = "X-Idempotency-Key: part-one\r\n\r\nbody\r\n";
    assert_eq!(code(&client.send("a@example.com", folded)), "250");
    assert_eq!(code(&client.send("a@example.com", same)), "250");
    assert_eq!(code(&client.send("a@example.com", other)), "250");
    let log = relay.stop();
    assert_eq!((log.messages, log.duplicates), (2, 1));
}

#[test]
fn latency_grows_with_the_sessions_beyond_the_soft_limit_and_follows_a_new_limit() {
    let relay = capacity_relay(2, 10);
    // Four sessions open: each is counted before its greeting is written.
    let mut clients: Vec<Client> = (0..4)
        .map(|_| {
            let (client, greeting) = Client::connect(relay.addr());
            assert_eq!(code(&greeting), "220");
            client
        })
        .collect();
    assert_eq!(relay.sessions(), 4);
    let sender = &mut clients[0];
    sender.command("EHLO client");
    let started = Instant::now();
    assert_eq!(code(&sender.send("a@example.com", "\r\nbody\r\n")), "250");
    let waited = started.elapsed();
    // base 1 ms + 3 ms for each of the 2 sessions beyond K = 2.
    let expected = Duration::from_millis(7);
    assert_eq!(relay.log().answered, vec![(4, expected)]);
    assert!(waited >= expected, "answered after {waited:?}");

    relay.set_soft_limit(4);
    assert_eq!(relay.capacity().unwrap().soft_limit, 4);
    assert_eq!(code(&sender.send("a@example.com", "\r\nbody\r\n")), "250");
    assert_eq!(relay.log().answered[1], (4, Duration::from_millis(1)));

    relay.set_soft_limit(1);
    assert_eq!(code(&sender.send("a@example.com", "\r\nbody\r\n")), "250");
    assert_eq!(relay.log().answered[2], (4, Duration::from_millis(10)));
    let log = relay.stop();
    assert_eq!(log.messages, 3);
    assert_eq!(log.peak_sessions, 4);
}

#[test]
fn sessions_beyond_the_hard_limit_are_answered_421_until_one_leaves() {
    let relay = capacity_relay(1, 2);
    let (mut first, greeting) = Client::connect(relay.addr());
    assert_eq!(code(&greeting), "220");
    let (_second, greeting) = Client::connect(relay.addr());
    assert_eq!(code(&greeting), "220");
    let (mut third, greeting) = Client::connect(relay.addr());
    assert_eq!(code(&greeting), "421", "{greeting}");
    assert!(third.closed());
    assert_eq!(relay.log().refused_busy, 1);

    // The relay forgets a session before the client sees its connection close.
    assert_eq!(code(&first.command("QUIT")), "221");
    assert!(first.closed());
    let (mut fourth, greeting) = Client::connect(relay.addr());
    assert_eq!(code(&greeting), "220");
    fourth.command("HELO client");
    assert_eq!(code(&fourth.send("a@example.com", "\r\nbody\r\n")), "250");
    let log = relay.stop();
    assert_eq!(
        (log.messages, log.refused_busy, log.peak_sessions),
        (1, 1, 2)
    );
}

#[test]
fn stopping_the_relay_closes_its_open_sessions() {
    let relay = plain_relay();
    let (mut idle, _) = Client::connect(relay.addr());
    let log = relay.stop();
    assert!(idle.closed());
    assert_eq!(log.messages, 0);
}

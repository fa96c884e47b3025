//! Tests of the wire format: every reply form, every error word, and property tests that the
//! parser survives arbitrary and truncated input.

use super::*;
use proptest::prelude::*;

fn complete(bytes: &[u8]) -> (Reply, usize) {
    match parse_reply(bytes) {
        Ok(Parsed::Complete(reply, used)) => (reply, used),
        other => panic!("{:?}: expected a complete reply, got {other:?}", bytes),
    }
}

#[test]
fn commands_encode_as_the_protocol_spells_them() {
    let cases: Vec<(Command<'_>, &[u8])> = vec![
        (
            Command::Put {
                pri: 7,
                delay: 2,
                ttr: 60,
                body: b"hi\r\nthere",
            },
            b"put 7 2 60 9\r\nhi\r\nthere\r\n",
        ),
        (Command::Use("mail"), b"use mail\r\n"),
        (Command::Watch("a(b)"), b"watch a(b)\r\n"),
        (Command::Ignore("default"), b"ignore default\r\n"),
        (
            Command::ReserveWithTimeout(5),
            b"reserve-with-timeout 5\r\n",
        ),
        (
            Command::Delete(u64::MAX),
            b"delete 18446744073709551615\r\n",
        ),
        (
            Command::Release {
                id: 3,
                pri: 1,
                delay: 9,
            },
            b"release 3 1 9\r\n",
        ),
        (Command::Bury { id: 3, pri: 0 }, b"bury 3 0\r\n"),
        (Command::Touch(4), b"touch 4\r\n"),
        (Command::Kick(10), b"kick 10\r\n"),
        (Command::KickJob(11), b"kick-job 11\r\n"),
        (Command::StatsJob(12), b"stats-job 12\r\n"),
        (Command::StatsTube("t"), b"stats-tube t\r\n"),
        (Command::Stats, b"stats\r\n"),
    ];
    for (command, wire) in cases {
        let mut out = Vec::new();
        command.encode(&mut out);
        assert_eq!(out, wire, "{}", command.name());
    }
}

#[test]
fn tube_names_follow_the_protocol() {
    for good in [
        "default",
        "a",
        "mail.out-1",
        "x+y/z;w$v_u(t)",
        &"t".repeat(200),
    ] {
        assert_eq!(check_tube_name(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "-lead",
        "sp ace",
        "new\nline",
        "ümlaut",
        "star*",
        &"t".repeat(201),
    ] {
        assert!(check_tube_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_reply_form_parses() {
    let cases: Vec<(&[u8], Reply)> = vec![
        (b"INSERTED 42\r\n", Reply::Inserted(42)),
        (b"BURIED 43\r\n", Reply::BuriedId(43)),
        (b"BURIED\r\n", Reply::Buried),
        (b"USING mail\r\n", Reply::Using("mail".into())),
        (
            b"RESERVED 5 3\r\nabc\r\n",
            Reply::Reserved {
                id: 5,
                body: b"abc".to_vec(),
            },
        ),
        (
            b"RESERVED 6 0\r\n\r\n",
            Reply::Reserved {
                id: 6,
                body: Vec::new(),
            },
        ),
        (b"DELETED\r\n", Reply::Deleted),
        (b"RELEASED\r\n", Reply::Released),
        (b"TOUCHED\r\n", Reply::Touched),
        (b"KICKED 3\r\n", Reply::KickedCount(3)),
        (b"KICKED\r\n", Reply::Kicked),
        (b"WATCHING 2\r\n", Reply::Watching(2)),
        (b"OK 4\r\n---\n\r\n", Reply::Ok(b"---\n".to_vec())),
    ];
    for (wire, reply) in cases {
        assert_eq!(complete(wire), (reply, wire.len()));
    }
}

#[test]
fn every_error_word_parses() {
    let words: [(&[u8], ServerError); 11] = [
        (b"OUT_OF_MEMORY", ServerError::OutOfMemory),
        (b"INTERNAL_ERROR", ServerError::InternalError),
        (b"BAD_FORMAT", ServerError::BadFormat),
        (b"UNKNOWN_COMMAND", ServerError::UnknownCommand),
        (b"EXPECTED_CRLF", ServerError::ExpectedCrlf),
        (b"JOB_TOO_BIG", ServerError::JobTooBig),
        (b"DRAINING", ServerError::Draining),
        (b"NOT_FOUND", ServerError::NotFound),
        (b"DEADLINE_SOON", ServerError::DeadlineSoon),
        (b"TIMED_OUT", ServerError::TimedOut),
        (b"NOT_IGNORED", ServerError::NotIgnored),
    ];
    for (word, error) in words {
        let wire = [word, b"\r\n"].concat();
        assert_eq!(complete(&wire), (Reply::Error(error), wire.len()));
    }
}

#[test]
fn a_body_may_hold_crlf_and_the_reply_ends_after_it() {
    let wire = b"RESERVED 1 4\r\n\r\n\r\n\r\nDELETED\r\n";
    let (reply, used) = complete(wire);
    assert_eq!(
        reply,
        Reply::Reserved {
            id: 1,
            body: b"\r\n\r\n".to_vec()
        }
    );
    assert_eq!(&wire[used..], b"DELETED\r\n");
}

#[test]
fn malformed_lines_are_refused() {
    for wire in [
        &b"INSERTED\r\n"[..],
        b"INSERTED x\r\n",
        b"INSERTED -1\r\n",
        b"INSERTED +1\r\n",
        b"INSERTED 1 2\r\n",
        b"INSERTED  1\r\n",
        b"INSERTED 18446744073709551616\r\n",
        b"DELETED 1\r\n",
        b"RESERVED 1\r\n",
        b"USING bad name\r\n",
        b"USING -x\r\n",
        b"HELLO\r\n",
        b"\r\n",
        b"not_found\r\n",
    ] {
        assert!(
            matches!(parse_reply(wire), Err(ProtocolError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn a_body_without_its_crlf_is_refused() {
    assert_eq!(
        parse_reply(b"RESERVED 1 2\r\nabcd"),
        Err(ProtocolError::MissingBodyCrlf)
    );
    assert_eq!(
        parse_reply(b"OK 1\r\nab"),
        Err(ProtocolError::MissingBodyCrlf)
    );
    assert_eq!(parse_reply(b"OK 1\r\na\r"), Ok(Parsed::Incomplete));
}

#[test]
fn an_overlong_line_or_body_is_refused_without_waiting_for_it() {
    let long = vec![b'A'; MAX_REPLY_LINE + 1];
    assert_eq!(parse_reply(&long), Err(ProtocolError::LineTooLong));
    let mut long_line = long.clone();
    long_line.extend_from_slice(b"\r\n");
    assert_eq!(parse_reply(&long_line), Err(ProtocolError::LineTooLong));
    // Exactly at the limit, with the CR of the CRLF already here: still waiting.
    let mut at_limit = vec![b'A'; MAX_REPLY_LINE];
    at_limit.push(b'\r');
    assert_eq!(parse_reply(&at_limit), Ok(Parsed::Incomplete));
    assert_eq!(
        parse_reply(b"OK 99999999999\r\n"),
        Err(ProtocolError::BodyTooLarge(99_999_999_999))
    );
    assert_eq!(
        parse_reply(b"RESERVED 1 18446744073709551615\r\n"),
        Err(ProtocolError::BodyTooLarge(u64::MAX))
    );
}

fn valid_reply() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|id| format!("INSERTED {id}\r\n").into_bytes()),
        any::<u64>().prop_map(|id| format!("BURIED {id}\r\n").into_bytes()),
        Just(b"BURIED\r\n".to_vec()),
        "[a-z][a-z0-9.$_-]{0,30}".prop_map(|t| format!("USING {t}\r\n").into_bytes()),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(id, body)| {
            let mut wire = format!("RESERVED {id} {}\r\n", body.len()).into_bytes();
            wire.extend_from_slice(&body);
            wire.extend_from_slice(b"\r\n");
            wire
        }),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|body| {
            let mut wire = format!("OK {}\r\n", body.len()).into_bytes();
            wire.extend_from_slice(&body);
            wire.extend_from_slice(b"\r\n");
            wire
        }),
        any::<u64>().prop_map(|n| format!("KICKED {n}\r\n").into_bytes()),
        any::<u64>().prop_map(|n| format!("WATCHING {n}\r\n").into_bytes()),
        prop_oneof![
            Just("DELETED"),
            Just("RELEASED"),
            Just("TOUCHED"),
            Just("KICKED"),
            Just("NOT_FOUND"),
            Just("TIMED_OUT"),
            Just("DEADLINE_SOON"),
            Just("OUT_OF_MEMORY"),
            Just("JOB_TOO_BIG"),
        ]
        .prop_map(|w| format!("{w}\r\n").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Arbitrary bytes never panic the parser; a complete reply never claims more bytes than
    /// the buffer holds.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        if let Ok(Parsed::Complete(_, used)) = parse_reply(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }

    /// Arbitrary bytes after a plausible reply head never panic either (this reaches the
    /// argument and body paths that random bytes rarely hit).
    #[test]
    fn arbitrary_tails_after_reply_heads_never_panic(
        head in prop_oneof![
            Just("RESERVED "), Just("OK "), Just("INSERTED "), Just("USING "), Just("KICKED "),
            Just("BURIED "), Just("WATCHING "),
        ],
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = head.as_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(Parsed::Complete(_, used)) = parse_reply(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }

    /// Every strict prefix of a valid reply asks for more bytes; the whole reply parses and
    /// takes exactly its own bytes, whatever follows it.
    #[test]
    fn truncated_valid_replies_ask_for_more(
        wire in valid_reply(),
        trailing in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_reply(&wire[..cut]), Ok(Parsed::Incomplete), "cut at {}", cut);
        }
        let mut followed = wire.clone();
        followed.extend_from_slice(&trailing);
        match parse_reply(&followed) {
            Ok(Parsed::Complete(_, used)) => prop_assert_eq!(used, wire.len()),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

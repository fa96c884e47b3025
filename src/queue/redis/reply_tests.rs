//! Property tests of the reply readers: any value — random, or shaped like the real reply with
//! random parts — is read or refused, never a panic; well-formed replies read back what was
//! put in.

use proptest::prelude::*;
use redis::Value;

use super::producer::dead_letter;
use super::reply::*;

/// An error reply, as the parser makes one.
fn server_error(text: &str) -> Value {
    let line: String = text.chars().filter(|c| !c.is_control()).collect();
    redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap_or(Value::Nil)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        Just(Value::Okay),
        any::<i64>().prop_map(Value::Int),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::BulkString),
        // Strings that look like ids, counts and field names, so that deep paths are reached.
        prop_oneof![
            Just("0-0".to_owned()),
            Just("b".to_owned()),
            Just("n".to_owned()),
            Just("id".to_owned()),
            Just("reason".to_owned()),
            "[0-9]{1,20}-[0-9]{1,20}",
            "-?[0-9]{1,20}",
        ]
        .prop_map(|s| Value::BulkString(s.into_bytes())),
        "[ -~]{0,12}".prop_map(Value::SimpleString),
        "(MOVED|ASK|ERR|NOGROUP|CLUSTERDOWN) [ -~]{0,20}".prop_map(|s| server_error(&s)),
        any::<f64>().prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Set),
            prop::collection::vec((inner.clone(), inner), 0..3).prop_map(Value::Map),
        ]
    })
}

/// A field list with a body, a prior count and random other fields.
fn field_list() -> impl Strategy<Value = (Vec<u8>, u32, Value)> {
    (
        prop::collection::vec(any::<u8>(), 0..32),
        any::<u32>(),
        prop::collection::vec(("[a-z]{1,6}", leaf()), 0..3),
    )
        .prop_map(|(body, prior, extra)| {
            let mut items = vec![
                Value::BulkString(b"b".to_vec()),
                Value::BulkString(body.clone()),
                Value::BulkString(b"n".to_vec()),
                Value::BulkString(prior.to_string().into_bytes()),
            ];
            for (name, v) in extra {
                // Other fields never shadow b and n.
                if name != "b" && name != "n" {
                    items.push(Value::BulkString(name.into_bytes()));
                    items.push(v);
                }
            }
            (body, prior, Value::Array(items))
        })
}

fn entry_id_text() -> impl Strategy<Value = String> {
    (any::<u64>(), any::<u64>()).prop_map(|(ms, seq)| format!("{ms}-{seq}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_value_makes_a_reader_panic(v in value()) {
        let _ = describe(&v);
        let _ = array(&v);
        let _ = bytes(&v);
        let _ = text(&v);
        let _ = int(&v);
        let _ = count(&v);
        let _ = entry_id(&v);
        let _ = fields(&v);
        let _ = entry(&v);
        let _ = read_reply(&v);
        let _ = claim_reply(&v);
        let _ = strings(&v);
        let _ = figures(&v);
        let _ = probe(&v);
        let _ = cluster_slots(&v);
        let _ = dead_letter(0, &v);
    }

    #[test]
    fn no_error_text_makes_the_redirect_reader_panic(code in "[A-Z]{0,8}", detail in "\\PC{0,40}") {
        let _ = redirect(&code, &detail);
    }

    #[test]
    fn a_well_formed_read_reply_reads_back(
        entries in prop::collection::vec((entry_id_text(), field_list()), 0..5),
        deleted in any::<bool>(),
    ) {
        let mut items: Vec<Value> = entries
            .iter()
            .map(|(id, (_, _, fields))| {
                Value::Array(vec![Value::BulkString(id.clone().into_bytes()), fields.clone()])
            })
            .collect();
        if deleted {
            // An entry deleted while pending comes back as [id, nil] and is left out.
            items.push(Value::Array(vec![Value::BulkString(b"1-1".to_vec()), Value::Nil]));
        }
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"uq:{q:shard-0}:stream".to_vec()),
            Value::Array(items),
        ])]);
        let read = read_reply(&reply).unwrap();
        prop_assert_eq!(read.len(), 1);
        let got = &read[0].1;
        prop_assert_eq!(got.len(), entries.len());
        for (entry, (id, (body, prior, _))) in got.iter().zip(&entries) {
            prop_assert_eq!(&entry.id, id);
            prop_assert_eq!(&entry.body, body);
            prop_assert_eq!(entry.prior, *prior);
        }
    }

    #[test]
    fn a_well_formed_claim_reply_reads_back(
        cursor in entry_id_text(),
        claimed in prop::collection::vec((entry_id_text(), 1u32..100, field_list()), 0..4),
    ) {
        let mut items = vec![Value::BulkString(cursor.clone().into_bytes())];
        for (id, deliveries, (_, _, fields)) in &claimed {
            items.push(Value::Array(vec![
                Value::BulkString(id.clone().into_bytes()),
                Value::Int(i64::from(*deliveries)),
                fields.clone(),
            ]));
        }
        let (next, got) = claim_reply(&Value::Array(items)).unwrap();
        prop_assert_eq!(next, cursor);
        prop_assert_eq!(got.len(), claimed.len());
        for ((entry, d), (id, deliveries, (body, prior, _))) in got.iter().zip(&claimed) {
            prop_assert_eq!(&entry.id, id);
            prop_assert_eq!(*d, *deliveries);
            prop_assert_eq!(&entry.body, body);
            prop_assert_eq!(entry.prior, *prior);
        }
    }
}

#[test]
fn a_blocked_read_that_timed_out_is_no_entries() {
    assert_eq!(read_reply(&Value::Nil).unwrap(), Vec::new());
}

#[test]
fn cluster_slots_read_ranges_and_refuse_nonsense() {
    let node = |host: &str, port: i64| {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"abc".to_vec()),
        ])
    };
    let reply = Value::Array(vec![
        Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            node("127.0.0.1", 7001),
        ]),
        Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7002)]),
    ]);
    let ranges = cluster_slots(&reply).unwrap();
    assert_eq!(ranges.len(), 2);
    assert_eq!(
        (ranges[0].start, ranges[0].end, ranges[0].port),
        (0, 5460, 7001)
    );
    assert_eq!(ranges[1].host, "");
    for bad in [
        Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16384),
            node("h", 1),
        ])]),
        Value::Array(vec![Value::Array(vec![
            Value::Int(9),
            Value::Int(3),
            node("h", 1),
        ])]),
        Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(3),
            node("h", 70000),
        ])]),
        Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(3)])]),
    ] {
        assert!(cluster_slots(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn redirections_are_read_from_moved_and_ask_only() {
    assert_eq!(
        redirect("MOVED", "3999 127.0.0.1:6381"),
        Some(Redirect::Moved {
            slot: 3999,
            addr: "127.0.0.1:6381".into()
        })
    );
    assert_eq!(
        redirect("ASK", "3999 10.0.0.2:7000"),
        Some(Redirect::Ask {
            addr: "10.0.0.2:7000".into()
        })
    );
    assert_eq!(redirect("MOVED", "16384 h:1"), None);
    assert_eq!(redirect("MOVED", "3 h:99999"), None);
    assert_eq!(redirect("ERR", "3 h:1"), None);
    assert_eq!(redirect("MOVED", ""), None);
}

#[test]
fn entry_ids_are_checked() {
    for good in [
        "0-0",
        "1700000000000-12",
        "18446744073709551615-18446744073709551615",
    ] {
        assert!(is_entry_id(good), "{good}");
    }
    for bad in [
        "",
        "-",
        "1-",
        "-1",
        "1-2-3",
        "a-1",
        "18446744073709551616-0",
        "1 -2",
    ] {
        assert!(!is_entry_id(bad), "{bad}");
    }
}

//! Reading Redis replies into uberpool's values, trusting nothing: any [`Value`] — of any
//! shape, depth or content — gives either the value or an error that names what was wrong,
//! never a panic and never an allocation beyond what the reply already holds. The property
//! tests beside this file (`reply_tests.rs`) feed it arbitrary values.

use redis::Value;

/// What went wrong reading a reply (the backend turns it into [`Error::Reply`](super::Error)).
pub(crate) type ReplyResult<T> = Result<T, String>;

/// The field of a stream entry holding the job's body.
pub(crate) const BODY_FIELD: &[u8] = b"b";
/// The field holding the deliveries the job had before it was added again (a retry).
pub(crate) const PRIOR_FIELD: &[u8] = b"n";

/// One stream entry as uberpool reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The entry id, `ms-seq`.
    pub(crate) id: String,
    /// The `b` field (empty when the entry has none).
    pub(crate) body: Vec<u8>,
    /// The `n` field: deliveries before this entry was added (0 when absent or unreadable).
    pub(crate) prior: u32,
}

/// A short description of a value, for error messages (never its whole content).
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Nil => "nil".into(),
        Value::Int(n) => format!("integer {n}"),
        Value::BulkString(bytes) => format!("a {}-byte string", bytes.len()),
        Value::Array(items) => format!("an array of {}", items.len()),
        Value::SimpleString(s) => format!("status {:?}", truncate(s)),
        Value::Okay => "OK".into(),
        Value::ServerError(error) => format!("error {:?}", truncate(&error.to_string())),
        other => format!("a {} value", kind(other)),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Map(_) => "map",
        Value::Attribute { .. } => "attribute",
        Value::Set(_) => "set",
        Value::Double(_) => "double",
        Value::Boolean(_) => "boolean",
        Value::VerbatimString { .. } => "verbatim string",
        Value::BigNumber(_) => "big number",
        Value::Push { .. } => "push",
        _ => "plain",
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

/// The items of an array (or set) reply.
pub(crate) fn array(value: &Value) -> ReplyResult<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(format!("expected an array, got {}", describe(other))),
    }
}

/// Bytes of a string reply.
pub(crate) fn bytes(value: &Value) -> ReplyResult<&[u8]> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        Value::VerbatimString { text, .. } => Ok(text.as_bytes()),
        other => Err(format!("expected a string, got {}", describe(other))),
    }
}

/// A UTF-8 string reply.
pub(crate) fn text(value: &Value) -> ReplyResult<String> {
    let bytes = bytes(value)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| format!("expected text, got {} non-UTF-8 bytes", bytes.len()))
}

/// An integer reply (or a string holding one, as Lua tables of numbers sometimes come back).
pub(crate) fn int(value: &Value) -> ReplyResult<i64> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(_) | Value::SimpleString(_) => {
            let text = text(value)?;
            text.parse()
                .map_err(|_| format!("expected an integer, got {:?}", truncate(&text)))
        }
        other => Err(format!("expected an integer, got {}", describe(other))),
    }
}

/// A non-negative count that fits in `u64`.
pub(crate) fn count(value: &Value) -> ReplyResult<u64> {
    let n = int(value)?;
    u64::try_from(n).map_err(|_| format!("expected a count, got {n}"))
}

/// `true` when `id` is a stream entry id: `ms-seq`, both decimal `u64`s.
pub(crate) fn is_entry_id(id: &str) -> bool {
    let Some((ms, seq)) = id.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    digits(ms) && digits(seq) && ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok()
}

/// An entry id reply, checked.
pub(crate) fn entry_id(value: &Value) -> ReplyResult<String> {
    let id = text(value)?;
    if is_entry_id(&id) {
        Ok(id)
    } else {
        Err(format!("{:?} is not a stream entry id", truncate(&id)))
    }
}

/// The `b` and `n` fields of an entry's field list `[f1, v1, f2, v2, …]`. A field list of odd
/// length, or fields that are not strings, are errors; unknown fields are ignored.
pub(crate) fn fields(value: &Value) -> ReplyResult<(Vec<u8>, u32)> {
    let items = array(value)?;
    if items.len() % 2 != 0 {
        return Err(format!("a field list of odd length {}", items.len()));
    }
    let mut body = Vec::new();
    let mut prior = 0;
    for pair in items.chunks_exact(2) {
        let field = bytes(&pair[0])?;
        if field == BODY_FIELD {
            body = bytes(&pair[1])?.to_vec();
        } else if field == PRIOR_FIELD {
            prior = int(&pair[1])
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
        }
    }
    Ok((body, prior))
}

/// One entry `[id, fields]`; `None` for an entry deleted while pending (`[id, nil]`).
pub(crate) fn entry(value: &Value) -> ReplyResult<Option<Entry>> {
    let items = array(value)?;
    let [id, fields_value] = items else {
        return Err(format!("an entry of {} items, not 2", items.len()));
    };
    let id = entry_id(id)?;
    if matches!(fields_value, Value::Nil) {
        return Ok(None);
    }
    let (body, prior) = fields(fields_value)?;
    Ok(Some(Entry { id, body, prior }))
}

/// An `XREADGROUP` reply: per stream key, its entries; a nil reply (a `BLOCK` that timed out)
/// is no entries. Entries deleted while pending are left out.
pub(crate) fn read_reply(value: &Value) -> ReplyResult<Vec<(Vec<u8>, Vec<Entry>)>> {
    if matches!(value, Value::Nil) {
        return Ok(Vec::new());
    }
    let streams: Vec<(&Value, &Value)> = match value {
        // RESP3 answers with a map from key to entries.
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        other => {
            let mut streams = Vec::new();
            for stream in array(other)? {
                let pair = array(stream)?;
                let [key, entries] = pair else {
                    return Err(format!("a stream of {} items, not 2", pair.len()));
                };
                streams.push((key, entries));
            }
            streams
        }
    };
    let mut out = Vec::with_capacity(streams.len());
    for (key, entries) in streams {
        let key = bytes(key)?.to_vec();
        let mut read = Vec::new();
        for item in array(entries)? {
            if let Some(entry) = entry(item)? {
                read.push(entry);
            }
        }
        out.push((key, read));
    }
    Ok(out)
}

/// The claim script's reply: `[next cursor, [id, deliveries, fields]…]`.
pub(crate) fn claim_reply(value: &Value) -> ReplyResult<(String, Vec<(Entry, u32)>)> {
    let items = array(value)?;
    let Some((cursor, claimed)) = items.split_first() else {
        return Err("an empty claim reply".into());
    };
    let cursor = entry_id(cursor)?;
    let mut out = Vec::with_capacity(claimed.len());
    for item in claimed {
        let parts = array(item)?;
        let [id, deliveries, fields_value] = parts else {
            return Err(format!("a claimed entry of {} items, not 3", parts.len()));
        };
        let id = entry_id(id)?;
        let deliveries = u32::try_from(count(deliveries)?).unwrap_or(u32::MAX);
        let (body, prior) = fields(fields_value)?;
        out.push((Entry { id, body, prior }, deliveries));
    }
    Ok((cursor, out))
}

/// A list of UTF-8 strings (the heartbeat script's members).
pub(crate) fn strings(value: &Value) -> ReplyResult<Vec<String>> {
    array(value)?.iter().map(text).collect()
}

/// One shard's figures, from the stats script.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ShardFigures {
    pub(crate) length: u64,
    pub(crate) pending: u64,
    pub(crate) ready: u64,
    pub(crate) delayed: u64,
    pub(crate) dead: u64,
}

/// The stats script's reply: `[length, pending, ready, delayed, dead]`.
pub(crate) fn figures(value: &Value) -> ReplyResult<ShardFigures> {
    let items = array(value)?;
    let [length, pending, ready, delayed, dead] = items else {
        return Err(format!("{} figures, not 5", items.len()));
    };
    Ok(ShardFigures {
        length: count(length)?,
        pending: count(pending)?,
        ready: count(ready)?,
        delayed: count(delayed)?,
        dead: count(dead)?,
    })
}

/// One range of a `CLUSTER SLOTS` reply: slots `start..=end` served by the master at
/// `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …], replicas…]…]`. An empty host
/// (the node does not know its own address) is left empty for the caller to fill in.
pub(crate) fn cluster_slots(value: &Value) -> ReplyResult<Vec<SlotRange>> {
    let mut ranges = Vec::new();
    for range in array(value)? {
        let items = array(range)?;
        let [start, end, master, ..] = items else {
            return Err(format!("a slot range of {} items", items.len()));
        };
        let slot = |v: &Value| -> ReplyResult<u16> {
            let n = int(v)?;
            u16::try_from(n)
                .ok()
                .filter(|&s| s < super::slot::SLOTS)
                .ok_or_else(|| format!("slot {n} out of range"))
        };
        let (start, end) = (slot(start)?, slot(end)?);
        if start > end {
            return Err(format!("slot range {start}-{end} is reversed"));
        }
        let node = array(master)?;
        let [host, port, ..] = node else {
            return Err(format!("a node of {} items", node.len()));
        };
        let host = match host {
            Value::Nil => String::new(),
            other => text(other)?,
        };
        let port = int(port)?;
        let port = u16::try_from(port).map_err(|_| format!("port {port} out of range"))?;
        ranges.push(SlotRange {
            start,
            end,
            host,
            port,
        });
    }
    Ok(ranges)
}

/// The redirection an error reply asks for: `MOVED slot host:port` or `ASK slot host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Redirect {
    Moved { slot: u16, addr: String },
    Ask { addr: String },
}

/// Reads a redirection from an error reply's code and detail.
pub(crate) fn redirect(code: &str, detail: &str) -> Option<Redirect> {
    let mut words = detail.split_whitespace();
    let slot: u16 = words
        .next()?
        .parse()
        .ok()
        .filter(|&s| s < super::slot::SLOTS)?;
    let addr = words.next()?;
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let addr = if host.is_empty() {
        return None;
    } else {
        addr.to_owned()
    };
    match code {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { addr }),
        _ => None,
    }
}

/// The probe script's reply: `[ready, claimable]`.
pub(crate) fn probe(value: &Value) -> ReplyResult<(u64, bool)> {
    let items = array(value)?;
    let [ready, claimable] = items else {
        return Err(format!("a probe of {} items, not 2", items.len()));
    };
    Ok((count(ready)?, count(claimable)? > 0))
}

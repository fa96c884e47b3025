//! One SMTP session of the relay: the dialogue from the greeting to `QUIT`, enough of RFC 5321
//! for a plaintext client (`../client.rs`, or lettre's plaintext transport) — `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA` (with
//! dot-unstuffing), `RSET`, `NOOP`, `QUIT`. Lines and messages are bounded, so a client cannot
//! make the relay hold unbounded memory. What lives elsewhere: accepting connections, the log and
//! the capacity model (`mod.rs`).

use std::io::{self, BufRead, BufReader, Read as _, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Capacity, IDEMPOTENCY_HEADER, RELAY_NAME, Shared, refused_on_first_try};

/// The longest command or message line read, in bytes (RFC 5321 asks for 1000 at least).
const MAX_LINE: usize = 64 * 1024;

/// The largest message accepted, in bytes; a larger one is answered `552` and not recorded.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// The transaction in progress.
#[derive(Default)]
struct Transaction {
    /// `MAIL FROM` was accepted.
    started: bool,
    /// Recipients accepted by `RCPT TO`.
    recipients: Vec<String>,
}

/// Serves one connection until the client quits or the connection ends.
pub(super) fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    reply(
        &mut out,
        &format!("220 {RELAY_NAME} ESMTP uberpool example relay"),
    )?;
    let mut greeted = false;
    let mut transaction = Transaction::default();
    let mut line = Vec::new();
    loop {
        let Some(complete) = read_line(&mut reader, &mut line)? else {
            return Ok(());
        };
        if !complete {
            reply(&mut out, "500 5.5.2 line too long")?;
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, argument) = match text.split_once(' ') {
            Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                greeted = true;
                transaction = Transaction::default();
                reply(
                    &mut out,
                    &format!(
                        "250-{RELAY_NAME} greets {argument}\r\n250-8BITMIME\r\n250 SIZE {MAX_MESSAGE}"
                    ),
                )?;
            }
            "HELO" => {
                greeted = true;
                transaction = Transaction::default();
                reply(&mut out, &format!("250 {RELAY_NAME}"))?;
            }
            "MAIL" if !greeted => reply(&mut out, "503 5.5.1 say EHLO or HELO first")?,
            "MAIL" if transaction.started => reply(&mut out, "503 5.5.1 nested MAIL command")?,
            "MAIL" => match path_argument(argument, "FROM:") {
                Some(_) => {
                    transaction.started = true;
                    reply(&mut out, "250 2.1.0 OK")?;
                }
                None => reply(&mut out, "501 5.5.4 syntax: MAIL FROM:<address>")?,
            },
            "RCPT" if !transaction.started => reply(&mut out, "503 5.5.1 need MAIL first")?,
            "RCPT" => match path_argument(argument, "TO:") {
                Some(address) => {
                    let refuse = refused_on_first_try(&address, shared.refuse_first_percent)
                        && shared.log.lock().refused_first.insert(address.clone());
                    if refuse {
                        reply(&mut out, "450 4.2.1 mailbox busy, try again later")?;
                    } else {
                        transaction.recipients.push(address);
                        reply(&mut out, "250 2.1.5 OK")?;
                    }
                }
                None => reply(&mut out, "501 5.5.4 syntax: RCPT TO:<address>")?,
            },
            "DATA" if transaction.recipients.is_empty() => {
                reply(&mut out, "503 5.5.1 need RCPT first")?;
            }
            "DATA" => {
                reply(&mut out, "354 end data with <CR><LF>.<CR><LF>")?;
                let Some(message) = read_message(&mut reader, &mut line)? else {
                    return Ok(());
                };
                let recipients = std::mem::take(&mut transaction.recipients);
                transaction = Transaction::default();
                match message {
                    Message::TooLarge => reply(&mut out, "552 5.3.4 message too large")?,
                    Message::Received(text) => {
                        let answer = deliver(shared, &text, recipients);
                        reply(&mut out, answer)?;
                    }
                }
            }
            "RSET" => {
                transaction = Transaction::default();
                reply(&mut out, "250 2.0.0 OK")?;
            }
            "NOOP" => reply(&mut out, "250 2.0.0 OK")?,
            "QUIT" => {
                reply(&mut out, &format!("221 2.0.0 {RELAY_NAME} closing"))?;
                return Ok(());
            }
            _ => reply(&mut out, "502 5.5.2 command not recognized")?,
        }
    }
}

/// Records a received message (or drops it as a duplicate) after the capacity model's latency;
/// returns the reply to the end of `DATA`.
fn deliver(shared: &Shared, message: &[u8], recipients: Vec<String>) -> &'static str {
    let sessions = shared.sessions.lock().open.len();
    let latency = shared.capacity.map_or(Duration::ZERO, |capacity| {
        let soft_limit = shared.soft_limit.load(Ordering::Relaxed);
        Capacity {
            soft_limit,
            ..capacity
        }
        .latency(sessions)
    });
    if !latency.is_zero() {
        // The model of a busy relay: this session's answer takes that long.
        std::thread::sleep(latency);
    }
    let key = idempotency_key(message);
    let fresh = match &key {
        Some(key) => shared.keys.lock().insert(key.clone()),
        None => true,
    };
    let mut log = shared.log.lock();
    log.answered.push((sessions, latency));
    if !fresh {
        log.duplicates += 1;
        return "250 2.0.0 OK: duplicate of an accepted message, dropped";
    }
    log.messages += 1;
    log.bytes += message.len() as u64;
    for address in recipients {
        *log.accepted.entry(address).or_insert(0) += 1;
    }
    "250 2.0.0 OK: queued"
}

/// A message read after `DATA`.
enum Message {
    /// The message, dot-unstuffed, lines ending in CRLF.
    Received(Vec<u8>),
    /// Longer than [`MAX_MESSAGE`]; its text was read and discarded.
    TooLarge,
}

/// Reads message lines up to the lone `.`; `None` if the connection ended first.
fn read_message(
    reader: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
) -> io::Result<Option<Message>> {
    let mut message = Vec::new();
    let mut too_large = false;
    loop {
        let Some(complete) = read_line(reader, line)? else {
            return Ok(None);
        };
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if complete && content == b"." {
            return Ok(Some(if too_large {
                Message::TooLarge
            } else {
                Message::Received(message)
            }));
        }
        // Dot-unstuffing: a line the client began with an extra '.' loses it.
        let content = content.strip_prefix(b".").unwrap_or(content);
        if !complete || message.len() + content.len() + 2 > MAX_MESSAGE {
            too_large = true;
        }
        if !too_large {
            message.extend_from_slice(content);
            message.extend_from_slice(b"\r\n");
        }
    }
}

/// Reads one line (with its terminator) into `line`, at most [`MAX_LINE`] bytes. Returns
/// `None` at the end of the stream, `Some(false)` when the line was longer (the rest of it is
/// read and discarded), `Some(true)` otherwise.
fn read_line(reader: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
    line.clear();
    let read = reader
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.ends_with(b"\n") {
        return Ok(Some(true));
    }
    if read < MAX_LINE {
        // The stream ended in the middle of a line.
        return Ok(None);
    }
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let read = reader
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut rest)?;
        if read == 0 {
            return Ok(None);
        }
        if rest.ends_with(b"\n") {
            return Ok(Some(false));
        }
    }
}

/// The address of `MAIL FROM:<a>` or `RCPT TO:<a>` (parameters after it ignored), if the
/// argument has that form; `<>` gives an empty address.
fn path_argument(argument: &str, prefix: &str) -> Option<String> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].trim().to_owned())
}

/// The value of the message's `X-Idempotency-Key` header (folded lines joined), if it has one.
fn idempotency_key(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let mut key: Option<String> = None;
    let mut in_key = false;
    for line in text.split("\r\n") {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if in_key && let Some(key) = key.as_mut() {
                key.push(' ');
                key.push_str(line.trim());
            }
            continue;
        }
        in_key = false;
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case(IDEMPOTENCY_HEADER)
            && key.is_none()
        {
            key = Some(value.trim().to_owned());
            in_key = true;
        }
    }
    key.filter(|k| !k.is_empty())
}

/// Writes one reply (possibly multi-line, lines separated by CRLF) and its final CRLF.
fn reply(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.write_all(b"\r\n")?;
    out.flush()
}

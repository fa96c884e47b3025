//! A reader for `.properties` text that remembers the line each entry came from.
//!
//! It follows the `java.util.Properties` format, so existing Mule `scheduler-pools.conf` files
//! read the same way, and every entry keeps its line number so that errors can point at it. The
//! text arrives decoded: [`PoolsConfig::load`](super::PoolsConfig::load) reads a file as UTF-8
//! when it is valid UTF-8 and as ISO-8859-1 (Java's encoding for properties files) otherwise; an
//! optional byte-order mark is skipped here. The rules:
//!
//! - Lines end with `\n`, `\r\n` or `\r`.
//! - Leading whitespace (space, tab, form feed) of every line is skipped.
//! - A line whose first non-whitespace character is `#` or `!` is a comment; blank lines are
//!   ignored.
//! - A line ending with an odd number of backslashes continues on the next line (the backslash
//!   and the next line's leading whitespace are dropped). A comment line never continues.
//! - The key ends at the first unescaped `=`, `:` or whitespace; whitespace and at most one `=` or
//!   `:` after it are skipped; the rest of the line is the value (trailing whitespace kept).
//! - Escapes in keys and values: `\t`, `\n`, `\r`, `\f`, `\uXXXX` (exactly four hex digits);
//!   a backslash before any other character stands for that character (`\=`, `\:`, `\ `, `\\`).
//!
//! This file knows nothing of scheduler keys: `resolve.rs` interprets the entries.

/// One `key = value` entry of a properties text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    /// The key, with escapes resolved.
    pub key: String,
    /// The value, with escapes resolved and continuation lines joined.
    pub value: String,
    /// The 1-based line on which the entry starts.
    pub line: usize,
}

/// Malformed properties text: a `\u` escape not followed by four hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: Malformed \\uxxxx encoding ('\\u{found}')")]
pub struct PropertiesError {
    /// The 1-based line of the entry holding the bad escape.
    pub line: usize,
    /// Up to four characters found after `\u`.
    pub found: String,
}

/// Every entry of `text`, in order, in a vector (a key given twice appears twice).
#[cfg(test)]
pub fn parse(text: &str) -> Result<Vec<Property>, PropertiesError> {
    let mut entries = Vec::new();
    for_each_entry(text, |entry| entries.push(entry))?;
    Ok(entries)
}

/// Hands every entry of `text` to `entry`, in order (a key given twice comes twice; the caller
/// decides). The work is linear in the length of `text`, and nothing is kept here beyond the
/// logical line being read, so the caller decides what memory the entries take.
///
/// # Errors
///
/// [`PropertiesError`] when a `\u` escape is malformed; the entries before it were handed over.
pub fn for_each_entry(text: &str, mut entry: impl FnMut(Property)) -> Result<(), PropertiesError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let entries = &mut entry;
    let mut logical: Option<(usize, String)> = None;
    for (index, raw) in natural_lines(text).enumerate() {
        let number = index + 1;
        let trimmed = raw.trim_start_matches(is_whitespace);
        let (start, mut buffer) = match logical.take() {
            Some((start, buffer)) => {
                if trimmed.is_empty() {
                    push_entry(entries, &buffer, start)?;
                    continue;
                }
                (start, buffer)
            }
            None => {
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                    continue;
                }
                (number, String::new())
            }
        };
        let trailing_backslashes = trimmed.chars().rev().take_while(|&c| c == '\\').count();
        if trailing_backslashes % 2 == 1 {
            buffer.push_str(&trimmed[..trimmed.len() - 1]);
            logical = Some((start, buffer));
        } else {
            buffer.push_str(trimmed);
            push_entry(entries, &buffer, start)?;
        }
    }
    if let Some((start, buffer)) = logical {
        push_entry(entries, &buffer, start)?;
    }
    Ok(())
}

/// Hands over the entry of one logical line; a line left empty by continuations holds none.
fn push_entry(
    entries: &mut impl FnMut(Property),
    line: &str,
    number: usize,
) -> Result<(), PropertiesError> {
    if !line.is_empty() {
        entries(split_entry(line, number)?);
    }
    Ok(())
}

/// Whitespace in the properties sense.
fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Splits `text` at `\n`, `\r\n` and `\r`, without the terminators.
fn natural_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\n', '\r']) {
            Some(end) => {
                let after = if current[end..].starts_with("\r\n") {
                    end + 2
                } else {
                    end + 1
                };
                rest = if after == current.len() {
                    None
                } else {
                    Some(&current[after..])
                };
                Some(&current[..end])
            }
            None => {
                rest = None;
                if current.is_empty() {
                    None
                } else {
                    Some(current)
                }
            }
        }
    })
}

/// Splits one logical line (leading whitespace already removed) into key and value.
fn split_entry(line: &str, number: usize) -> Result<Property, PropertiesError> {
    let mut key_end = line.len();
    let mut escaped = false;
    let mut has_separator = false;
    let mut value_start = line.len();
    for (at, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' {
            key_end = at;
            value_start = at + 1;
            has_separator = true;
            break;
        } else if is_whitespace(c) {
            key_end = at;
            value_start = at + 1;
            break;
        }
    }
    let mut rest = &line[value_start..];
    loop {
        rest = rest.trim_start_matches(is_whitespace);
        if !has_separator && (rest.starts_with('=') || rest.starts_with(':')) {
            has_separator = true;
            rest = &rest[1..];
        } else {
            break;
        }
    }
    Ok(Property {
        key: unescape(&line[..key_end], number)?,
        value: unescape(rest, number)?,
        line: number,
    })
}

/// Resolves the escapes of a key or value.
fn unescape(text: &str, line: usize) -> Result<String, PropertiesError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let digits: String = chars.clone().take(4).collect();
                let code = if digits.len() == 4 && digits.chars().all(|d| d.is_ascii_hexdigit()) {
                    u32::from_str_radix(&digits, 16).ok()
                } else {
                    None
                };
                match code {
                    Some(code) => {
                        chars.nth(3);
                        // Lone surrogates cannot be represented in UTF-8 text.
                        out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    None => {
                        return Err(PropertiesError {
                            line,
                            found: digits,
                        });
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value, p.line))
            .collect()
    }

    fn one(key: &str, value: &str, line: usize) -> (String, String, usize) {
        (key.to_owned(), value.to_owned(), line)
    }

    #[test]
    fn equals_colon_and_whitespace_all_separate_key_from_value() {
        assert_eq!(
            entries("a=1\nb:2\nc 3\nd = 4\ne\t:\t5\nf   =   =6\n"),
            vec![
                one("a", "1", 1),
                one("b", "2", 2),
                one("c", "3", 3),
                one("d", "4", 4),
                one("e", "5", 5),
                one("f", "=6", 6)
            ]
        );
    }

    #[test]
    fn hash_and_bang_lines_are_comments_and_blank_lines_are_skipped() {
        assert_eq!(
            entries("# one\n\n   ! two\n\t\nkey=value # not a comment\n"),
            vec![one("key", "value # not a comment", 5)]
        );
    }

    #[test]
    fn continuation_joins_lines_and_drops_leading_whitespace() {
        assert_eq!(
            entries("key = max(2, \\\n      cores)\nnext=1\n"),
            vec![one("key", "max(2, cores)", 1), one("next", "1", 3)]
        );
    }

    #[test]
    fn even_number_of_backslashes_does_not_continue() {
        assert_eq!(
            entries("a=x\\\\\nb=y\n"),
            vec![one("a", "x\\", 1), one("b", "y", 2)]
        );
    }

    #[test]
    fn comment_line_ending_with_backslash_does_not_continue() {
        assert_eq!(entries("# comment \\\na=1\n"), vec![one("a", "1", 2)]);
    }

    #[test]
    fn continuation_into_a_blank_line_ends_the_entry() {
        assert_eq!(
            entries("a=1\\\n\nb=2"),
            vec![one("a", "1", 1), one("b", "2", 3)]
        );
    }

    #[test]
    fn line_of_only_a_continuation_holds_no_entry() {
        assert_eq!(entries("\\\n\na=1\n\\"), vec![one("a", "1", 3)]);
    }

    #[test]
    fn continuation_at_end_of_text_keeps_the_entry() {
        assert_eq!(entries("a=1\\"), vec![one("a", "1", 1)]);
    }

    #[test]
    fn crlf_and_cr_line_ends_count_lines_correctly() {
        assert_eq!(
            entries("# c\r\na=1\r\n\r\nb=2\rc=3"),
            vec![one("a", "1", 2), one("b", "2", 4), one("c", "3", 5)]
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(entries("\u{feff}a=1\n"), vec![one("a", "1", 1)]);
    }

    #[test]
    fn escapes_are_resolved_in_keys_and_values() {
        assert_eq!(
            entries("a\\=b\\ c=\\t\\u0041\\q\\\\\n"),
            vec![one("a=b c", "\tAq\\", 1)]
        );
    }

    #[test]
    fn malformed_unicode_escape_names_the_line() {
        let err = parse("a=1\nb=\\u12G4\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(
            err.to_string(),
            "line 2: Malformed \\uxxxx encoding ('\\u12G4')"
        );
    }

    #[test]
    fn comments_continuations_and_colons_read_like_java() {
        assert_eq!(
            entries("# comment\r\nname = a\\\n    b\n! another comment\nother:1\n"),
            vec![one("name", "ab", 2), one("other", "1", 5)]
        );
    }

    #[test]
    fn key_without_value_has_empty_value() {
        assert_eq!(
            entries("lonely\nother=\n"),
            vec![one("lonely", "", 1), one("other", "", 2)]
        );
    }

    #[test]
    fn trailing_whitespace_of_value_is_kept() {
        assert_eq!(entries("a = 1  \n"), vec![one("a", "1  ", 1)]);
    }
}

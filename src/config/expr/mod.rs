//! Sizing expressions: `max(2, cores + ((mem - 245760) / 5120))` and friends, parsed once and
//! evaluated here.
//!
//! The grammar is Mule's, widened to allow nesting. A small tokenizer and a recursive-descent
//! parser build a tree, and the tree is evaluated directly: each expression is parsed exactly
//! once, by this module, with no expression crate behind it.
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := '-' unary | primary
//! primary := NUMBER | 'cores' | 'mem' | ('max' | 'min') '(' expr ',' expr ')' | '(' expr ')'
//! NUMBER  := [0-9]+ ('.' [0-9]+)?
//! ```
//!
//! Names are case-insensitive (`MAX(2, CORES)` is accepted, as in Mule) and whitespace may appear
//! between tokens. Anything else (strings, assignments, comparisons, `;`, scientific notation,
//! other names or functions) is refused with an [`ExprError`] naming the offending token and its
//! column. An expression holds at most [`MAX_TOKENS`] tokens and nests at most [`MAX_DEPTH`]
//! levels, so no input can exhaust the stack, and the work is linear in the length of the value.
//!
//! Arithmetic is IEEE-754 double precision, like Mule's JavaScript evaluation: every number is a
//! float, so `1/2` is `0.5`, `(1/2)*cores` is `cores/2` and `cores / 0.5` is `2*cores`. `max` and
//! `min` follow JavaScript's `Math.max`/`Math.min`: a NaN argument gives NaN, so `0/0` can never
//! hide inside them. The caller truncates the result toward zero once, at the end; a NaN or
//! infinite result is an error.
//!
//! What the numbers mean (pool sizes, limits) is decided by the resolver (`config/resolve.rs`), not here.

use super::Resources;

/// The most tokens an expression may hold.
pub const MAX_TOKENS: usize = 256;

/// The deepest nesting (parentheses, unary minus, `max`/`min`) an expression may use.
pub const MAX_DEPTH: usize = 32;

/// What a size expression may hold, for messages.
const ALLOWED: &str = "a size is written with numbers, cores, mem, + - * /, parentheses, \
                       max(a, b) and min(a, b)";

/// Why a sizing expression was refused. Columns count characters from 1 in the value as written.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// The value is empty or only whitespace.
    #[error("the value is empty")]
    Empty,
    /// A character that no token starts with.
    #[error("{} '{ch}' at column {column}", describe_char(*ch))]
    UnexpectedChar {
        /// The character.
        ch: char,
        /// Its column.
        column: usize,
    },
    /// A comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`) or logical operator (`!`, `&&`, `||`).
    #[error(
        "'{operator}' at column {column}: comparisons and logical operators are not allowed; {ALLOWED}"
    )]
    Comparison {
        /// The operator as written.
        operator: String,
        /// Its column.
        column: usize,
    },
    /// A name other than `cores`, `mem`, `max` and `min`.
    #[error("unknown name '{name}' at column {column} (allowed: cores, mem, max(a, b), min(a, b))")]
    UnknownName {
        /// The name as written.
        name: String,
        /// Its column.
        column: usize,
    },
    /// A number with a dot but no digits after it.
    #[error("malformed number '{text}' at column {column}")]
    MalformedNumber {
        /// The number as written.
        text: String,
        /// Its column.
        column: usize,
    },
    /// A number in scientific notation, such as `1e12`.
    #[error(
        "scientific notation '{text}' at column {column} is not supported: write the number out{}",
        written_out.as_ref().map_or(String::new(), |n| format!(", as {n}"))
    )]
    ScientificNotation {
        /// The number as written.
        text: String,
        /// Its column.
        column: usize,
        /// The same number in plain digits, when it has a reasonable number of them.
        written_out: Option<String>,
    },
    /// An opening parenthesis that is never closed.
    #[error("missing ) in parenthetical: the '(' at column {column} is never closed")]
    UnclosedParen {
        /// The column of the unclosed `(`.
        column: usize,
    },
    /// A closing parenthesis without an opening one.
    #[error("unmatched ')' at column {column}")]
    UnmatchedParen {
        /// The column of the `)`.
        column: usize,
    },
    /// A token where the grammar expects something else.
    #[error("expected {expected} at column {column}, found {found}")]
    UnexpectedToken {
        /// What the grammar expects there.
        expected: &'static str,
        /// The token found, quoted, or `end of expression`.
        found: String,
        /// Its column (one past the end for `end of expression`).
        column: usize,
    },
    /// More than [`MAX_TOKENS`] tokens.
    #[error("the expression is too long (more than {MAX_TOKENS} tokens)")]
    TooLong,
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("the expression nests deeper than {MAX_DEPTH} levels at column {column}")]
    TooDeep {
        /// The column where the limit was passed.
        column: usize,
    },
    /// The result is NaN, for example `0/0`.
    #[error("the result is not a number (NaN), as for 0/0")]
    NotANumber,
    /// The result is infinite, for example `cores/0`.
    #[error("the result is infinite, as for a division by zero")]
    Infinite,
}

/// How a refused character is described.
fn describe_char(ch: char) -> &'static str {
    match ch {
        '\'' | '"' | '`' => "strings are not allowed: found",
        '=' => "assignments are not allowed: found",
        ';' => "statement separators are not allowed: found",
        _ => "unexpected character",
    }
}

/// Evaluates a sizing expression against `resources`, without truncating the result: with 4
/// cores and 1 GiB, `max(2, cores + ((mem - 245760) / 5120))` is `160.8` and `(1/2) * CORES` is
/// `2.0`.
///
/// # Errors
///
/// An [`ExprError`] when the text is not in the grammar, or when the result is NaN or infinite.
pub(crate) fn evaluate(text: &str, resources: &Resources) -> Result<f64, ExprError> {
    let tree = parse(text)?;
    let value = tree.value(resources);
    if value.is_nan() {
        Err(ExprError::NotANumber)
    } else if value.is_infinite() {
        Err(ExprError::Infinite)
    } else {
        Ok(value)
    }
}

/// Parses `text` into its tree: the one parse an expression goes through.
fn parse(text: &str) -> Result<Tree, ExprError> {
    let (tokens, end_column) = tokenize(text)?;
    check_parentheses(&tokens)?;
    let mut parser = Parser {
        tokens: &tokens,
        next: 0,
        depth: 0,
        end_column,
    };
    let tree = parser.expression()?;
    if let Some(token) = parser.peek() {
        return Err(ExprError::UnexpectedToken {
            expected: "an operator or the end of the expression",
            found: format!("'{}'", token.text),
            column: token.column,
        });
    }
    Ok(tree)
}

/// The kinds of token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Number,
    Cores,
    Mem,
    Max,
    Min,
    Plus,
    Minus,
    Star,
    Slash,
    Open,
    Close,
    Comma,
}

/// A token with its text as written and its column.
#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
    column: usize,
}

/// A cursor over the characters of a value that counts columns.
struct Chars<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    at: usize,
    /// Column of the next character (1-based).
    column: usize,
}

impl Chars<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.at..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        self.column += 1;
        Some(c)
    }

    /// Consumes characters while `keep` holds.
    fn bump_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
    }
}

/// Splits `text` into tokens, refusing characters and names outside the grammar; returns the
/// tokens and the column one past the end.
fn tokenize(text: &str) -> Result<(Vec<Token>, usize), ExprError> {
    let mut chars = Chars {
        text,
        at: 0,
        column: 1,
    };
    let mut tokens = Vec::new();
    while let Some(c) = chars.peek() {
        let column = chars.column;
        if c.is_whitespace() {
            chars.bump();
            continue;
        }
        if tokens.len() == MAX_TOKENS {
            return Err(ExprError::TooLong);
        }
        let start = chars.at;
        let kind = if c.is_ascii_digit() {
            number(&mut chars, column)?
        } else if c.is_ascii_alphabetic() || c == '_' {
            chars.bump_while(|c| c.is_ascii_alphanumeric() || c == '_');
            let name = &text[start..chars.at];
            match name.to_ascii_lowercase().as_str() {
                "cores" => Kind::Cores,
                "mem" => Kind::Mem,
                "max" => Kind::Max,
                "min" => Kind::Min,
                _ => {
                    return Err(ExprError::UnknownName {
                        name: name.to_owned(),
                        column,
                    });
                }
            }
        } else {
            chars.bump();
            match c {
                '+' => Kind::Plus,
                '-' => Kind::Minus,
                '*' => Kind::Star,
                '/' => Kind::Slash,
                '(' => Kind::Open,
                ')' => Kind::Close,
                ',' => Kind::Comma,
                '=' | '!' | '<' | '>' | '&' | '|' => {
                    let pair = chars.peek().filter(|next| {
                        matches!(
                            (c, next),
                            ('=' | '!' | '<' | '>', '=') | ('&', '&') | ('|', '|')
                        )
                    });
                    let operator: String = std::iter::once(c).chain(pair).collect();
                    if operator == "=" {
                        return Err(ExprError::UnexpectedChar { ch: c, column });
                    }
                    return Err(ExprError::Comparison { operator, column });
                }
                _ => return Err(ExprError::UnexpectedChar { ch: c, column }),
            }
        };
        tokens.push(Token {
            kind,
            text: text[start..chars.at].to_owned(),
            column,
        });
    }
    if tokens.is_empty() {
        return Err(ExprError::Empty);
    }
    Ok((tokens, chars.column))
}

/// Reads a number starting at a digit: digits, optionally `.` and digits. A number directly
/// followed by an exponent (`1e12`, `2.5E-3`) is refused with the plain form it stands for.
fn number(chars: &mut Chars<'_>, column: usize) -> Result<Kind, ExprError> {
    let start = chars.at;
    chars.bump_while(|c| c.is_ascii_digit());
    if chars.peek() == Some('.') {
        chars.bump();
        let fraction = chars.at;
        chars.bump_while(|c| c.is_ascii_digit());
        if chars.at == fraction {
            return Err(ExprError::MalformedNumber {
                text: chars.text[start..chars.at].to_owned(),
                column,
            });
        }
    }
    let exponent_follows = matches!(chars.peek(), Some('e' | 'E'))
        && match chars.peek_second() {
            Some(c) if c.is_ascii_digit() => true,
            Some('+' | '-') => chars.text[chars.at..]
                .chars()
                .nth(2)
                .is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        };
    if exponent_follows {
        chars.bump();
        if matches!(chars.peek(), Some('+' | '-')) {
            chars.bump();
        }
        chars.bump_while(|c| c.is_ascii_digit());
        let text = &chars.text[start..chars.at];
        return Err(ExprError::ScientificNotation {
            text: text.to_owned(),
            column,
            written_out: written_out(text),
        });
    }
    Ok(Kind::Number)
}

/// `text` (a number in scientific notation) in plain digits, if it is finite and has at most 30
/// digits before the point and 12 after it.
fn written_out(text: &str) -> Option<String> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || value >= 1e30 {
        return None;
    }
    let plain = format!("{value}");
    let decimals = plain
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    (decimals <= 12).then_some(plain)
}

/// Reports the first unbalanced parenthesis, before parsing, so the message is about balance.
fn check_parentheses(tokens: &[Token]) -> Result<(), ExprError> {
    let mut open = Vec::new();
    for token in tokens {
        match token.kind {
            Kind::Open => open.push(token.column),
            Kind::Close if open.pop().is_none() => {
                return Err(ExprError::UnmatchedParen {
                    column: token.column,
                });
            }
            _ => {}
        }
    }
    match open.first() {
        Some(&column) => Err(ExprError::UnclosedParen { column }),
        None => Ok(()),
    }
}

/// An accepted expression; its depth is at most [`MAX_DEPTH`] plus the operator chains that
/// [`MAX_TOKENS`] allows, so evaluating it recursively is bounded.
#[derive(Debug, PartialEq)]
enum Tree {
    Number(f64),
    Cores,
    Mem,
    Negate(Box<Tree>),
    Binary(Operator, Box<Tree>, Box<Tree>),
    Max(Box<Tree>, Box<Tree>),
    Min(Box<Tree>, Box<Tree>),
}

/// The four arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
}

impl Tree {
    /// The value in double precision, with `max`/`min` as JavaScript's `Math.max`/`Math.min`.
    fn value(&self, resources: &Resources) -> f64 {
        match self {
            Tree::Number(value) => *value,
            Tree::Cores => resources.cores as f64,
            Tree::Mem => resources.mem_kib as f64,
            Tree::Negate(inner) => -inner.value(resources),
            Tree::Binary(operator, left, right) => {
                let (a, b) = (left.value(resources), right.value(resources));
                match operator {
                    Operator::Add => a + b,
                    Operator::Subtract => a - b,
                    Operator::Multiply => a * b,
                    Operator::Divide => a / b,
                }
            }
            Tree::Max(a, b) => js_extremum(a.value(resources), b.value(resources), f64::max),
            Tree::Min(a, b) => js_extremum(a.value(resources), b.value(resources), f64::min),
        }
    }
}

/// `Math.max`/`Math.min` of two numbers: NaN if either is NaN.
fn js_extremum(a: f64, b: f64, pick: fn(f64, f64) -> f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        pick(a, b)
    }
}

/// Recursive-descent parser over the tokens; `depth` bounds the recursion.
struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    depth: usize,
    end_column: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_kind(&self) -> Option<Kind> {
        self.peek().map(|t| t.kind)
    }

    fn unexpected(&self, expected: &'static str) -> ExprError {
        match self.peek() {
            Some(token) => ExprError::UnexpectedToken {
                expected,
                found: format!("'{}'", token.text),
                column: token.column,
            },
            None => ExprError::UnexpectedToken {
                expected,
                found: "end of expression".to_owned(),
                column: self.end_column,
            },
        }
    }

    fn expect(&mut self, kind: Kind, expected: &'static str) -> Result<(), ExprError> {
        if self.peek_kind() == Some(kind) {
            self.next += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn descend(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let column = self.peek().map_or(self.end_column, |t| t.column);
            return Err(ExprError::TooDeep { column });
        }
        Ok(())
    }

    fn expression(&mut self) -> Result<Tree, ExprError> {
        let mut left = self.term()?;
        while let Some(op @ (Kind::Plus | Kind::Minus)) = self.peek_kind() {
            self.next += 1;
            let right = self.term()?;
            let op = if op == Kind::Plus {
                Operator::Add
            } else {
                Operator::Subtract
            };
            left = Tree::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Tree, ExprError> {
        let mut left = self.unary()?;
        while let Some(op @ (Kind::Star | Kind::Slash)) = self.peek_kind() {
            self.next += 1;
            let right = self.unary()?;
            let op = if op == Kind::Star {
                Operator::Multiply
            } else {
                Operator::Divide
            };
            left = Tree::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Tree, ExprError> {
        if self.peek_kind() == Some(Kind::Minus) {
            self.next += 1;
            self.descend()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Tree::Negate(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Tree, ExprError> {
        const OPERAND: &str = "a number, 'cores', 'mem', 'max(', 'min(', '(' or '-'";
        let Some(token) = self.peek() else {
            return Err(self.unexpected(OPERAND));
        };
        let tree = match token.kind {
            // The tokenizer accepted only digits with an optional fraction, which always parse
            // (a literal too large for a double becomes infinity and is refused at the end).
            Kind::Number => Tree::Number(token.text.parse().unwrap_or(f64::INFINITY)),
            Kind::Cores => Tree::Cores,
            Kind::Mem => Tree::Mem,
            Kind::Max | Kind::Min => {
                let is_max = token.kind == Kind::Max;
                self.next += 1;
                self.descend()?;
                self.expect(Kind::Open, "'(' after max/min")?;
                let first = self.expression()?;
                self.expect(Kind::Comma, "',' between the two arguments of max/min")?;
                let second = self.expression()?;
                self.expect(Kind::Close, "')' after the second argument of max/min")?;
                self.depth -= 1;
                let (first, second) = (Box::new(first), Box::new(second));
                return Ok(if is_max {
                    Tree::Max(first, second)
                } else {
                    Tree::Min(first, second)
                });
            }
            Kind::Open => {
                self.next += 1;
                self.descend()?;
                let inner = self.expression()?;
                self.expect(Kind::Close, "')'")?;
                self.depth -= 1;
                return Ok(inner);
            }
            _ => return Err(self.unexpected(OPERAND)),
        };
        self.next += 1;
        Ok(tree)
    }
}

#[cfg(test)]
mod tests;

//! Sizing expressions: `max(2, cores + ((mem - 245760) / 5120))` and friends.
//!
//! The grammar is Mule's, widened to allow nesting, and checked here by a small tokenizer and
//! recursive-descent parser before anything is evaluated:
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
//! between tokens. Anything else (strings, assignments, `;`, other names or functions) is refused
//! with an [`ExprError`] naming the offending token and its column. An expression holds at most
//! [`MAX_TOKENS`] tokens and nests at most [`MAX_DEPTH`] levels, so no input can exhaust the stack.
//!
//! Accepted expressions are evaluated by `evalexpr` with every number written as a float, so the
//! arithmetic is IEEE-754 double precision like Mule's JavaScript evaluation: `1/2` is `0.5`,
//! `(1/2)*cores` is `cores/2` and `cores / 0.5` is `2*cores`. `max` and `min` follow JavaScript's
//! `Math.max`/`Math.min`: a NaN argument gives NaN, so `0/0` can never hide inside them. The
//! caller truncates the result toward zero once, at the end; a NaN or infinite result is an error.
//!
//! What the numbers mean (pool sizes, limits) is decided by the resolver (`config/resolve.rs`), not here.

use std::fmt;

use evalexpr::{
    ContextWithMutableFunctions, ContextWithMutableVariables, EvalexprError, Function,
    HashMapContext, Value,
};

use super::Resources;

/// The most tokens an expression may hold.
pub const MAX_TOKENS: usize = 256;

/// The deepest nesting (parentheses, unary minus, `max`/`min`) an expression may use.
pub const MAX_DEPTH: usize = 32;

/// Why an expression was refused. Columns count characters from 1 in the value as written.
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
    /// The evaluator refused an expression the grammar accepted (a defect in uberpool).
    #[error("evaluation failed: {0}")]
    Evaluation(String),
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

/// Evaluates a sizing expression against `resources`, without truncating the result.
///
/// ```
/// use uberpool::Resources;
/// use uberpool::config::expr::evaluate;
///
/// let res = Resources::new(4, 1_048_576);
/// assert_eq!(evaluate("max(2, cores + ((mem - 245760) / 5120))", &res)?, 160.8);
/// assert_eq!(evaluate("(1/2) * CORES", &res)?, 2.0);
/// assert_eq!(evaluate("cores / 0.5", &res)?, 8.0);
/// assert!(evaluate("cores; print('aha!')", &res).is_err());
/// # Ok::<(), uberpool::config::expr::ExprError>(())
/// ```
///
/// # Errors
///
/// An [`ExprError`] when the text is not in the grammar, or when the result is NaN or infinite.
pub fn evaluate(text: &str, resources: &Resources) -> Result<f64, ExprError> {
    let tokens = tokenize(text)?;
    check_parentheses(&tokens)?;
    let mut parser = Parser {
        tokens: &tokens,
        next: 0,
        depth: 0,
        end_column: text.chars().count() + 1,
    };
    let tree = parser.expression()?;
    if let Some(token) = parser.peek() {
        return Err(ExprError::UnexpectedToken {
            expected: "an operator or the end of the expression",
            found: format!("'{}'", token.text),
            column: token.column,
        });
    }
    let mut source = String::new();
    tree.render(&mut source);
    let value = evaluate_with_evalexpr(&source, resources)?;
    if value.is_nan() {
        Err(ExprError::NotANumber)
    } else if value.is_infinite() {
        Err(ExprError::Infinite)
    } else {
        Ok(value)
    }
}

/// Runs the canonical form of an accepted expression through `evalexpr`.
fn evaluate_with_evalexpr(source: &str, resources: &Resources) -> Result<f64, ExprError> {
    let failed = |e: EvalexprError| ExprError::Evaluation(e.to_string());
    let mut context = HashMapContext::new();
    context
        .set_value("cores".into(), Value::Float(resources.cores as f64))
        .map_err(failed)?;
    context
        .set_value("mem".into(), Value::Float(resources.mem_kib as f64))
        .map_err(failed)?;
    context
        .set_function(
            "max".into(),
            Function::new(|args| js_extremum(args, f64::max)),
        )
        .map_err(failed)?;
    context
        .set_function(
            "min".into(),
            Function::new(|args| js_extremum(args, f64::min)),
        )
        .map_err(failed)?;
    evalexpr::eval_with_context(source, &context)
        .and_then(|value| value.as_number())
        .map_err(failed)
}

/// `Math.max`/`Math.min` of two numbers: NaN if either is NaN.
fn js_extremum(args: &Value, pick: fn(f64, f64) -> f64) -> evalexpr::EvalexprResult<Value> {
    let args = args.as_fixed_len_tuple(2)?;
    let (a, b) = (args[0].as_number()?, args[1].as_number()?);
    Ok(Value::Float(if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        pick(a, b)
    }))
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

/// Splits `text` into tokens, refusing characters and names outside the grammar.
fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let column = at + 1;
        if c.is_whitespace() {
            at += 1;
            continue;
        }
        if tokens.len() == MAX_TOKENS {
            return Err(ExprError::TooLong);
        }
        let start = at;
        let kind = if c.is_ascii_digit() {
            while at < chars.len() && chars[at].is_ascii_digit() {
                at += 1;
            }
            if at < chars.len() && chars[at] == '.' {
                at += 1;
                let fraction_start = at;
                while at < chars.len() && chars[at].is_ascii_digit() {
                    at += 1;
                }
                if at == fraction_start {
                    let text = chars[start..at].iter().collect();
                    return Err(ExprError::MalformedNumber { text, column });
                }
            }
            Kind::Number
        } else if c.is_ascii_alphabetic() || c == '_' {
            while at < chars.len() && (chars[at].is_ascii_alphanumeric() || chars[at] == '_') {
                at += 1;
            }
            let name: String = chars[start..at].iter().collect();
            match name.to_ascii_lowercase().as_str() {
                "cores" => Kind::Cores,
                "mem" => Kind::Mem,
                "max" => Kind::Max,
                "min" => Kind::Min,
                _ => return Err(ExprError::UnknownName { name, column }),
            }
        } else {
            at += 1;
            match c {
                '+' => Kind::Plus,
                '-' => Kind::Minus,
                '*' => Kind::Star,
                '/' => Kind::Slash,
                '(' => Kind::Open,
                ')' => Kind::Close,
                ',' => Kind::Comma,
                _ => return Err(ExprError::UnexpectedChar { ch: c, column }),
            }
        };
        tokens.push(Token {
            kind,
            text: chars[start..at].iter().collect(),
            column,
        });
    }
    if tokens.is_empty() {
        return Err(ExprError::Empty);
    }
    Ok(tokens)
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

/// An accepted expression.
#[derive(Debug)]
enum Tree {
    Number(String),
    Cores,
    Mem,
    Negate(Box<Tree>),
    Binary(char, Box<Tree>, Box<Tree>),
    Call(&'static str, Box<Tree>, Box<Tree>),
}

impl Tree {
    /// Writes the expression for `evalexpr`: fully parenthesised, every number a float.
    fn render(&self, out: &mut String) {
        match self {
            Tree::Number(text) => {
                out.push_str(text);
                if !text.contains('.') {
                    out.push_str(".0");
                }
            }
            Tree::Cores => out.push_str("cores"),
            Tree::Mem => out.push_str("mem"),
            Tree::Negate(inner) => {
                out.push_str("(-");
                inner.render(out);
                out.push(')');
            }
            Tree::Binary(op, left, right) => {
                out.push('(');
                left.render(out);
                out.push(' ');
                out.push(*op);
                out.push(' ');
                right.render(out);
                out.push(')');
            }
            Tree::Call(name, a, b) => {
                out.push('(');
                out.push_str(name);
                out.push('(');
                a.render(out);
                out.push_str(", ");
                b.render(out);
                out.push_str("))");
            }
        }
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
            let op = if op == Kind::Plus { '+' } else { '-' };
            left = Tree::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Tree, ExprError> {
        let mut left = self.unary()?;
        while let Some(op @ (Kind::Star | Kind::Slash)) = self.peek_kind() {
            self.next += 1;
            let right = self.unary()?;
            let op = if op == Kind::Star { '*' } else { '/' };
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
            Kind::Number => Tree::Number(token.text.clone()),
            Kind::Cores => Tree::Cores,
            Kind::Mem => Tree::Mem,
            Kind::Max | Kind::Min => {
                let name = if token.kind == Kind::Max {
                    "max"
                } else {
                    "min"
                };
                self.next += 1;
                self.descend()?;
                self.expect(Kind::Open, "'(' after max/min")?;
                let first = self.expression()?;
                self.expect(Kind::Comma, "',' between the two arguments of max/min")?;
                let second = self.expression()?;
                self.expect(Kind::Close, "')' after the second argument of max/min")?;
                self.depth -= 1;
                return Ok(Tree::Call(name, Box::new(first), Box::new(second)));
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

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.render(&mut out);
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests;

//! Property tests of the configuration reader: the properties reader, the expression evaluator
//! and the whole resolver never panic on arbitrary input, and every expression built from the
//! grammar evaluates to what a small reference evaluator (written here, independent of
//! `expr/`) computes. Inside the crate because `expr` and `properties` are crate-private; the
//! time and allocation bounds on large inputs are checked by `tests/config_fuzz.rs`.

use proptest::prelude::*;

use super::expr::{self, ExprError};
use super::properties;
use super::{PoolsConfig, Resources};

/// Text made mostly of characters that matter to the reader and the grammar.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\\".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\r".to_owned()),
        Just("=".to_owned()),
        Just(":".to_owned()),
        Just(" ".to_owned()),
        Just("#".to_owned()),
        Just("!".to_owned()),
        Just("\\u".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(",".to_owned()),
        Just("max".to_owned()),
        Just("MIN".to_owned()),
        Just("cores".to_owned()),
        Just("mem".to_owned()),
        Just("-".to_owned()),
        Just("/".to_owned()),
        Just("*".to_owned()),
        Just("+".to_owned()),
        Just("0".to_owned()),
        Just("1.5".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("org.mule.runtime.scheduler.SchedulerPoolStrategy=".to_owned()),
        Just("org.mule.runtime.scheduler.uber.threadPool.maxSize=".to_owned()),
        Just("org.mule.runtime.scheduler.io.workQueue.size=".to_owned()),
        Just("org.mule.runtime.scheduler.gracefulShutdownTimeout=".to_owned()),
        Just("DEDICATED".to_owned()),
        Just("uber".to_owned()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
}

fn resources() -> impl Strategy<Value = Resources> {
    (0usize..512, 0u64..(1 << 42)).prop_map(|(cores, mem)| Resources::new(cores, mem))
}

/// An expression of the grammar, kept as a tree for the reference evaluator.
#[derive(Clone, Debug)]
enum Expr {
    Number(String),
    Cores,
    Mem,
    Negate(Box<Expr>),
    Binary(char, Box<Expr>, Box<Expr>),
    Call(bool, Box<Expr>, Box<Expr>),
}

/// How tightly a form binds when written without parentheses.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Binary('+' | '-', ..) => 1,
        Expr::Binary(..) => 2,
        Expr::Negate(_) => 3,
        _ => 4,
    }
}

/// Writes `e` with only the parentheses precedence needs, in the given case and spacing.
fn write(e: &Expr, upper: bool, spaced: bool) -> String {
    let name = |n: &str| {
        if upper {
            n.to_uppercase()
        } else {
            n.to_owned()
        }
    };
    let wrap = |inner: &Expr, needs: bool| {
        let text = write(inner, upper, spaced);
        if needs { format!("({text})") } else { text }
    };
    match e {
        Expr::Number(text) => text.clone(),
        Expr::Cores => name("cores"),
        Expr::Mem => name("mem"),
        Expr::Negate(inner) => format!("-{}", wrap(inner, precedence(inner) < 3)),
        Expr::Binary(op, left, right) => {
            let p = precedence(e);
            let gap = if spaced { " " } else { "" };
            format!(
                "{}{gap}{op}{gap}{}",
                wrap(left, precedence(left) < p),
                wrap(right, precedence(right) <= p)
            )
        }
        Expr::Call(is_max, a, b) => format!(
            "{}({},{}{})",
            name(if *is_max { "max" } else { "min" }),
            write(a, upper, spaced),
            if spaced { " " } else { "" },
            write(b, upper, spaced)
        ),
    }
}

/// The reference: IEEE doubles, `max`/`min` that return NaN when either argument is NaN.
fn reference(e: &Expr, res: &Resources) -> f64 {
    match e {
        Expr::Number(text) => text.parse().unwrap(),
        Expr::Cores => res.cores as f64,
        Expr::Mem => res.mem_kib as f64,
        Expr::Negate(inner) => -reference(inner, res),
        Expr::Binary(op, l, r) => {
            let (a, b) = (reference(l, res), reference(r, res));
            match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                _ => a / b,
            }
        }
        Expr::Call(is_max, l, r) => {
            let (a, b) = (reference(l, res), reference(r, res));
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if *is_max {
                a.max(b)
            } else {
                a.min(b)
            }
        }
    }
}

fn expression() -> impl Strategy<Value = Expr> {
    let number = (0u32..100_000, prop::option::of("[0-9]{1,3}")).prop_map(|(whole, fraction)| {
        Expr::Number(match fraction {
            Some(f) => format!("{whole}.{f}"),
            None => whole.to_string(),
        })
    });
    let leaf = prop_oneof![number, Just(Expr::Cores), Just(Expr::Mem)];
    leaf.prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Negate(Box::new(e))),
            (
                prop::sample::select(vec!['+', '-', '*', '/']),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, r)| Expr::Binary(op, Box::new(l), Box::new(r))),
            (any::<bool>(), inner.clone(), inner).prop_map(|(m, a, b)| Expr::Call(
                m,
                Box::new(a),
                Box::new(b)
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reader_never_panics(text in any::<String>()) {
        let _ = properties::parse(&text);
    }

    #[test]
    fn reader_never_panics_on_tricky_text(text in tricky_text()) {
        let _ = properties::parse(&text);
    }

    #[test]
    fn reader_returns_plain_entries_with_their_lines(
        entries in prop::collection::vec(("[a-zA-Z.]{1,20}", "[a-zA-Z0-9(),*/+ -]{0,20}"), 0..20),
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let text: String = entries.iter().map(|(k, v)| format!("{k} = {v}{end}")).collect();
        let parsed = properties::parse(&text).unwrap();
        prop_assert_eq!(parsed.len(), entries.len());
        for (index, (property, (key, value))) in parsed.iter().zip(&entries).enumerate() {
            prop_assert_eq!(&property.key, key);
            prop_assert_eq!(&property.value, value.trim_start());
            prop_assert_eq!(property.line, index + 1);
        }
    }

    #[test]
    fn evaluator_never_panics(text in any::<String>(), res in resources()) {
        let _ = expr::evaluate(&text, &res);
    }

    #[test]
    fn evaluator_never_panics_on_tricky_text(text in tricky_text(), res in resources()) {
        let _ = expr::evaluate(&text, &res);
    }

    #[test]
    fn resolver_never_panics(text in tricky_text(), res in resources()) {
        let _ = PoolsConfig::parse(&text, &res);
        let _ = PoolsConfig::parse(&format!("org.mule.runtime.scheduler.SchedulerPoolStrategy=UBER\n{text}"), &res);
        let _ = PoolsConfig::parse(&format!("org.mule.runtime.scheduler.SchedulerPoolStrategy=DEDICATED\n{text}"), &res);
    }

    #[test]
    fn grammar_expressions_evaluate_like_the_reference(
        e in expression(),
        upper in any::<bool>(),
        spaced in any::<bool>(),
        res in resources(),
    ) {
        let text = write(&e, upper, spaced);
        let expected = reference(&e, &res);
        let actual = expr::evaluate(&text, &res);
        if expected.is_nan() {
            prop_assert_eq!(actual, Err(ExprError::NotANumber), "{}", text);
        } else if expected.is_infinite() {
            prop_assert_eq!(actual, Err(ExprError::Infinite), "{}", text);
        } else {
            prop_assert_eq!(actual, Ok(expected), "{}", text);
        }
    }

    #[test]
    fn resolved_sizes_are_the_truncated_reference_value(
        e in expression(),
        res in resources(),
    ) {
        let text = write(&e, false, true);
        let conf = format!(
            "org.mule.runtime.scheduler.SchedulerPoolStrategy=UBER\n\
             org.mule.runtime.scheduler.uber.workQueue.size={text}\n"
        );
        let expected = reference(&e, &res);
        match PoolsConfig::parse(&conf, &res) {
            Ok(config) => {
                prop_assert!(expected.is_finite() && expected.trunc() >= 0.0, "{}", text);
                prop_assert_eq!(config.uber.queue_size as f64, expected.trunc());
            }
            Err(err) => {
                prop_assert_eq!(err.line(), Some(2));
                prop_assert!(
                    !expected.is_finite() || expected.trunc() < 0.0 || expected.trunc() > i32::MAX as f64,
                    "{} refused: {}", text, err
                );
            }
        }
    }
}

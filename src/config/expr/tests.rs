//! Unit tests of the expression tokenizer, parser and evaluator.

use super::*;

const RES: Resources = Resources::new(4, 1_048_576);

fn eval(text: &str) -> Result<f64, ExprError> {
    evaluate(text, &RES)
}

#[test]
fn integers_divide_as_floats() {
    assert_eq!(eval("1/2"), Ok(0.5));
    assert_eq!(eval("(1/2)*cores"), Ok(2.0));
    assert_eq!(eval("cores / 0.5"), Ok(8.0));
    assert_eq!(eval("0.5 *cores"), Ok(2.0));
}

#[test]
fn operators_keep_precedence_and_left_associativity() {
    assert_eq!(eval("2 + 3 * 4"), Ok(14.0));
    assert_eq!(eval("8 / 2 / 2"), Ok(2.0));
    assert_eq!(eval("10 - 3 - 2"), Ok(5.0));
    assert_eq!(eval("(2 + 3) * 4"), Ok(20.0));
}

#[test]
fn unary_minus_applies_anywhere_an_operand_may_stand() {
    assert_eq!(eval("-cores"), Ok(-4.0));
    assert_eq!(eval("2 * -3"), Ok(-6.0));
    assert_eq!(eval("--2"), Ok(2.0));
    assert_eq!(eval("-(1 - 3)"), Ok(2.0));
}

#[test]
fn max_and_min_nest_anywhere_and_ignore_case() {
    assert_eq!(eval("2*max(cores, 3)"), Ok(8.0));
    assert_eq!(eval("max(min(cores, 2), 1)"), Ok(2.0));
    assert_eq!(eval("MAX(2, CORES)"), Ok(4.0));
    assert_eq!(eval("min(max(1, min(cores, 3)), max(mem, 5)) + 1"), Ok(4.0));
}

#[test]
fn nan_inside_max_or_min_is_not_hidden() {
    assert_eq!(eval("max(0/0, 2)"), Err(ExprError::NotANumber));
    assert_eq!(eval("min(2, 0/0)"), Err(ExprError::NotANumber));
}

#[test]
fn division_by_zero_is_infinite_and_zero_by_zero_is_nan() {
    assert_eq!(eval("cores/0"), Err(ExprError::Infinite));
    assert_eq!(eval("0/0"), Err(ExprError::NotANumber));
}

#[test]
fn injection_attempts_name_the_offending_token() {
    assert_eq!(
        eval("; print('aha!')").unwrap_err().to_string(),
        "statement separators are not allowed: found ';' at column 1"
    );
    assert_eq!(
        eval("print(1)").unwrap_err().to_string(),
        "unknown name 'print' at column 1 (allowed: cores, mem, max(a, b), min(a, b))"
    );
    assert_eq!(
        eval("cores = 3").unwrap_err().to_string(),
        "assignments are not allowed: found '=' at column 7"
    );
    assert_eq!(
        eval("\"4\"").unwrap_err().to_string(),
        "strings are not allowed: found '\"' at column 1"
    );
}

#[test]
fn unbalanced_parentheses_say_which_one() {
    assert_eq!(
        eval("(-2").unwrap_err().to_string(),
        "missing ) in parenthetical: the '(' at column 1 is never closed"
    );
    assert_eq!(eval("cores)"), Err(ExprError::UnmatchedParen { column: 6 }));
}

#[test]
fn grammar_errors_say_what_was_expected() {
    assert_eq!(
        eval("2 +").unwrap_err().to_string(),
        "expected a number, 'cores', 'mem', 'max(', 'min(', '(' or '-' at column 4, found end of expression"
    );
    assert!(matches!(
        eval("2 cores"),
        Err(ExprError::UnexpectedToken { column: 3, .. })
    ));
    assert!(matches!(
        eval("max(1)"),
        Err(ExprError::UnexpectedToken { column: 6, .. })
    ));
    assert!(matches!(
        eval("max 1"),
        Err(ExprError::UnexpectedToken { column: 5, .. })
    ));
    assert!(matches!(
        eval("max(1,2,3)"),
        Err(ExprError::UnexpectedToken { column: 8, .. })
    ));
    assert_eq!(
        eval("1.").unwrap_err(),
        ExprError::MalformedNumber {
            text: "1.".into(),
            column: 1
        }
    );
    assert!(matches!(
        eval("+1"),
        Err(ExprError::UnexpectedToken { column: 1, .. })
    ));
}

#[test]
fn empty_and_blank_values_are_refused() {
    assert_eq!(eval(""), Err(ExprError::Empty));
    assert_eq!(eval("  \t "), Err(ExprError::Empty));
}

#[test]
fn deep_nesting_and_long_expressions_are_refused_without_overflow() {
    let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert!(matches!(eval(&deep), Err(ExprError::TooDeep { .. })));
    let minus = format!("{}1", "-".repeat(100));
    assert!(matches!(eval(&minus), Err(ExprError::TooDeep { .. })));
    let long = vec!["1"; 10_000].join("+");
    assert_eq!(eval(&long), Err(ExprError::TooLong));
    let deepest = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(eval(&deepest), Ok(1.0));
    let deepest_calls = format!("{}1{}", "max(0, ".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(eval(&deepest_calls), Ok(1.0));
    let longest_chain = vec!["1"; MAX_TOKENS / 2].join(" - ");
    assert_eq!(eval(&longest_chain), Ok(2.0 - (MAX_TOKENS / 2) as f64));
}

#[test]
fn an_expression_is_parsed_once_into_the_tree_that_is_evaluated() {
    let tree = parse("max(2, cores/2)").unwrap();
    assert_eq!(
        tree,
        Tree::Max(
            Box::new(Tree::Number(2.0)),
            Box::new(Tree::Binary(
                Operator::Divide,
                Box::new(Tree::Cores),
                Box::new(Tree::Number(2.0))
            ))
        )
    );
    assert_eq!(tree.value(&RES), 2.0);
}

#[test]
fn integer_literals_are_floats_so_division_never_truncates() {
    assert_eq!(eval("7/2"), Ok(3.5));
    assert_eq!(eval("max(1/3, 0)"), Ok(1.0 / 3.0));
}

#[test]
fn comparisons_say_they_are_not_allowed_and_what_is() {
    assert_eq!(
        eval("cores == 2").unwrap_err().to_string(),
        "'==' at column 7: comparisons and logical operators are not allowed; a size is written \
         with numbers, cores, mem, + - * /, parentheses, max(a, b) and min(a, b)"
    );
    for (text, operator, column) in [
        ("cores != 2", "!=", 7),
        ("cores<2", "<", 6),
        ("cores >= 2", ">=", 7),
        ("mem > 1", ">", 5),
        ("1 && 2", "&&", 3),
        ("1||2", "||", 2),
        ("!cores", "!", 1),
    ] {
        assert_eq!(
            eval(text),
            Err(ExprError::Comparison {
                operator: operator.to_owned(),
                column
            }),
            "{text}"
        );
    }
    // A single '=' is still an assignment.
    assert_eq!(
        eval("cores = 2").unwrap_err().to_string(),
        "assignments are not allowed: found '=' at column 7"
    );
}

#[test]
fn scientific_notation_says_to_write_the_number_out() {
    assert_eq!(
        eval("1e12").unwrap_err().to_string(),
        "scientific notation '1e12' at column 1 is not supported: write the number out, as \
         1000000000000"
    );
    assert_eq!(
        eval("cores * 2.5E-3"),
        Err(ExprError::ScientificNotation {
            text: "2.5E-3".to_owned(),
            column: 9,
            written_out: Some("0.0025".to_owned())
        })
    );
    assert_eq!(
        eval("1e+400").unwrap_err().to_string(),
        "scientific notation '1e+400' at column 1 is not supported: write the number out"
    );
    // A name that merely starts with 'e' after a number is not an exponent.
    assert!(matches!(eval("2 e"), Err(ExprError::UnknownName { .. })));
    assert!(matches!(eval("2e"), Err(ExprError::UnknownName { .. })));
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(
        eval("é + x"),
        Err(ExprError::UnexpectedChar {
            ch: 'é', column: 1
        })
    );
    assert_eq!(
        eval("(é)").unwrap_err(),
        ExprError::UnexpectedChar {
            ch: 'é', column: 2
        }
    );
    assert!(matches!(
        eval("ü ü 1 +"),
        Err(ExprError::UnexpectedChar { column: 1, .. })
    ));
    assert_eq!(
        eval("2 +   ").unwrap_err(),
        ExprError::UnexpectedToken {
            expected: "a number, 'cores', 'mem', 'max(', 'min(', '(' or '-'",
            found: "end of expression".to_owned(),
            column: 7
        }
    );
}

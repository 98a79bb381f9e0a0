use super::*;
use crate::identity::{AttrValue, Attributes};

fn attrs() -> Attributes {
    let mut a = Attributes::new();
    a.insert("floor".into(), AttrValue::Int(3));
    a.insert("type".into(), AttrValue::Str("sensor".into()));
    a.insert(
        "tags".into(),
        AttrValue::Strs(vec!["red".into(), "blue".into()]),
    );
    a.insert("active".into(), AttrValue::Bool(true));
    a
}

fn m(q: &str) -> bool {
    Query::parse(q).unwrap().matches("Device-1", &attrs())
}

#[test]
fn comparisons() {
    assert!(m("attributes.floor = 3"));
    assert!(m("attributes.floor >= 3 and attributes.floor <= 3"));
    assert!(m("attributes.floor > 2"));
    assert!(!m("attributes.floor < 3"));
    assert!(m("attributes.floor <> 4"));
    assert!(m("attributes.floor != 4"));
    assert!(m("attributes.type = 'sensor'"));
    assert!(m("attributes.type = \"sensor\""));
    assert!(
        !m("attributes.type = 'Sensor'"),
        "strings are case-sensitive"
    );
    assert!(m("attributes.floor > -1"));
}

#[test]
fn type_mismatch_and_missing_are_false() {
    assert!(!m("attributes.floor = '3'"));
    assert!(!m("attributes.type > 1"));
    assert!(!m("attributes.type < 'z'"), "ordering is for integers only");
    assert!(!m("attributes.missing = 1"));
    assert!(!m("attributes.missing <> 1"));
    assert!(!m("attributes.floor <> 'x'"));
}

#[test]
fn auth_name_is_case_insensitive() {
    assert!(m("authenticationName = 'device-1'"));
    assert!(m("AUTHENTICATIONNAME IN ['x', 'DEVICE-1']"));
    assert!(!m("authenticationName <> 'DEVICE-1'"));
    assert!(!m("authenticationName = 1"));
}

#[test]
fn arrays_and_in() {
    assert!(m("attributes.tags = 'red'"));
    assert!(!m("attributes.tags = 'green'"));
    assert!(m("attributes.tags <> 'green'"));
    assert!(!m("attributes.tags <> 'blue'"));
    assert!(m("attributes.tags IN ['green', 'blue']"));
    assert!(!m("attributes.tags in ['green']"));
    assert!(m("attributes.floor in [1, 2, 3]"));
    assert!(!m("attributes.floor in ['3']"));
    assert!(!m("attributes.tags > 1"));
    assert!(m("attributes.active = 'true'"));
}

#[test]
fn precedence_and_parentheses() {
    // and binds tighter: false or (true and true)
    assert!(m(
        "attributes.floor = 9 or attributes.floor = 3 and attributes.type = 'sensor'"
    ));
    // (false or true) and false
    assert!(!m(
        "(attributes.floor = 9 or attributes.floor = 3) AND attributes.type = 'x'"
    ));
    // true or (true and false) = true, whereas (true or true) and false = false
    assert!(m(
        "attributes.floor = 3 OR attributes.floor = 3 And attributes.type = 'x'"
    ));
    assert!(m("((((attributes.floor = 3))))"));
}

#[test]
fn errors_name_position_and_expectation() {
    let e = Query::parse("attributes.floor").unwrap_err();
    assert_eq!(
        e,
        "expected an operator after 'attributes.floor' at position 17"
    );
    let e = Query::parse("attributes.floor = ").unwrap_err();
    assert!(
        e.contains("expected a quoted string or an integer at position 20"),
        "{e}"
    );
    let e = Query::parse("attributes.floor = 3 attributes.x = 1").unwrap_err();
    assert!(e.contains("position 22"), "{e}");
    let e = Query::parse("foo = 1").unwrap_err();
    assert!(e.contains("found 'foo'"), "{e}");
    let e = Query::parse("attributes.a-b = 1").unwrap_err();
    assert!(e.contains("unexpected character '-' at position 13"), "{e}");
    let e = Query::parse("attributes.x = 'open").unwrap_err();
    assert!(
        e.contains("unterminated string starting at position 16"),
        "{e}"
    );
    let e = Query::parse("(attributes.x = 1").unwrap_err();
    assert!(e.contains("expected ')' at position 18"), "{e}");
    let e = Query::parse("attributes.x in [1 2]").unwrap_err();
    assert!(e.contains("expected ',' or ']'"), "{e}");
    let e = Query::parse("attributes.x in 1").unwrap_err();
    assert!(e.contains("expected '['"), "{e}");
    assert!(Query::parse("").is_err());
    assert!(Query::parse("attributes. = 1").is_err());
    assert!(Query::parse("attributes.x = 99999999999999999999").is_err());
}

#[test]
fn hostile_inputs_are_bounded() {
    let deep = format!("{}attributes.x = 1{}", "(".repeat(33), ")".repeat(33));
    let e = Query::parse(&deep).unwrap_err();
    assert!(e.contains("nested deeper than 32"), "{e}");
    let ok = format!("{}attributes.floor = 3{}", "(".repeat(32), ")".repeat(32));
    assert!(Query::parse(&ok).unwrap().matches("a", &attrs()));
    // Far deeper than a stack could take if unchecked, and too long.
    let huge = "(".repeat(100_000);
    assert!(Query::parse(&huge).unwrap_err().contains("at most 1024"));
    let long = vec!["attributes.x = 1"; 70].join(" or ");
    assert!(long.len() > 1024);
    assert!(Query::parse(&long).is_err());
}

#[test]
fn keeps_text() {
    let q = Query::parse("attributes.floor = 3").unwrap();
    assert_eq!(q.text, "attributes.floor = 3");
}

//! Unit tests of the client's pure parts.

use super::*;

#[test]
fn sub_table_factors() {
    let subs = vec![
        ("bench/#".to_string(), None),
        ("bench/#".to_string(), None),
        ("bench/1".to_string(), None),
        ("$share/g/bench/#".to_string(), Some("g".to_string())),
        ("$share/g/bench/#".to_string(), Some("g".to_string())),
        ("$share/h/other/#".to_string(), Some("h".to_string())),
    ];
    let t = SubTable::new(&subs);
    assert_eq!(t.factor("bench/1"), 4); // 2 + 1 plain, 1 group
    assert_eq!(t.factor("bench/2"), 3);
    assert_eq!(t.factor("other/x"), 1);
    assert_eq!(t.factor("none"), 0);
}

#[test]
fn username_template_gives_each_client_its_own_name() {
    assert_eq!(task::username_of("dev-%i", 17), "dev-17");
    assert_eq!(task::username_of("%i-%i", 3), "3-3");
    assert_eq!(task::username_of("shared", 17), "shared");
}

use super::*;

/// The MQTT protocol's own bounds on a topic: its length field, and a generous level count.
const TEST_LIMITS: TopicLimits = TopicLimits {
    max_len: 65_535,
    max_levels: 128,
};

fn f(s: &str) -> TopicFilter<'_> {
    parse_filter(s, TEST_LIMITS).unwrap()
}

fn matched(t: &mut SubTrie, topic: &str) -> Vec<u64> {
    let mut out = Vec::new();
    t.matches(topic, &mut out);
    let mut v: Vec<u64> = out.iter().map(|m| m.session.0).collect();
    v.sort();
    v
}

#[test]
fn filter_syntax() {
    let l = TEST_LIMITS;
    for ok in [
        "a",
        "a/b",
        "+",
        "#",
        "a/+/c",
        "a/#",
        "+/+",
        "/",
        "$share/g/a/#",
        "$SYS/#",
    ] {
        assert!(parse_filter(ok, l).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "a#",
        "a/#/b",
        "a+",
        "a/b+/c",
        "$share/g",
        "$share//a",
        "$share/g+/a",
        "#/a",
    ] {
        assert!(parse_filter(bad, l).is_err(), "{bad}");
    }
    assert_eq!(f("$share/grp/x/+").group, Some("grp"));
    assert_eq!(f("$share/grp/x/+").filter, "x/+");
    let tight = TopicLimits {
        max_len: 5,
        max_levels: 2,
    };
    assert_eq!(parse_filter("abcdef", tight), Err(TopicError::TooLong));
    assert_eq!(parse_filter("a/b/c", tight), Err(TopicError::TooManyLevels));
    assert_eq!(validate_topic("a/+", l), Err(TopicError::Wildcard));
    assert_eq!(validate_topic("", l), Err(TopicError::Empty));
    assert_eq!(
        validate_topic("a/b/c", tight),
        Err(TopicError::TooManyLevels)
    );
    assert_eq!(validate_topic("a/b", tight), Ok(()));
    assert_eq!(validate_topic("a/", tight), Ok(()));
    assert_eq!(validate_topic("a//", tight), Err(TopicError::TooManyLevels));
    assert_eq!(validate_topic("x/#", l), Err(TopicError::Wildcard));
    assert_eq!(validate_topic("#", l), Err(TopicError::Wildcard));
    assert_eq!(validate_topic("a\0b", l), Err(TopicError::NulChar));
    assert_eq!(validate_topic("é/ü/日本", l), Ok(()));
    assert_eq!(validate_topic("$SYS/x", l), Ok(()));
}

#[test]
fn wildcard_matching() {
    let mut t = SubTrie::default();
    let o = SubOpts::default();
    t.insert(f("a/b/c"), SessionId(1), o);
    t.insert(f("a/+/c"), SessionId(2), o);
    t.insert(f("a/#"), SessionId(3), o);
    t.insert(f("#"), SessionId(4), o);
    t.insert(f("+/+/+"), SessionId(5), o);
    t.insert(f("$SYS/#"), SessionId(6), o);
    t.insert(f("+/b"), SessionId(7), o);
    assert_eq!(matched(&mut t, "a/b/c"), vec![1, 2, 3, 4, 5]);
    assert_eq!(matched(&mut t, "a"), vec![3, 4]);
    assert_eq!(matched(&mut t, "a/b"), vec![3, 4, 7]);
    assert_eq!(matched(&mut t, "$SYS/x"), vec![6]);
    assert_eq!(matched(&mut t, "x/y/z"), vec![4, 5]);
    assert_eq!(t.len(), 7);
    assert!(t.remove(f("a/#"), SessionId(3)));
    assert!(!t.remove(f("a/#"), SessionId(3)));
    assert_eq!(matched(&mut t, "a/b/c"), vec![1, 2, 4, 5]);
    assert_eq!(t.len(), 6);
}

#[test]
fn empty_levels() {
    let mut t = SubTrie::default();
    t.insert(f("/+"), SessionId(1), SubOpts::default());
    t.insert(f("+/"), SessionId(2), SubOpts::default());
    assert_eq!(matched(&mut t, "/x"), vec![1]);
    assert_eq!(matched(&mut t, "x/"), vec![2]);
    assert_eq!(matched(&mut t, "/"), vec![1, 2]);
}

#[test]
fn shared_groups_round_robin() {
    let mut t = SubTrie::default();
    for s in 1..=3 {
        t.insert(f("$share/g/t/#"), SessionId(s), SubOpts::default());
    }
    t.insert(f("$share/h/t/#"), SessionId(9), SubOpts::default());
    let mut counts = [0; 10];
    for _ in 0..300 {
        let mut out = Vec::new();
        t.matches("t/x", &mut out);
        assert_eq!(out.len(), 2, "one member of each group");
        for m in out {
            assert!(m.shared);
            counts[m.session.0 as usize] += 1;
        }
    }
    assert_eq!(&counts[1..4], &[100, 100, 100]);
    assert_eq!(counts[9], 300);
    assert!(t.remove(f("$share/g/t/#"), SessionId(2)));
    let mut out = Vec::new();
    t.matches("t/x", &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn wide_levels_switch_to_a_map_and_keep_matching() {
    // 20 devices under one level: past FEW_CHILDREN the level becomes a hash map; every
    // subscription must still match, unsubscribe, and leave an empty trie behind (the retained
    // index's half of this is in `retained.rs`).
    let mut t = SubTrie::default();
    let o = SubOpts::default();
    let filters: Vec<String> = (0..20).map(|i| format!("fleet/dev{i}/cmd/#")).collect();
    for (i, fl) in filters.iter().enumerate() {
        assert!(!t.insert(f(fl), SessionId(i as u64), o));
    }
    assert!(matches!(
        t.root.children.get("fleet").unwrap().children,
        Children::Many(_)
    ));
    for i in 0..20u64 {
        assert_eq!(matched(&mut t, &format!("fleet/dev{i}/cmd/x")), vec![i]);
    }
    assert!(matched(&mut t, "fleet/dev20/cmd/x").is_empty());
    for (i, fl) in filters.iter().enumerate() {
        assert!(t.remove(f(fl), SessionId(i as u64)));
    }
    assert!(t.is_empty() && t.root.is_empty(), "nothing left behind");
}

#[test]
fn a_shared_subscription_is_picked_by_its_filter_in_turn() {
    let mut t = SubTrie::default();
    let o = SubOpts::default();
    for (f, s) in [
        ("$share/g/a/+/c", 1),
        ("$share/g/a/+/c", 2),
        ("$share/h/a/+/c", 3),
        ("$share/g/a/#", 4),
        ("a/+/c", 5),
    ] {
        t.insert(
            parse_filter(f, TopicLimits::UNLIMITED).unwrap(),
            SessionId(s),
            o,
        );
    }
    let pick = |t: &mut SubTrie, f: &str| {
        t.pick_shared(parse_filter(f, TopicLimits::UNLIMITED).unwrap())
            .map(|m| (m.session.0, m.shared))
    };
    // Members of group g under exactly a/+/c take turns; other groups and filters are apart.
    assert_eq!(pick(&mut t, "$share/g/a/+/c"), Some((1, true)));
    assert_eq!(pick(&mut t, "$share/g/a/+/c"), Some((2, true)));
    assert_eq!(pick(&mut t, "$share/g/a/+/c"), Some((1, true)));
    assert_eq!(pick(&mut t, "$share/h/a/+/c"), Some((3, true)));
    assert_eq!(pick(&mut t, "$share/g/a/#"), Some((4, true)));
    assert_eq!(pick(&mut t, "$share/x/a/+/c"), None);
    assert_eq!(pick(&mut t, "$share/g/a/b"), None);
    assert_eq!(pick(&mut t, "a/+/c"), None);
}

#[test]
fn a_sessions_options_are_found_by_filter() {
    let mut t = SubTrie::default();
    let q1 = SubOpts {
        qos: 1,
        ..SubOpts::default()
    };
    let q2 = SubOpts {
        qos: 2,
        no_local: true,
        ..SubOpts::default()
    };
    let f = |s: &'static str| parse_filter(s, TopicLimits::UNLIMITED).unwrap();
    t.insert(f("a/+/c"), SessionId(1), q1);
    t.insert(f("a/#"), SessionId(1), q2);
    t.insert(f("$share/g/a/#"), SessionId(2), q1);
    assert_eq!(t.opts_of(f("a/+/c"), SessionId(1)), Some(q1));
    assert_eq!(t.opts_of(f("a/#"), SessionId(1)), Some(q2));
    assert_eq!(t.opts_of(f("$share/g/a/#"), SessionId(2)), Some(q1));
    assert_eq!(t.opts_of(f("a/#"), SessionId(2)), None);
    assert_eq!(t.opts_of(f("$share/h/a/#"), SessionId(2)), None);
    assert_eq!(t.opts_of(f("a/b"), SessionId(1)), None);
}

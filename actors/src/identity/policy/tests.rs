use super::*;

fn p(publish: &[&str], subscribe: &[&str]) -> ClientPolicy {
    ClientPolicy::new(
        publish.iter().map(|s| s.to_string()).collect(),
        subscribe.iter().map(|s| s.to_string()).collect(),
    )
}

#[test]
fn allow_all_allows_everything() {
    let a = ClientPolicy::allow_all();
    assert!(a.may_publish("$SYS/x"));
    assert!(a.may_subscribe("#"));
}

#[test]
fn empty_policy_allows_nothing() {
    let e = p(&[], &[]);
    assert!(!e.may_publish("a"));
    assert!(!e.may_subscribe("a"));
}

#[test]
fn publish_matching() {
    let pol = p(&["a/+/c", "d/#", "exact", "$SYS/x/+"], &[]);
    assert!(pol.may_publish("a/b/c"));
    assert!(pol.may_publish("a//c"));
    assert!(!pol.may_publish("a/b/c/d"));
    assert!(!pol.may_publish("a/b"));
    assert!(pol.may_publish("d"));
    assert!(pol.may_publish("d/e/f"));
    assert!(pol.may_publish("exact"));
    assert!(!pol.may_publish("Exact"));
    assert!(!pol.may_publish("exact/more"));
    assert!(pol.may_publish("$SYS/x/y"));
    assert!(!pol.may_publish("$SYS/y/y"));
}

#[test]
fn dollar_topics_need_a_literal_first_segment() {
    let pol = p(&["#", "+/x"], &["#", "+/x"]);
    assert!(pol.may_publish("a/x"));
    assert!(!pol.may_publish("$SYS/x"));
    assert!(!pol.may_publish("$x"));
    assert!(pol.may_subscribe("a/#"));
    assert!(!pol.may_subscribe("$SYS/#"));
    assert!(!pol.may_subscribe("$SYS/x"));
    assert!(
        pol.may_subscribe("#"),
        "a wildcard first level matches no $ topic either"
    );
}

#[test]
fn subscribe_coverage() {
    let pol = p(&[], &["a/+/c", "d/#", "e/f"]);
    assert!(pol.may_subscribe("a/b/c"));
    assert!(pol.may_subscribe("a/+/c"));
    assert!(!pol.may_subscribe("a/#"));
    assert!(!pol.may_subscribe("a/+/#"));
    assert!(!pol.may_subscribe("a/+"));
    assert!(!pol.may_subscribe("+/b/c"));
    assert!(pol.may_subscribe("d"));
    assert!(pol.may_subscribe("d/#"));
    assert!(pol.may_subscribe("d/+/x/#"));
    assert!(pol.may_subscribe("e/f"));
    assert!(!pol.may_subscribe("e/+"));
    assert!(!pol.may_subscribe("e"));
    assert!(!pol.may_subscribe("e/f/g"));
    assert!(!pol.may_subscribe("#"));
}

#[test]
fn shared_subscriptions_are_stripped() {
    let pol = p(&[], &["d/#"]);
    assert!(pol.may_subscribe("$share/g1/d/x"));
    assert!(!pol.may_subscribe("$share/g1/e/x"));
    assert!(!pol.may_subscribe("$share/g1"));
    assert!(!pol.may_subscribe("$share//d/x"));
    assert!(!pol.may_subscribe("$share/g1/"));
}

//! Namespace subscription filters (`filtersConfiguration`), compiled once when the subscription
//! is created and evaluated by the topic actor for every published event.
//!
//! Owns the compiled form and its evaluation over [`CloudEvent`] attributes: event types
//! (`includedEventTypes`) and the string operators of Event Grid's advanced filters on context
//! attributes and string extension attributes. All string comparisons are case-insensitive
//! (ASCII folding; Event Grid documents case-insensitive matching). Must never allocate while
//! evaluating: values are lowercased at compile time and compared with `eq_ignore_ascii_case`.

use serde_json::Value;

use crate::event::CloudEvent;

/// Per-subscription limits of Event Grid: filters and values in total, characters per value.
pub const MAX_FILTERS: usize = 25;
pub const MAX_VALUES: usize = 25;
pub const MAX_VALUE_CHARS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrOp {
    In,
    NotIn,
    Contains,
    NotContains,
    BeginsWith,
    NotBeginsWith,
    EndsWith,
    NotEndsWith,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Str {
        op: StrOp,
        key: String,
        values: Vec<String>,
    },
    IsNullOrUndefined(String),
    IsNotNull(String),
}

/// A compiled filter; the default matches every event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    types: Vec<String>,
    conds: Vec<Cond>,
}

fn starts_with_ci(v: &str, p: &str) -> bool {
    v.len() >= p.len() && v.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
}

fn ends_with_ci(v: &str, p: &str) -> bool {
    v.len() >= p.len() && v.as_bytes()[v.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes())
}

fn contains_ci(v: &str, p: &str) -> bool {
    p.is_empty()
        || v.as_bytes()
            .windows(p.len())
            .any(|w| w.eq_ignore_ascii_case(p.as_bytes()))
}

/// Event Grid's documented legacy names for CloudEvents attributes, mapped to the real ones.
fn attr_name(key: &str) -> String {
    let k = key.to_ascii_lowercase();
    match k.as_str() {
        "eventtype" => "type".into(),
        "eventid" => "id".into(),
        _ => k,
    }
}

impl Filter {
    /// Compiles `filtersConfiguration` (`null`/absent = match all). Errors name the offending
    /// field and say what is allowed.
    pub fn compile(cfg: Option<&Value>) -> Result<Filter, String> {
        let Some(cfg) = cfg.filter(|v| !v.is_null()) else {
            return Ok(Filter::default());
        };
        let obj = cfg
            .as_object()
            .ok_or("filtersConfiguration must be an object")?;
        let mut f = Filter::default();
        if let Some(types) = obj.get("includedEventTypes").filter(|v| !v.is_null()) {
            let arr = types
                .as_array()
                .ok_or("filtersConfiguration.includedEventTypes must be an array of strings")?;
            for t in arr {
                let t = t
                    .as_str()
                    .ok_or("filtersConfiguration.includedEventTypes must be an array of strings")?;
                if t.is_empty() || t.len() > MAX_VALUE_CHARS {
                    return Err(format!(
                        "filtersConfiguration.includedEventTypes: each type must be 1 to {MAX_VALUE_CHARS} characters"
                    ));
                }
                f.types.push(t.to_ascii_lowercase());
            }
        }
        let mut total_values = 0;
        if let Some(filters) = obj.get("filters").filter(|v| !v.is_null()) {
            let arr = filters
                .as_array()
                .ok_or("filtersConfiguration.filters must be an array")?;
            if arr.len() > MAX_FILTERS {
                return Err(format!(
                    "filtersConfiguration.filters: at most {MAX_FILTERS} filters, got {}",
                    arr.len()
                ));
            }
            for (i, flt) in arr.iter().enumerate() {
                let cond = compile_one(i, flt, &mut total_values)?;
                f.conds.push(cond);
            }
        }
        if total_values > MAX_VALUES {
            return Err(format!(
                "filtersConfiguration.filters: at most {MAX_VALUES} values in total, got {total_values}"
            ));
        }
        for key in obj.keys() {
            if key != "includedEventTypes" && key != "filters" {
                return Err(format!(
                    "filtersConfiguration.{key} is not a known property (known: includedEventTypes, filters)"
                ));
            }
        }
        Ok(f)
    }

    /// True when `ev` passes every condition.
    pub fn matches(&self, ev: &CloudEvent) -> bool {
        if !self.types.is_empty() && !self.types.iter().any(|t| ev.ty.eq_ignore_ascii_case(t)) {
            return false;
        }
        self.conds.iter().all(|c| match c {
            Cond::IsNullOrUndefined(k) => ev.attr(k).is_none(),
            Cond::IsNotNull(k) => ev.attr(k).is_some(),
            Cond::Str { op, key, values } => {
                let Some(v) = ev.attr(key) else {
                    return *op == StrOp::NotIn;
                };
                let any = |f: fn(&str, &str) -> bool| values.iter().any(|p| f(v, p));
                match op {
                    StrOp::In => any(|v, p| v.eq_ignore_ascii_case(p)),
                    StrOp::NotIn => !any(|v, p| v.eq_ignore_ascii_case(p)),
                    StrOp::Contains => any(contains_ci),
                    StrOp::NotContains => !any(contains_ci),
                    StrOp::BeginsWith => any(starts_with_ci),
                    StrOp::NotBeginsWith => !any(starts_with_ci),
                    StrOp::EndsWith => any(ends_with_ci),
                    StrOp::NotEndsWith => !any(ends_with_ci),
                }
            }
        })
    }
}

fn compile_one(i: usize, flt: &Value, total_values: &mut usize) -> Result<Cond, String> {
    let at = |m: &str| format!("filtersConfiguration.filters[{i}]: {m}");
    let obj = flt.as_object().ok_or_else(|| at("must be an object"))?;
    let op = obj
        .get("operatorType")
        .and_then(Value::as_str)
        .ok_or_else(|| at("operatorType is required"))?;
    let key = obj
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| at("key is required"))?;
    if key.len() > MAX_VALUE_CHARS {
        return Err(at(&format!(
            "key is longer than {MAX_VALUE_CHARS} characters"
        )));
    }
    if key.contains('.') {
        return Err(at(&format!(
            "key '{key}': filtering on event data (data.<path>) is not supported yet by evgrid; \
             filter on context or extension attributes"
        )));
    }
    let key = attr_name(key);
    let sop = match op {
        "StringIn" => StrOp::In,
        "StringNotIn" => StrOp::NotIn,
        "StringContains" => StrOp::Contains,
        "StringNotContains" => StrOp::NotContains,
        "StringBeginsWith" => StrOp::BeginsWith,
        "StringNotBeginsWith" => StrOp::NotBeginsWith,
        "StringEndsWith" => StrOp::EndsWith,
        "StringNotEndsWith" => StrOp::NotEndsWith,
        "IsNullOrUndefined" => return Ok(Cond::IsNullOrUndefined(key)),
        "IsNotNull" => return Ok(Cond::IsNotNull(key)),
        other => {
            return Err(at(&format!(
                "operatorType '{other}' is not supported yet by evgrid for namespace subscriptions \
                 (supported: StringIn, StringNotIn, StringContains, StringNotContains, \
                 StringBeginsWith, StringNotBeginsWith, StringEndsWith, StringNotEndsWith, \
                 IsNullOrUndefined, IsNotNull)"
            )));
        }
    };
    let vals = obj
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| at(&format!("{op} needs 'values', an array of strings")))?;
    if vals.is_empty() {
        return Err(at("values must not be empty"));
    }
    let mut values = Vec::with_capacity(vals.len());
    for v in vals {
        let s = v
            .as_str()
            .ok_or_else(|| at(&format!("{op} values must be strings")))?;
        if s.chars().count() > MAX_VALUE_CHARS {
            return Err(at(&format!(
                "a value is longer than {MAX_VALUE_CHARS} characters"
            )));
        }
        values.push(s.to_string());
    }
    *total_values += values.len();
    Ok(Cond::Str {
        op: sop,
        key,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntex_bytes::{ByteString, Bytes};
    use serde_json::json;

    fn ev(ty: &str, subject: Option<&str>, ext: &[(&str, &str)]) -> CloudEvent {
        CloudEvent {
            id: "1".into(),
            source: "/s".into(),
            ty: ByteString::from(ty),
            subject: subject.map(ByteString::from),
            ext: ext
                .iter()
                .map(|(k, v)| (ByteString::from(*k), ByteString::from(*v)))
                .collect(),
            raw: Bytes::new(),
        }
    }

    fn f(v: Value) -> Filter {
        Filter::compile(Some(&v)).unwrap()
    }

    #[test]
    fn event_types_case_insensitive() {
        let flt = f(json!({"includedEventTypes": ["Contoso.Order.Created"]}));
        assert!(flt.matches(&ev("contoso.order.CREATED", None, &[])));
        assert!(!flt.matches(&ev("Contoso.Order.Deleted", None, &[])));
        assert!(Filter::default().matches(&ev("x", None, &[])));
        assert!(f(json!({"includedEventTypes": null})).matches(&ev("x", None, &[])));
    }

    #[test]
    fn subject_begins_and_ends_with() {
        let flt = f(json!({"filters": [
            {"operatorType": "StringBeginsWith", "key": "subject", "values": ["orders/"]},
            {"operatorType": "StringEndsWith", "key": "subject", "values": [".json", ".xml"]}
        ]}));
        assert!(flt.matches(&ev("t", Some("ORDERS/1.json"), &[])));
        assert!(flt.matches(&ev("t", Some("orders/2.XML"), &[])));
        assert!(!flt.matches(&ev("t", Some("orders/2.txt"), &[])));
        assert!(!flt.matches(&ev("t", Some("invoices/1.json"), &[])));
        assert!(!flt.matches(&ev("t", None, &[])), "missing subject");
    }

    #[test]
    fn every_string_operator_and_missing_keys() {
        let case = |op: &str, v: &str| {
            f(json!({"filters": [{"operatorType": op, "key": "tenant", "values": [v]}]}))
        };
        let a = ev("t", None, &[("tenant", "Contoso-EU")]);
        let none = ev("t", None, &[]);
        let table = [
            ("StringIn", "contoso-eu", true, false),
            ("StringNotIn", "contoso-eu", false, true),
            ("StringContains", "SO-e", true, false),
            ("StringNotContains", "xyz", true, false),
            ("StringBeginsWith", "CONT", true, false),
            ("StringNotBeginsWith", "cont", false, false),
            ("StringEndsWith", "-eu", true, false),
            ("StringNotEndsWith", "-us", true, false),
        ];
        for (op, v, on_a, on_missing) in table {
            assert_eq!(case(op, v).matches(&a), on_a, "{op} {v}");
            assert_eq!(case(op, v).matches(&none), on_missing, "{op} missing");
        }
        let isnull =
            f(json!({"filters": [{"operatorType": "IsNullOrUndefined", "key": "tenant"}]}));
        assert!(isnull.matches(&none) && !isnull.matches(&a));
        let notnull = f(json!({"filters": [{"operatorType": "IsNotNull", "key": "Tenant"}]}));
        assert!(!notnull.matches(&none) && notnull.matches(&a));
        // Legacy attribute names.
        let legacy = f(
            json!({"filters": [{"operatorType": "StringIn", "key": "eventtype", "values": ["T"]}]}),
        );
        assert!(legacy.matches(&a));
    }

    #[test]
    fn limits_and_bad_shapes_are_refused_with_reasons() {
        let many: Vec<Value> = (0..26)
            .map(|_| json!({"operatorType": "IsNotNull", "key": "subject"}))
            .collect();
        let e = Filter::compile(Some(&json!({ "filters": many }))).unwrap_err();
        assert!(e.contains("at most 25 filters"), "{e}");
        let vals: Vec<String> = (0..26).map(|i| i.to_string()).collect();
        let e = Filter::compile(Some(
            &json!({"filters": [{"operatorType": "StringIn", "key": "subject", "values": vals}]}),
        ))
        .unwrap_err();
        assert!(e.contains("25 values"), "{e}");
        let long = "x".repeat(513);
        let e = Filter::compile(Some(
            &json!({"filters": [{"operatorType": "StringIn", "key": "subject", "values": [long]}]}),
        ))
        .unwrap_err();
        assert!(e.contains("512"), "{e}");
        for (bad, want) in [
            (json!({"filters": [{"key": "subject"}]}), "operatorType"),
            (json!({"filters": [{"operatorType": "StringIn"}]}), "key"),
            (
                json!({"filters": [{"operatorType": "StringIn", "key": "s"}]}),
                "values",
            ),
            (
                json!({"filters": [{"operatorType": "NumberIn", "key": "s", "values": [1]}]}),
                "not supported yet",
            ),
            (
                json!({"filters": [{"operatorType": "StringIn", "key": "data.x", "values": ["a"]}]}),
                "data",
            ),
            (json!({"includedEventTypes": "x"}), "array"),
            (json!({"subjectBeginsWith": "x"}), "not a known property"),
        ] {
            let e = Filter::compile(Some(&bad)).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}

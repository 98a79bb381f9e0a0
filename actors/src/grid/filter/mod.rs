//! Subscription filters, compiled once when the subscription is created and evaluated by the
//! topic actor for every published event.
//!
//! Owns the compiled form of Event Grid's filters (docs/eventgrid.md §4.3) and their evaluation:
//! event types (`includedEventTypes`), subject prefix/suffix, and every advanced-filter operator
//! (numbers, booleans, strings, null checks) on context attributes, extension attributes and
//! `data.<path>` keys, with the documented semantics for missing keys and, when
//! `enableAdvancedFilteringOnArrays` is set, for arrays. Two front ends share it: namespace
//! subscriptions (`filtersConfiguration`) and basic-tier subscriptions (`filter`).
//!
//! String comparisons are case-insensitive (ASCII folding) and allocate nothing. Conditions on
//! context attributes read the parsed [`CloudEvent`] fields; anything else needs the event's
//! JSON, which [`EventView`] parses at most once per event, however many subscriptions ask.
//! Must never panic on any event.

use std::cell::OnceCell;

use serde_json::{Map, Value};

use crate::model::event::CloudEvent;

/// Per-subscription limits of Event Grid: filters and values in total, characters per value.
pub const MAX_FILTERS: usize = 25;
pub const MAX_VALUES: usize = 25;
pub const MAX_VALUE_CHARS: usize = 512;

/// One event as filters see it: its attributes, and its JSON parsed on first need.
pub struct EventView<'a> {
    ev: &'a CloudEvent,
    doc: OnceCell<Option<Value>>,
}

impl<'a> EventView<'a> {
    pub fn new(ev: &'a CloudEvent) -> EventView<'a> {
        EventView {
            ev,
            doc: OnceCell::new(),
        }
    }

    fn doc(&self) -> Option<&Value> {
        self.doc
            .get_or_init(|| serde_json::from_slice(&self.ev.raw).ok())
            .as_ref()
    }

    /// The value at `key`, or `None` when the key is absent.
    fn lookup(&self, key: &Key) -> Option<Lookup<'_>> {
        match key {
            Key::Context(c) => Some(Lookup::Str(match c {
                Context::Id => &self.ev.id,
                Context::Source => &self.ev.source,
                Context::Type => &self.ev.ty,
                Context::Subject => self.ev.subject.as_ref()?,
            })),
            Key::Attr(name) => get_ci(self.doc()?.as_object()?, name).map(Lookup::Json),
            Key::Data(path) => {
                let mut v = get_ci(self.doc()?.as_object()?, "data")?;
                for p in path {
                    v = get_ci(v.as_object()?, p)?;
                }
                Some(Lookup::Json(v))
            }
        }
    }
}

fn get_ci<'v>(m: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

enum Lookup<'a> {
    Str(&'a str),
    Json(&'a Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Id,
    Source,
    Type,
    Subject,
}

#[derive(Debug, Clone, PartialEq)]
enum Key {
    /// `id`, `source`, `type`, `subject`: read from the parsed event, no JSON needed.
    Context(Context),
    /// Any other top-level attribute (extensions, `time`, `datacontenttype`, …).
    Attr(String),
    /// `data.a.b` → `["a", "b"]`.
    Data(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrOp {
    In,
    Contains,
    BeginsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumCmp {
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    NumIn(Vec<f64>),
    NumCmp(NumCmp, f64),
    NumInRange(Vec<(f64, f64)>),
    Bool(bool),
    Str(StrOp, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    /// Matches when some comparable value passes `test` (or, negated, when none does).
    Op {
        key: Key,
        test: Test,
        negated: bool,
        /// What a missing key gives.
        when_missing: bool,
    },
    IsNullOrUndefined(Key),
    IsNotNull(Key),
}

/// A compiled filter; the default matches every event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    types: Vec<String>,
    subject_begins: Option<String>,
    subject_ends: Option<String>,
    subject_case_sensitive: bool,
    arrays: bool,
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

impl Test {
    fn str(&self, v: &str) -> Option<bool> {
        let Test::Str(op, values) = self else {
            return None;
        };
        let f: fn(&str, &str) -> bool = match op {
            StrOp::In => |v, p| v.eq_ignore_ascii_case(p),
            StrOp::Contains => contains_ci,
            StrOp::BeginsWith => starts_with_ci,
            StrOp::EndsWith => ends_with_ci,
        };
        Some(values.iter().any(|p| f(v, p)))
    }

    /// Whether a scalar passes; `None` when its JSON type is not the test's.
    fn scalar(&self, v: &Value) -> Option<bool> {
        match (self, v) {
            (Test::Str(..), Value::String(s)) => self.str(s),
            (Test::NumIn(vals), Value::Number(n)) => {
                let x = n.as_f64()?;
                Some(vals.contains(&x))
            }
            (Test::NumCmp(c, b), Value::Number(n)) => {
                let x = n.as_f64()?;
                Some(match c {
                    NumCmp::Lt => x < *b,
                    NumCmp::Gt => x > *b,
                    NumCmp::Le => x <= *b,
                    NumCmp::Ge => x >= *b,
                })
            }
            (Test::NumInRange(r), Value::Number(n)) => {
                let x = n.as_f64()?;
                Some(r.iter().any(|(lo, hi)| *lo <= x && x <= *hi))
            }
            (Test::Bool(b), Value::Bool(x)) => Some(b == x),
            _ => None,
        }
    }
}

impl Cond {
    fn eval(&self, view: &EventView<'_>, arrays: bool) -> bool {
        match self {
            Cond::IsNullOrUndefined(k) => {
                matches!(view.lookup(k), None | Some(Lookup::Json(Value::Null)))
            }
            Cond::IsNotNull(k) => !matches!(view.lookup(k), None | Some(Lookup::Json(Value::Null))),
            Cond::Op {
                key,
                test,
                negated,
                when_missing,
            } => {
                let hit = match view.lookup(key) {
                    None => return *when_missing,
                    Some(Lookup::Str(s)) => test.str(s).unwrap_or(false),
                    Some(Lookup::Json(Value::Array(items))) => {
                        if !arrays {
                            return false;
                        }
                        // Elements of another JSON type than the filter's are ignored.
                        items.iter().any(|x| test.scalar(x) == Some(true))
                    }
                    Some(Lookup::Json(v)) => test.scalar(v) == Some(true),
                };
                hit != *negated
            }
        }
    }
}

impl Filter {
    /// True when the event passes every condition.
    pub fn matches(&self, view: &EventView<'_>) -> bool {
        let ev = view.ev;
        if !self.types.is_empty() && !self.types.iter().any(|t| ev.ty.eq_ignore_ascii_case(t)) {
            return false;
        }
        if self.subject_begins.is_some() || self.subject_ends.is_some() {
            let s = ev.subject.as_deref().unwrap_or("");
            let cs = self.subject_case_sensitive;
            if let Some(p) = &self.subject_begins
                && !(if cs {
                    s.starts_with(p.as_str())
                } else {
                    starts_with_ci(s, p)
                })
            {
                return false;
            }
            if let Some(p) = &self.subject_ends
                && !(if cs {
                    s.ends_with(p.as_str())
                } else {
                    ends_with_ci(s, p)
                })
            {
                return false;
            }
        }
        self.conds.iter().all(|c| c.eval(view, self.arrays))
    }

    /// Compiles a namespace subscription's `filtersConfiguration` (`null`/absent = match all).
    pub fn compile(cfg: Option<&Value>) -> Result<Filter, String> {
        let Some(cfg) = cfg.filter(|v| !v.is_null()) else {
            return Ok(Filter::default());
        };
        let obj = cfg
            .as_object()
            .ok_or("filtersConfiguration must be an object")?;
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "includedEventTypes" | "filters" | "enableAdvancedFilteringOnArrays"
            ) {
                return Err(format!(
                    "filtersConfiguration.{key} is not a known property (known: includedEventTypes, filters, enableAdvancedFilteringOnArrays)"
                ));
            }
        }
        Ok(Filter {
            types: event_types(obj.get("includedEventTypes"), "filtersConfiguration")?,
            arrays: flag(
                obj,
                "enableAdvancedFilteringOnArrays",
                "filtersConfiguration",
            )?,
            conds: advanced(obj.get("filters"), "filtersConfiguration.filters")?,
            ..Filter::default()
        })
    }

    /// Compiles a basic-tier subscription's `filter` (`null`/absent = match all).
    pub fn compile_basic(cfg: Option<&Value>) -> Result<Filter, String> {
        let Some(cfg) = cfg.filter(|v| !v.is_null()) else {
            return Ok(Filter::default());
        };
        let obj = cfg.as_object().ok_or("filter must be an object")?;
        let known = [
            "includedEventTypes",
            "subjectBeginsWith",
            "subjectEndsWith",
            "isSubjectCaseSensitive",
            "enableAdvancedFilteringOnArrays",
            "advancedFilters",
        ];
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "filter.{k} is not a known property (known: {})",
                known.join(", ")
            ));
        }
        let mut f = Filter {
            types: event_types(obj.get("includedEventTypes"), "filter")?,
            subject_case_sensitive: flag(obj, "isSubjectCaseSensitive", "filter")?,
            arrays: flag(obj, "enableAdvancedFilteringOnArrays", "filter")?,
            conds: advanced(obj.get("advancedFilters"), "filter.advancedFilters")?,
            ..Filter::default()
        };
        // Old documents accept ["All"] for "every type".
        if f.types.len() == 1 && f.types[0] == "all" {
            f.types.clear();
        }
        for (field, slot) in [
            ("subjectBeginsWith", &mut f.subject_begins),
            ("subjectEndsWith", &mut f.subject_ends),
        ] {
            match obj.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(Value::String(s)) if s.chars().count() <= MAX_VALUE_CHARS => {
                    *slot = Some(s.clone())
                }
                Some(Value::String(_)) => {
                    return Err(format!(
                        "filter.{field} is longer than {MAX_VALUE_CHARS} characters"
                    ));
                }
                Some(v) => return Err(format!("filter.{field} must be a string, got {v}")),
            }
        }
        Ok(f)
    }
}

fn flag(obj: &Map<String, Value>, key: &str, at: &str) -> Result<bool, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("{at}.{key} must be true or false, got {v}")),
    }
}

fn event_types(v: Option<&Value>, at: &str) -> Result<Vec<String>, String> {
    let Some(types) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let msg = || format!("{at}.includedEventTypes must be an array of strings");
    let mut out = Vec::new();
    for t in types.as_array().ok_or_else(msg)? {
        let t = t.as_str().ok_or_else(msg)?;
        if t.is_empty() || t.chars().count() > MAX_VALUE_CHARS {
            return Err(format!(
                "{at}.includedEventTypes: each type must be 1 to {MAX_VALUE_CHARS} characters"
            ));
        }
        out.push(t.to_ascii_lowercase());
    }
    Ok(out)
}

fn advanced(v: Option<&Value>, at: &str) -> Result<Vec<Cond>, String> {
    let Some(filters) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let arr = filters
        .as_array()
        .ok_or_else(|| format!("{at} must be an array"))?;
    if arr.len() > MAX_FILTERS {
        return Err(format!(
            "{at}: at most {MAX_FILTERS} filters, got {}",
            arr.len()
        ));
    }
    let mut total = 0;
    let conds = arr
        .iter()
        .enumerate()
        .map(|(i, f)| compile_one(&format!("{at}[{i}]"), f, &mut total))
        .collect::<Result<Vec<_>, _>>()?;
    if total > MAX_VALUES {
        return Err(format!(
            "{at}: at most {MAX_VALUES} values in total, got {total}"
        ));
    }
    Ok(conds)
}

fn compile_key(key: &str) -> Result<Key, String> {
    let lower = key.to_ascii_lowercase();
    if let Some(path) = lower.strip_prefix("data.") {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!("key '{key}' has an empty path segment"));
        }
        return Ok(Key::Data(parts));
    }
    if lower.contains('.') {
        return Err(format!(
            "key '{key}' is not an attribute name or data.<path>"
        ));
    }
    // Event Grid's documented legacy names for CloudEvents attributes.
    Ok(match lower.as_str() {
        "id" | "eventid" => Key::Context(Context::Id),
        "source" => Key::Context(Context::Source),
        "type" | "eventtype" => Key::Context(Context::Type),
        "subject" => Key::Context(Context::Subject),
        _ => Key::Attr(lower),
    })
}

fn number(v: &Value, at: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("{at}: values must be numbers, got {v}"))
}

fn compile_one(at: &str, flt: &Value, total: &mut usize) -> Result<Cond, String> {
    let err = |m: &str| format!("{at}: {m}");
    let obj = flt.as_object().ok_or_else(|| err("must be an object"))?;
    let op = obj
        .get("operatorType")
        .and_then(Value::as_str)
        .ok_or_else(|| err("operatorType is required"))?;
    let raw_key = obj
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| err("key is required"))?;
    if raw_key.chars().count() > MAX_VALUE_CHARS {
        return Err(err(&format!(
            "key is longer than {MAX_VALUE_CHARS} characters"
        )));
    }
    let key = compile_key(raw_key).map_err(|m| err(&m))?;
    let values = || -> Result<&Vec<Value>, String> {
        let v = obj
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| err(&format!("{op} needs 'values', an array")))?;
        if v.is_empty() {
            return Err(err("values must not be empty"));
        }
        Ok(v)
    };
    let value = || {
        obj.get("value")
            .filter(|v| !v.is_null())
            .ok_or_else(|| err(&format!("{op} needs 'value'")))
    };
    let strings = |total: &mut usize| -> Result<Vec<String>, String> {
        let vals = values()?;
        *total += vals.len();
        vals.iter()
            .map(|v| {
                let s = v
                    .as_str()
                    .ok_or_else(|| err(&format!("{op} values must be strings")))?;
                if s.chars().count() > MAX_VALUE_CHARS {
                    return Err(err(&format!(
                        "a value is longer than {MAX_VALUE_CHARS} characters"
                    )));
                }
                Ok(s.to_string())
            })
            .collect()
    };
    let numbers = |total: &mut usize| -> Result<Vec<f64>, String> {
        let vals = values()?;
        *total += vals.len();
        vals.iter().map(|v| number(v, at)).collect()
    };
    let ranges = |total: &mut usize| -> Result<Vec<(f64, f64)>, String> {
        let vals = values()?;
        *total += vals.len();
        vals.iter()
            .map(|r| match r.as_array().map(Vec::as_slice) {
                Some([lo, hi]) => {
                    let (lo, hi) = (number(lo, at)?, number(hi, at)?);
                    if lo > hi {
                        return Err(err(&format!("range [{lo}, {hi}] is empty")));
                    }
                    Ok((lo, hi))
                }
                _ => Err(err(&format!(
                    "{op} values must be [low, high] pairs, got {r}"
                ))),
            })
            .collect()
    };
    let op_cond = |test, negated, when_missing| Cond::Op {
        key: key.clone(),
        test,
        negated,
        when_missing,
    };
    let single = |cmp, total: &mut usize| -> Result<Cond, String> {
        *total += 1;
        Ok(op_cond(
            Test::NumCmp(cmp, number(value()?, at)?),
            false,
            false,
        ))
    };
    let s = |o| move |total: &mut usize| strings(total).map(|v| Test::Str(o, v));
    Ok(match op {
        "NumberIn" => op_cond(Test::NumIn(numbers(total)?), false, false),
        "NumberNotIn" => op_cond(Test::NumIn(numbers(total)?), true, true),
        "NumberLessThan" => single(NumCmp::Lt, total)?,
        "NumberGreaterThan" => single(NumCmp::Gt, total)?,
        "NumberLessThanOrEquals" => single(NumCmp::Le, total)?,
        "NumberGreaterThanOrEquals" => single(NumCmp::Ge, total)?,
        "NumberInRange" => op_cond(Test::NumInRange(ranges(total)?), false, false),
        // Missing key: unverified in the reference; taken as "not in any range", like NumberNotIn.
        "NumberNotInRange" => op_cond(Test::NumInRange(ranges(total)?), true, true),
        "BoolEquals" => {
            *total += 1;
            let b = value()?
                .as_bool()
                .ok_or_else(|| err("BoolEquals needs a boolean 'value'"))?;
            op_cond(Test::Bool(b), false, false)
        }
        "StringIn" => op_cond(s(StrOp::In)(total)?, false, false),
        "StringNotIn" => op_cond(s(StrOp::In)(total)?, true, true),
        "StringContains" => op_cond(s(StrOp::Contains)(total)?, false, false),
        "StringNotContains" => op_cond(s(StrOp::Contains)(total)?, true, false),
        "StringBeginsWith" => op_cond(s(StrOp::BeginsWith)(total)?, false, false),
        "StringNotBeginsWith" => op_cond(s(StrOp::BeginsWith)(total)?, true, false),
        "StringEndsWith" => op_cond(s(StrOp::EndsWith)(total)?, false, false),
        "StringNotEndsWith" => op_cond(s(StrOp::EndsWith)(total)?, true, false),
        "IsNullOrUndefined" => Cond::IsNullOrUndefined(key),
        "IsNotNull" => Cond::IsNotNull(key),
        other => {
            return Err(err(&format!(
                "operatorType '{other}' is not an Event Grid operator (NumberIn, NumberNotIn, \
                 NumberLessThan, NumberGreaterThan, NumberLessThanOrEquals, \
                 NumberGreaterThanOrEquals, NumberInRange, NumberNotInRange, BoolEquals, StringIn, \
                 StringNotIn, StringContains, StringNotContains, StringBeginsWith, \
                 StringNotBeginsWith, StringEndsWith, StringNotEndsWith, IsNullOrUndefined, \
                 IsNotNull)"
            )));
        }
    })
}

#[cfg(test)]
mod tests;

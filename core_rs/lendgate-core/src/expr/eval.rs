//! Tree-walking interpreter with ZEN's semantics (strict types, decimal numbers).

use std::cell::OnceCell;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::{FromPrimitive, MathematicalOps, ToPrimitive};
use rust_decimal::Decimal;

use super::ast::{Node, Step};
use super::date::{self, DateValue, Interval, Method, Unit};
use super::functions::{self, ClosureFn};
use super::host::{Host, Read};
use super::lexer::Op;
use super::value::{map_with_capacity, Map, Value};
use super::{Clock, ExprError, Limits};

/// The state of one evaluation.
pub(crate) struct Cx<'a> {
    /// The input document; assignments replace it copy-on-write.
    pub env: Value,
    /// Closure elements, innermost last.
    scopes: Vec<Value>,
    steps: u64,
    limits: &'a Limits,
    clock: Clock,
    /// Read from the clock on first use, so date-free expressions never touch it.
    now: OnceCell<DateTime<Utc>>,
    pub timezone: Tz,
    /// Implementations of host functions, if the caller gave any.
    pub host: Option<&'a dyn Host>,
    /// Where to record the values read, if the caller asked for it.
    pub reads: Option<&'a mut Vec<Read>>,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(env: Value, limits: &'a Limits, clock: Clock, timezone: Tz) -> Self {
        Self {
            env,
            scopes: Vec::new(),
            steps: 0,
            limits,
            clock,
            now: OnceCell::new(),
            timezone,
            host: None,
            reads: None,
        }
    }

    /// Records a value read, once per path (first value wins).
    fn record(&mut self, path: impl FnOnce() -> String, value: &Value) {
        if let Some(reads) = self.reads.as_deref_mut() {
            let path = path();
            if !reads.iter().any(|r| r.path == path) {
                reads.push(Read {
                    path,
                    value: value.clone(),
                });
            }
        }
    }

    /// The evaluation's current instant (one reading per evaluation).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        *self.now.get_or_init(|| self.clock.now())
    }

    /// Charges `n` units of work against the step budget.
    pub(crate) fn charge(&mut self, n: usize) -> Result<(), ExprError> {
        self.steps = self.steps.saturating_add(n as u64);
        if self.steps > self.limits.max_steps {
            return Err(ExprError::Limit(format!(
                "evaluation exceeded {} steps",
                self.limits.max_steps
            )));
        }
        Ok(())
    }

    fn check_string(&self, len: usize) -> Result<(), ExprError> {
        if len > self.limits.max_string_bytes {
            return Err(ExprError::Limit(format!(
                "string of {len} bytes exceeds the limit of {}",
                self.limits.max_string_bytes
            )));
        }
        Ok(())
    }
}

fn err(msg: impl Into<String>) -> ExprError {
    ExprError::eval(msg)
}

fn unsupported(op: Op, a: &Value, b: &Value) -> ExprError {
    err(format!(
        "`{}` is not supported between {} and {}",
        op.symbol(),
        a.type_name(),
        b.type_name()
    ))
}

/// Index of a value by a key or position (`obj.key`, `arr[0]`, `str[0]`).
fn index(v: &Value, key: &Value) -> Result<Value, ExprError> {
    Ok(match (v, key) {
        (Value::Object(o), Value::String(k)) => o.get(k.as_ref()).cloned().unwrap_or_default(),
        (Value::Array(a), Value::Number(n)) => {
            let i = n
                .to_usize()
                .ok_or_else(|| err(format!("invalid array index {n}")))?;
            a.get(i).cloned().unwrap_or_default()
        }
        (Value::String(s), Value::Number(n)) => {
            let i = n
                .to_usize()
                .ok_or_else(|| err(format!("invalid string index {n}")))?;
            i.checked_add(1)
                .and_then(|end| s.get(i..end))
                .map_or(Value::Null, Value::str)
        }
        _ => Value::Null,
    })
}

fn step<'v>(v: &'v Value, s: &Step) -> Option<&'v Value> {
    match (v, s) {
        (Value::Object(o), Step::Key(k)) => o.get(k.as_ref()),
        (Value::Array(a), Step::Index(i)) => a.get(usize::try_from(*i).ok()?),
        _ => None,
    }
}

pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Null, Value::Null) => true,
        (Value::Date(a), Value::Date(b)) => a.0.is_some() && a.0 == b.0,
        _ => false,
    }
}

pub(crate) fn contains(op: Op, a: &Value, b: &Value) -> Result<bool, ExprError> {
    Ok(match (a, b) {
        (Value::Number(_) | Value::Date(_), Value::Interval(i)) => {
            i.includes(a).ok_or_else(|| unsupported(op, a, b))?
        }
        (Value::String(s), Value::Object(o)) => o.contains_key(s.as_ref()),
        (
            Value::Number(_) | Value::String(_) | Value::Bool(_) | Value::Null | Value::Date(_),
            Value::Array(items),
        ) => items
            .iter()
            .any(|x| equal(a, x) || matches!((a, x), (Value::Null, Value::Null))),
        _ => return Err(unsupported(op, a, b)),
    })
}

fn as_bool(v: &Value, what: &str) -> Result<bool, ExprError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(err(format!(
            "{what} must be a bool, got {}",
            other.type_name()
        ))),
    }
}

fn arithmetic(op: Op, a: &Value, b: &Value, cx: &Cx<'_>) -> Result<Value, ExprError> {
    let (x, y) = match (a, b) {
        (Value::Number(x), Value::Number(y)) => (*x, *y),
        (Value::String(x), Value::String(y)) if op == Op::Add => {
            cx.check_string(x.len() + y.len())?;
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            return Ok(Value::str(&s));
        }
        _ => return Err(unsupported(op, a, b)),
    };
    let overflow = || err(format!("number overflow in `{}`", op.symbol()));
    Ok(match op {
        Op::Add => Value::Number(x.checked_add(y).ok_or_else(overflow)?),
        Op::Sub => Value::Number(x.checked_sub(y).ok_or_else(overflow)?),
        Op::Mul => Value::Number(x.checked_mul(y).ok_or_else(overflow)?),
        // Division and remainder by zero give null, as in ZEN.
        Op::Div => x.checked_div(y).map_or(Value::Null, Value::Number),
        Op::Mod => x.checked_rem(y).map_or(Value::Null, Value::Number),
        _ => Value::Number(
            x.checked_powd(y)
                .or_else(|| Decimal::from_f64(x.to_f64()?.powf(y.to_f64()?)))
                .ok_or_else(|| err("cannot compute the power"))?,
        ),
    })
}

pub(crate) fn compare(op: Op, a: &Value, b: &Value) -> Result<bool, ExprError> {
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        _ => return Err(unsupported(op, a, b)),
    };
    Ok(match op {
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Gt => ord.is_gt(),
        _ => ord.is_ge(),
    })
}

fn to_index(v: &Value, what: &str) -> Result<usize, ExprError> {
    match v {
        Value::Number(n) => n
            .to_usize()
            .ok_or_else(|| err(format!("invalid slice {what} {n}"))),
        other => Err(err(format!(
            "slice {what} must be a number, got {}",
            other.type_name()
        ))),
    }
}

/// Inserts `value` at a dotted path, creating objects on the way.
fn insert_path(target: &mut Value, keys: &[Arc<str>], value: Value) {
    let Some((first, rest)) = keys.split_first() else {
        *target = value;
        return;
    };
    if !matches!(target, Value::Object(_)) {
        *target = Value::object(Map::default());
    }
    if let Value::Object(map) = target {
        let map = Arc::make_mut(map);
        let slot = map.entry(first.clone()).or_insert(Value::Null);
        insert_path(slot, rest, value);
    }
}

pub(crate) fn eval(node: &Node, cx: &mut Cx<'_>) -> Result<Value, ExprError> {
    cx.charge(1)?;
    Ok(match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Number(n) => Value::Number(*n),
        Node::String(s) => Value::String(s.clone()),
        Node::Root => cx.env.clone(),
        Node::Ident(name) => {
            let v = match &cx.env {
                Value::Object(o) => o.get(name.as_ref()).cloned().unwrap_or_default(),
                Value::Null => Value::Null,
                other => {
                    return Err(err(format!(
                        "cannot read `{name}` of {}",
                        other.type_name()
                    )))
                }
            };
            cx.record(|| name.to_string(), &v);
            v
        }
        Node::Pointer(depth) => pointer(cx, *depth)?.clone(),
        Node::Path(base, steps) => {
            let root = match base.as_ref() {
                Node::Root => Some(&cx.env),
                Node::Pointer(depth) => Some(pointer(cx, *depth)?),
                Node::Ident(name) => match &cx.env {
                    Value::Object(o) => o.get(name.as_ref()),
                    _ => None,
                },
                _ => None,
            };
            let mut cur = root;
            let mut out = None;
            for (i, s) in steps.iter().enumerate() {
                match (cur, s) {
                    (Some(Value::String(text)), Step::Index(n)) => {
                        let n = usize::try_from(*n).unwrap_or(usize::MAX);
                        let ch = n.checked_add(1).and_then(|e| text.get(n..e));
                        // A one-character string has nothing further to index.
                        out = Some(match (ch, i + 1 == steps.len()) {
                            (Some(c), true) => Value::str(c),
                            _ => Value::Null,
                        });
                        break;
                    }
                    (Some(v), s) => cur = step(v, s),
                    (None, _) => break,
                }
            }
            let v = out.unwrap_or_else(|| cur.cloned().unwrap_or_default());
            if let Node::Ident(name) = base.as_ref() {
                cx.record(|| path_text(name, steps), &v);
            }
            v
        }
        Node::Member(obj, key) => {
            let o = eval(obj, cx)?;
            let k = eval(key, cx)?;
            index(&o, &k)?
        }
        Node::Slice { node, from, to } => {
            let v = eval(node, cx)?;
            let len = match &v {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                other => return Err(err(format!("cannot slice {}", other.type_name()))),
            };
            let from = match from {
                Some(f) => to_index(&eval(f, cx)?, "start")?,
                None => 0,
            };
            let to = match to {
                Some(t) => to_index(&eval(t, cx)?, "end")?,
                None => len
                    .checked_sub(1)
                    .ok_or_else(|| err("cannot slice an empty value"))?,
            };
            let out_of_range = || err(format!("slice [{from}:{to}] out of range"));
            match &v {
                Value::String(s) => Value::str(s.get(from..=to).ok_or_else(out_of_range)?),
                Value::Array(a) => {
                    Value::array(a.get(from..=to).ok_or_else(out_of_range)?.to_vec())
                }
                _ => Value::Null,
            }
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items {
                out.push(eval(n, cx)?);
            }
            Value::array(out)
        }
        Node::Object(pairs) => {
            let mut map = map_with_capacity(pairs.len());
            for (k, v) in pairs {
                let key = functions::to_string(&eval(k, cx)?)?;
                let value = eval(v, cx)?;
                map.insert(key, value);
            }
            Value::object(map)
        }
        Node::Interval {
            left,
            right,
            left_bracket,
            right_bracket,
        } => {
            let l = eval(left, cx)?;
            let r = eval(right, cx)?;
            let ok = matches!(
                (&l, &r),
                (Value::Number(_), Value::Number(_)) | (Value::Date(_), Value::Date(_))
            );
            if !ok {
                return Err(err(format!(
                    "an interval needs two numbers or two dates, got {} and {}",
                    l.type_name(),
                    r.type_name()
                )));
            }
            Value::Interval(Arc::new(Interval {
                left: l,
                right: r,
                left_bracket: *left_bracket,
                right_bracket: *right_bracket,
            }))
        }
        Node::Template(parts) => {
            let mut s = String::new();
            for p in parts {
                let v = eval(p, cx)?;
                s.push_str(&functions::to_string(&v)?);
                cx.check_string(s.len())?;
            }
            Value::str(&s)
        }
        Node::Parenthesized(inner) => eval(inner, cx)?,
        Node::Conditional(c, t, f) => {
            if as_bool(&eval(c, cx)?, "the condition of `? :`")? {
                eval(t, cx)?
            } else {
                eval(f, cx)?
            }
        }
        Node::Unary(op, inner) => {
            let v = eval(inner, cx)?;
            match (op, v) {
                (Op::Add, v) => v,
                (Op::Sub, Value::Number(n)) => Value::Number(-n),
                (Op::Not, Value::Bool(b)) => Value::Bool(!b),
                (op, v) => {
                    return Err(err(format!(
                        "`{}` is not supported for {}",
                        op.symbol(),
                        v.type_name()
                    )))
                }
            }
        }
        Node::Binary(op, left, right) => binary(*op, left, right, cx)?,
        Node::Call { func, args, regex } => {
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(eval(a, cx)?);
            }
            functions::call(*func, &values, regex.as_ref(), cx)?
        }
        Node::HostCall { name, args, .. } => {
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(eval(a, cx)?);
            }
            let host = cx
                .host
                .ok_or_else(|| err(format!("`{name}` is not available in this evaluation")))?;
            let v = host
                .call(name, &values)
                .map_err(|m| err(format!("{name}(): {m}")))?;
            cx.record(
                || {
                    let args: Vec<String> =
                        values.iter().map(|a| a.to_json().to_string()).collect();
                    format!("{name}({})", args.join(", "))
                },
                &v,
            );
            v
        }
        Node::Closure { func, array, body } => closure(*func, array, body, cx)?,
        Node::Method { method, this, args } => {
            let this = eval(this, cx)?;
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(eval(a, cx)?);
            }
            call_method(*method, &this, &values, cx)?
        }
        Node::Assign { list, output } => {
            let mut assigned = Value::object(Map::default());
            for (keys, value) in list {
                let v = eval(value, cx)?;
                if !matches!(cx.env, Value::Object(_) | Value::Null) {
                    return Err(err("assignments need an object input"));
                }
                insert_path(&mut cx.env, keys, v.clone());
                insert_path(&mut assigned, keys, v);
            }
            match output {
                Some(o) => eval(o, cx)?,
                None => assigned,
            }
        }
    })
}

/// `a.b[0].c` for the trace.
fn path_text(name: &str, steps: &[Step]) -> String {
    use std::fmt::Write;
    let mut s = name.to_string();
    for step in steps {
        let _ = match step {
            Step::Key(k) => write!(s, ".{k}"),
            Step::Index(i) => write!(s, "[{i}]"),
        };
    }
    s
}

fn pointer<'c>(cx: &'c Cx<'_>, depth: u32) -> Result<&'c Value, ExprError> {
    let d = usize::try_from(depth).unwrap_or(usize::MAX);
    cx.scopes
        .len()
        .checked_sub(1 + d)
        .and_then(|i| cx.scopes.get(i))
        .ok_or_else(|| err("`#` used outside of a closure"))
}

fn binary(op: Op, left: &Node, right: &Node, cx: &mut Cx<'_>) -> Result<Value, ExprError> {
    let a = eval(left, cx)?;
    match op {
        Op::And => {
            return if as_bool(&a, "the left side of `and`")? {
                eval(right, cx)
            } else {
                Ok(a)
            }
        }
        Op::Or => {
            return if as_bool(&a, "the left side of `or`")? {
                Ok(a)
            } else {
                eval(right, cx)
            }
        }
        Op::Nullish => {
            return if matches!(a, Value::Null) {
                eval(right, cx)
            } else {
                Ok(a)
            }
        }
        _ => {}
    }
    let b = eval(right, cx)?;
    Ok(match op {
        Op::Eq => Value::Bool(equal(&a, &b)),
        Op::Ne => Value::Bool(!equal(&a, &b)),
        Op::In => Value::Bool(contains(op, &a, &b)?),
        Op::NotIn => Value::Bool(!contains(op, &a, &b)?),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => Value::Bool(compare(op, &a, &b)?),
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow => arithmetic(op, &a, &b, cx)?,
        other => {
            return Err(err(format!(
                "`{}` is not a binary operator",
                other.symbol()
            )))
        }
    })
}

fn closure(
    func: ClosureFn,
    array: &Node,
    body: &Node,
    cx: &mut Cx<'_>,
) -> Result<Value, ExprError> {
    let items: Arc<Vec<Value>> = match eval(array, cx)? {
        Value::Array(a) => a,
        Value::Interval(i) => {
            let (start, end) = i
                .to_range()
                .ok_or_else(|| err("only integer intervals can be iterated"))?;
            let len = usize::try_from(end.saturating_sub(start).saturating_add(1)).unwrap_or(0);
            if len > cx.limits.max_collection_len {
                return Err(ExprError::Limit(format!(
                    "interval of {len} elements exceeds the limit of {}",
                    cx.limits.max_collection_len
                )));
            }
            cx.charge(len)?;
            Arc::new(if start <= end {
                (start..=end).map(|n| Value::Number(n.into())).collect()
            } else {
                Vec::new()
            })
        }
        other => {
            return Err(err(format!(
                "closures iterate over arrays, got {}",
                other.type_name()
            )))
        }
    };
    let mut out = Vec::new();
    let mut count: usize = 0;
    for item in items.iter() {
        cx.scopes.push(item.clone());
        let r = eval(body, cx);
        cx.scopes.pop();
        let r = r?;
        match func {
            ClosureFn::All => {
                if !as_bool(&r, "the body of all()")? {
                    return Ok(Value::Bool(false));
                }
            }
            ClosureFn::Some => {
                if as_bool(&r, "the body of some()")? {
                    return Ok(Value::Bool(true));
                }
            }
            ClosureFn::None => {
                if as_bool(&r, "the body of none()")? {
                    return Ok(Value::Bool(false));
                }
            }
            ClosureFn::One | ClosureFn::Count => {
                if as_bool(&r, "the closure body")? {
                    count += 1;
                }
            }
            ClosureFn::Filter => {
                if as_bool(&r, "the body of filter()")? {
                    out.push(item.clone());
                }
            }
            ClosureFn::Map => out.push(r),
            ClosureFn::FlatMap => match r {
                Value::Array(inner) => {
                    cx.charge(inner.len())?;
                    out.extend(inner.iter().cloned());
                }
                other => out.push(other),
            },
        }
    }
    Ok(match func {
        ClosureFn::All | ClosureFn::None => Value::Bool(true),
        ClosureFn::Some => Value::Bool(false),
        ClosureFn::One => Value::Bool(count == 1),
        ClosureFn::Count => Value::Number(count.into()),
        ClosureFn::Filter | ClosureFn::Map | ClosureFn::FlatMap => Value::array(out),
    })
}

fn unit_arg(args: &[Value], i: usize, name: &str) -> Result<Option<Unit>, ExprError> {
    match args.get(i) {
        None => Ok(None),
        Some(Value::String(s)) => Unit::parse(s)
            .map(Some)
            .ok_or_else(|| err(format!(".{name}(): invalid unit {s:?}"))),
        Some(other) => Err(err(format!(
            ".{name}(): the unit must be a string, got {}",
            other.type_name()
        ))),
    }
}

fn duration_arg(args: &[Value], name: &str) -> Result<date::Duration, ExprError> {
    match args.first() {
        Some(Value::String(s)) => date::Duration::parse(s)
            .ok_or_else(|| err(format!(".{name}(): invalid duration {s:?}"))),
        Some(Value::Number(n)) => {
            let unit = unit_arg(args, 1, name)?
                .ok_or_else(|| err(format!(".{name}(): a unit is required")))?;
            date::Duration::from_decimal(*n, unit)
                .ok_or_else(|| err(format!(".{name}(): invalid duration")))
        }
        _ => Err(err(format!(".{name}(): invalid duration arguments"))),
    }
}

fn date_out(dt: Option<DateTime<Tz>>) -> Value {
    Value::Date(Arc::new(DateValue(dt)))
}

fn call_method(
    method: Method,
    this: &Value,
    args: &[Value],
    cx: &mut Cx<'_>,
) -> Result<Value, ExprError> {
    let Value::Date(d) = this else {
        return Err(err(format!(
            "date methods need a date, got {}",
            this.type_name()
        )));
    };
    let other = |cx: &Cx<'_>| {
        args.first()
            .and_then(|v| date::parse_date(v, cx.timezone, cx.now()))
    };
    use Method as M;
    if method == M::IsValid {
        return Ok(Value::Bool(d.0.is_some()));
    }
    let Some(dt) = d.0 else {
        // Invalid dates propagate: transformations stay invalid, getters give null.
        return Ok(match method {
            M::Add | M::Sub | M::Set | M::StartOf | M::EndOf | M::Tz => date_out(None),
            M::Format => Value::str("Invalid date"),
            M::IsSame | M::IsBefore | M::IsAfter | M::IsSameOrBefore | M::IsSameOrAfter => {
                Value::Bool(false)
            }
            _ => Value::Null,
        });
    };
    let now_in = |cx: &Cx<'_>| cx.now().with_timezone(&cx.timezone);
    Ok(match method {
        M::Add => date_out(date::add_duration(dt, duration_arg(args, "add")?)),
        M::Sub => date_out(date::add_duration(dt, duration_arg(args, "sub")?.negate())),
        M::Set => {
            let unit =
                unit_arg(args, 0, "set")?.ok_or_else(|| err(".set(): a unit is required"))?;
            let value = match args.get(1) {
                Some(Value::Number(n)) => n.to_u32().ok_or_else(|| err(".set(): invalid value"))?,
                _ => return Err(err(".set(): the value must be a number")),
            };
            date_out(date::set(dt, unit, value))
        }
        M::Format => match args.first() {
            None => Value::str(&dt.to_string()),
            Some(Value::String(f)) => {
                use std::fmt::Write;
                let mut s = String::new();
                write!(s, "{}", dt.format(f))
                    .map_err(|_| err(format!(".format(): invalid format {f:?}")))?;
                Value::str(&s)
            }
            Some(other) => {
                return Err(err(format!(
                    ".format(): the format must be a string, got {}",
                    other.type_name()
                )))
            }
        },
        M::StartOf | M::EndOf => {
            let unit = unit_arg(args, 0, "startOf")?.ok_or_else(|| err("a unit is required"))?;
            date_out(if method == M::StartOf {
                date::start_of(dt, unit)
            } else {
                date::end_of(dt, unit)
            })
        }
        M::Diff => {
            let unit = unit_arg(args, 1, "diff")?;
            match other(cx) {
                Some(b) => Value::Number(date::diff(dt, b, unit).into()),
                None => Value::Null,
            }
        }
        M::Tz => match args.first() {
            Some(Value::String(s)) => {
                let tz =
                    Tz::from_str(s).map_err(|_| err(format!(".tz(): invalid time zone {s:?}")))?;
                date_out(Some(dt.with_timezone(&tz)))
            }
            _ => return Err(err(".tz(): the time zone must be a string")),
        },
        M::IsSame | M::IsBefore | M::IsAfter | M::IsSameOrBefore | M::IsSameOrAfter => {
            let unit = unit_arg(args, 1, "isSame")?;
            let Some(b) = other(cx) else {
                return Ok(Value::Bool(false));
            };
            Value::Bool(match method {
                M::IsSame => date::is_same(dt, b, unit),
                M::IsBefore => date::is_before(dt, b, unit),
                M::IsAfter => date::is_after(dt, b, unit),
                M::IsSameOrBefore => date::is_before(dt, b, unit) || date::is_same(dt, b, unit),
                _ => date::is_after(dt, b, unit) || date::is_same(dt, b, unit),
            })
        }
        M::Second => Value::Number(dt.second().into()),
        M::Minute => Value::Number(dt.minute().into()),
        M::Hour => Value::Number(dt.hour().into()),
        M::Day => Value::Number(dt.day().into()),
        M::DayOfYear => Value::Number(dt.ordinal().into()),
        M::Week => Value::Number(dt.iso_week().week().into()),
        M::Weekday => Value::Number(dt.weekday().number_from_monday().into()),
        M::Month => Value::Number(dt.month().into()),
        M::Quarter => Value::Number(dt.quarter().into()),
        M::Year => Value::Number(dt.year().into()),
        M::Timestamp => Value::Number(dt.timestamp_millis().into()),
        M::OffsetName => Value::str(dt.timezone().name()),
        M::IsLeapYear => Value::Bool(dt.date_naive().leap_year()),
        M::IsToday | M::IsYesterday | M::IsTomorrow => {
            let shift = match method {
                M::IsYesterday => -1,
                M::IsTomorrow => 1,
                _ => 0,
            };
            let day = date::Duration::of(shift, Unit::Day).unwrap_or_default();
            let target = date::add_duration(now_in(cx), day);
            Value::Bool(target.is_some_and(|t| date::is_same(dt, t, Some(Unit::Day))))
        }
        M::IsValid => Value::Bool(true),
    })
}

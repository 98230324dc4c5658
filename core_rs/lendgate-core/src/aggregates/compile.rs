//! Compiling a [`DefinitionsSpec`] into the validated form the store runs.

use super::filter::{EventFilter, FieldFilter, FilterSpec};
use super::spec::{
    AggKind, BucketSpec, DefinitionsSpec, ElementKind, ElementSpec, ExceptSpec, KeyPartSpec,
    ObjectSpec, OperandSpec, ParamSpec, SearchSpec, WhichSpec, WindowSpec,
};
use super::value::{AttrPath, Millis, PathTable, ValueType};
use crate::error::{CoreError, CoreResult};
use crate::normalize::KeyKind;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;

const DAY_MS: i64 = 86_400_000;
/// Hard cap on the records of one array element, whatever its definition says.
pub const MAX_RECORDS: u32 = 100_000;
const MAX_DAYS: u32 = 3_660;

/// Compiles expression filters (`filter_expr`). The expression engine implements it;
/// without one, any `filter_expr` is rejected.
pub trait ExprCompiler {
    /// Compiles `expr`; `field` names the definition field for errors.
    fn compile(&self, expr: &str, field: &str) -> CoreResult<Box<dyn EventFilter>>;
}

/// Validated, compiled definitions.
#[derive(Debug)]
pub struct Definitions {
    pub(crate) time_attr: AttrPath,
    pub(crate) lateness_ms: Millis,
    pub(crate) objects: Vec<Object>,
    pub(crate) params: Vec<Param>,
    pub(crate) layout: String,
    /// Every distinct attribute path read, each with its slot in an event view.
    pub(crate) paths: PathTable,
    /// Some filter needs the whole document (an expression filter), not only slots.
    pub(crate) needs_document: bool,
    /// Per object, the index of its first element in the flat per-event arrays.
    pub(crate) elem_base: Vec<usize>,
    /// Number of distinct filters (`Element::filter_id`).
    pub(crate) n_filters: usize,
    /// Objects grouped by key: the state of every object of a group is kept together,
    /// one entity per key (one hash probe and one lock per event and group).
    pub(crate) groups: Vec<Group>,
}

/// Objects with the same key (the same attributes, normalised the same way, in the
/// same order): a client id read by the `Client` object and by the hidden objects of
/// the built-in parameters.
#[derive(Debug)]
pub(crate) struct Group {
    /// The objects, in definition order.
    pub(crate) objects: Vec<usize>,
    /// Elements of all its objects: the length of its entities.
    pub(crate) n_elems: usize,
}

#[derive(Debug)]
pub(crate) struct Object {
    pub(crate) name: String,
    pub(crate) key: Vec<(AttrPath, KeyKind)>,
    pub(crate) elements: Vec<Element>,
    /// Parameters read from the state before the event (`except: record`, `save`).
    pub(crate) params_before: Vec<usize>,
    /// Parameters read from the state after the event.
    pub(crate) params_after: Vec<usize>,
    /// The [`Group`] holding this object's state.
    pub(crate) group: usize,
    /// Index of this object's first element in its group's entities.
    pub(crate) offset: usize,
}

#[derive(Debug)]
pub(crate) struct Element {
    pub(crate) kind: ElementKind,
    pub(crate) attr: Option<AttrPath>,
    pub(crate) ty: ValueType,
    pub(crate) filter: Option<Box<dyn EventFilter>>,
    /// Elements whose filters have the same [`EventFilter::identity`] share an id,
    /// so the filter runs once per event.
    pub(crate) filter_id: u32,
    /// Record (or bucket) depth; `MAX_RECORDS` when not given.
    pub(crate) max_records: u32,
    /// Depth in time.
    pub(crate) horizon_ms: Millis,
    /// Bucket width of `date_and_counter`.
    pub(crate) bucket_ms: Millis,
    /// Some parameter needs this event's value of the attribute even when the filter
    /// does not pass (`except: value`, `search: current`).
    pub(crate) needs_current: bool,
}

impl Element {
    pub(crate) fn is_single(&self) -> bool {
        matches!(
            self.kind,
            ElementKind::First
                | ElementKind::Last
                | ElementKind::Sum
                | ElementKind::Min
                | ElementKind::Max
                | ElementKind::Count
        )
    }

    pub(crate) fn is_records(&self) -> bool {
        matches!(
            self.kind,
            ElementKind::Unique | ElementKind::TimeAndValue | ElementKind::TimeAndLastUniqueValue
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) last_ms: Option<Millis>,
    pub(crate) skip_ms: Millis,
}

impl Window {
    const ALL: Self = Self {
        last_ms: None,
        skip_ms: 0,
    };
}

#[derive(Debug)]
pub(crate) enum Search {
    Equal(Value),
    In(Vec<Value>),
    Any,
    Current,
}

#[derive(Debug)]
pub(crate) enum Operand {
    Attr(AttrPath),
    Param(usize),
    Value(Value),
}

#[derive(Debug)]
pub(crate) enum ParamBody {
    Aggregate {
        obj: usize,
        elem: usize,
        agg: AggKind,
        p: f64,
        window: Window,
        except: ExceptSpec,
    },
    Interval {
        obj: usize,
        elem: usize,
        unit_ms: Millis,
        which: WhichSpec,
        search: Search,
        window: Window,
        except: ExceptSpec,
    },
    /// The `nth` most recent value before this event, within the window.
    Previous {
        obj: usize,
        elem: usize,
        nth: u32,
        window: Window,
    },
    CompareFl(Operand, Operand),
    Ratio(Operand, Operand),
    Sum(Vec<Operand>),
    Multiple(Operand, Operand),
    Substring {
        of: Operand,
        start: usize,
        len: Option<usize>,
    },
}

impl ParamBody {
    /// The object a stateful parameter reads, and whether it reads the state before
    /// the event (`except: record`) rather than after it.
    pub(crate) fn object(&self) -> Option<(usize, bool)> {
        match self {
            Self::Aggregate { obj, except, .. } | Self::Interval { obj, except, .. } => {
                Some((*obj, *except == ExceptSpec::Record))
            }
            Self::Previous { obj, .. } => Some((*obj, true)),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) body: ParamBody,
}

impl Definitions {
    /// Parses and compiles a JSON definition document without an expression engine.
    pub fn from_json(json: &str) -> CoreResult<Self> {
        Self::from_json_with(json, None)
    }

    /// Parses and compiles a JSON document; `exprs` compiles `filter_expr` fields.
    pub fn from_json_with(json: &str, exprs: Option<&dyn ExprCompiler>) -> CoreResult<Self> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let spec: DefinitionsSpec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "definitions".into()
            } else {
                path
            };
            CoreError::invalid(field, e.into_inner().to_string())
        })?;
        Self::compile(&spec, exprs)
    }

    /// Compiles a parsed document.
    pub fn compile(spec: &DefinitionsSpec, exprs: Option<&dyn ExprCompiler>) -> CoreResult<Self> {
        let mut c = Compiler {
            exprs,
            retention_ms: i64::from(spec.retention_days) * DAY_MS,
            objects: Vec::new(),
            object_index: HashMap::new(),
        };
        if spec.retention_days == 0 || spec.retention_days > MAX_DAYS {
            return Err(CoreError::invalid(
                "retention_days",
                format!("must be 1..={MAX_DAYS}"),
            ));
        }
        let lateness_ms = i64::try_from(spec.allowed_lateness_seconds)
            .ok()
            .filter(|s| *s <= 30 * 86_400)
            .ok_or_else(|| {
                CoreError::invalid("allowed_lateness_seconds", "must be at most 30 days")
            })?
            * 1000;
        let time_attr = AttrPath::parse(&spec.time_attr, "time_attr")?;
        for (i, o) in spec.objects.iter().enumerate() {
            c.object(o, &format!("objects[{i}]"))?;
        }
        let mut params = Vec::new();
        let mut param_index = HashMap::new();
        for (i, p) in spec.params.iter().enumerate() {
            let field = format!("params[{i}]");
            let name = p.name();
            if name.is_empty() || param_index.contains_key(name) {
                return Err(CoreError::invalid(
                    format!("{field}.name"),
                    format!("parameter name {name:?} is empty or used twice"),
                ));
            }
            let body = c.param(p, &field, &param_index)?;
            param_index.insert(name.to_string(), params.len());
            params.push(Param {
                name: name.to_string(),
                body,
            });
        }
        let mut objects = c.objects;
        for (pi, p) in params.iter().enumerate() {
            if let Some((oi, before)) = p.body.object() {
                let o = &mut objects[oi];
                if before {
                    o.params_before.push(pi);
                } else {
                    o.params_after.push(pi);
                }
            }
            match &p.body {
                ParamBody::Aggregate {
                    obj,
                    elem,
                    except: ExceptSpec::Value,
                    ..
                }
                | ParamBody::Interval {
                    obj,
                    elem,
                    except: ExceptSpec::Value,
                    ..
                }
                | ParamBody::Interval {
                    obj,
                    elem,
                    search: Search::Current,
                    ..
                } => objects[*obj].elements[*elem].needs_current = true,
                _ => {}
            }
        }
        let layout = layout(&objects);
        let mut defs = Self {
            time_attr,
            lateness_ms,
            objects,
            params,
            layout,
            paths: PathTable::default(),
            needs_document: false,
            elem_base: Vec::new(),
            groups: Vec::new(),
            n_filters: 0,
        };
        defs.index_paths();
        defs.group_objects();
        defs.share_filters();
        Ok(defs)
    }

    /// Gives elements with the same filter one filter id.
    fn share_filters(&mut self) {
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut n = 0u32;
        for e in self.objects.iter_mut().flat_map(|o| &mut o.elements) {
            let identity = e.filter.as_ref().and_then(|f| f.identity());
            e.filter_id = match identity {
                Some(i) => *seen.entry(i).or_insert_with(|| {
                    n += 1;
                    n - 1
                }),
                None => {
                    n += 1;
                    n - 1
                }
            };
        }
        self.n_filters = n as usize;
    }

    /// Puts objects with the same key into one [`Group`].
    fn group_objects(&mut self) {
        let same_key = |a: &Object, b: &Object| {
            a.key.len() == b.key.len()
                && a.key
                    .iter()
                    .zip(&b.key)
                    .all(|((pa, ka), (pb, kb))| pa.as_str() == pb.as_str() && ka == kb)
        };
        let mut groups: Vec<Group> = Vec::new();
        for oi in 0..self.objects.len() {
            let found = groups
                .iter()
                .position(|g| same_key(&self.objects[g.objects[0]], &self.objects[oi]));
            let gi = found.unwrap_or_else(|| {
                groups.push(Group {
                    objects: Vec::new(),
                    n_elems: 0,
                });
                groups.len() - 1
            });
            let g = &mut groups[gi];
            let o = &mut self.objects[oi];
            o.group = gi;
            o.offset = g.n_elems;
            g.objects.push(oi);
            g.n_elems += o.elements.len();
        }
        self.groups = groups;
    }

    /// Gives every attribute path a slot, so each is resolved once per event.
    fn index_paths(&mut self) {
        let mut table = PathTable::default();
        let mut needs_document = false;
        let mut filter = |f: &mut Option<Box<dyn EventFilter>>, table: &mut PathTable| {
            if let Some(f) = f {
                needs_document |= f.needs_document();
                f.visit_paths(&mut |p| table.intern(p));
            }
        };
        table.intern(&mut self.time_attr);
        let mut base = 0;
        for o in &mut self.objects {
            self.elem_base.push(base);
            base += o.elements.len();
            for (p, _) in &mut o.key {
                table.intern(p);
            }
            for e in &mut o.elements {
                if let Some(p) = &mut e.attr {
                    table.intern(p);
                }
                filter(&mut e.filter, &mut table);
            }
        }
        self.elem_base.push(base);
        for p in &mut self.params {
            let ops: Vec<&mut Operand> = match &mut p.body {
                ParamBody::CompareFl(a, b) | ParamBody::Ratio(a, b) | ParamBody::Multiple(a, b) => {
                    vec![a, b]
                }
                ParamBody::Sum(ops) => ops.iter_mut().collect(),
                ParamBody::Substring { of, .. } => vec![of],
                _ => Vec::new(),
            };
            for o in ops {
                if let Operand::Attr(p) = o {
                    table.intern(p);
                }
            }
        }
        table.finish();
        self.paths = table;
        self.needs_document = needs_document;
    }

    /// Number of elements of each object, in the order of `AggregateStore::key_counts`.
    pub fn objects_elements(&self) -> Vec<usize> {
        self.objects.iter().map(|o| o.elements.len()).collect()
    }

    /// Names of the parameters, in output order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| p.name.as_str())
    }

    /// A text that changes whenever the shape of stored state changes (objects, keys,
    /// elements, kinds, types); a snapshot restores only into the same layout.
    pub fn layout(&self) -> &str {
        &self.layout
    }
}

fn layout(objects: &[Object]) -> String {
    let mut s = String::new();
    for o in objects {
        let _ = write!(s, "{}[", o.name);
        for (p, k) in &o.key {
            let _ = write!(s, "{}:{k:?},", p.as_str());
        }
        s.push_str("]{");
        for e in &o.elements {
            let _ = write!(s, "{:?}:{:?}:{},", e.kind, e.ty, e.bucket_ms);
        }
        s.push_str("};");
    }
    s
}

struct Compiler<'a> {
    exprs: Option<&'a dyn ExprCompiler>,
    retention_ms: Millis,
    objects: Vec<Object>,
    object_index: HashMap<String, (usize, HashMap<String, usize>)>,
}

fn window(w: Option<&WindowSpec>) -> Window {
    w.map_or(Window::ALL, |w| Window {
        last_ms: w.last.map(|l| i64::from(l) * w.unit.millis()),
        skip_ms: i64::from(w.skip) * w.unit.millis(),
    })
}

impl Compiler<'_> {
    fn filter(
        &self,
        filter: Option<&FilterSpec>,
        expr: Option<&str>,
        field: &str,
    ) -> CoreResult<Option<Box<dyn EventFilter>>> {
        match (filter, expr) {
            (Some(_), Some(_)) => Err(CoreError::invalid(
                field,
                "give either `filter` or `filter_expr`, not both",
            )),
            (Some(f), None) => Ok(Some(Box::new(FieldFilter::compile(
                f,
                &format!("{field}.filter"),
            )?))),
            (None, Some(e)) => match self.exprs {
                Some(c) => c.compile(e, &format!("{field}.filter_expr")).map(Some),
                None => Err(CoreError::invalid(
                    format!("{field}.filter_expr"),
                    "expression filters need the expression engine, which is not available \
                     in this build yet; use the structured `filter` form",
                )),
            },
            (None, None) => Ok(None),
        }
    }

    fn key(&self, key: &[KeyPartSpec], field: &str) -> CoreResult<Vec<(AttrPath, KeyKind)>> {
        if key.is_empty() || key.len() > 8 {
            return Err(CoreError::invalid(field, "a key has 1 to 8 attributes"));
        }
        key.iter()
            .enumerate()
            .map(|(i, k)| {
                Ok((
                    AttrPath::parse(&k.attr, &format!("{field}[{i}].attr"))?,
                    k.kind,
                ))
            })
            .collect()
    }

    fn object(&mut self, o: &ObjectSpec, field: &str) -> CoreResult<()> {
        if o.name.is_empty() || o.name.starts_with('$') || self.object_index.contains_key(&o.name) {
            return Err(CoreError::invalid(
                format!("{field}.name"),
                format!(
                    "object name {:?} is empty, starts with '$' or is used twice",
                    o.name
                ),
            ));
        }
        let key = self.key(&o.key, &format!("{field}.key"))?;
        if o.elements.is_empty() {
            return Err(CoreError::invalid(
                format!("{field}.elements"),
                "an object needs at least one element",
            ));
        }
        let mut names = HashMap::new();
        let mut elements = Vec::new();
        for (i, e) in o.elements.iter().enumerate() {
            let ef = format!("{field}.elements[{i}]");
            if e.name.is_empty() || names.insert(e.name.clone(), i).is_some() {
                return Err(CoreError::invalid(
                    format!("{ef}.name"),
                    format!("element name {:?} is empty or used twice", e.name),
                ));
            }
            elements.push(self.element(e, &ef)?);
        }
        self.push_object(o.name.clone(), key, elements, names);
        Ok(())
    }

    fn push_object(
        &mut self,
        name: String,
        key: Vec<(AttrPath, KeyKind)>,
        elements: Vec<Element>,
        names: HashMap<String, usize>,
    ) -> usize {
        let idx = self.objects.len();
        self.object_index.insert(name.clone(), (idx, names));
        self.objects.push(Object {
            name,
            key,
            elements,
            params_before: Vec::new(),
            params_after: Vec::new(),
            group: 0,
            offset: 0,
        });
        idx
    }

    fn element(&self, e: &ElementSpec, field: &str) -> CoreResult<Element> {
        use ElementKind as K;
        let needs_attr = !matches!(e.kind, K::Count | K::DateAndCounter);
        let attr = match (&e.attr, needs_attr) {
            (Some(a), true) => Some(AttrPath::parse(a, &format!("{field}.attr"))?),
            (Some(a), false) => {
                // Accepted for compatibility with the seed, which names an attribute
                // (common.riskScore) on counters; counters never read it.
                AttrPath::parse(a, &format!("{field}.attr"))?;
                None
            }
            (None, true) => {
                return Err(CoreError::invalid(
                    format!("{field}.attr"),
                    format!("element kind {:?} needs a source attribute", e.kind),
                ))
            }
            (None, false) => None,
        };
        let numeric = matches!(
            e.ty,
            ValueType::Integer | ValueType::Decimal | ValueType::Timestamp
        );
        if matches!(e.kind, K::Sum | K::Min | K::Max) && !numeric {
            return Err(CoreError::invalid(
                format!("{field}.type"),
                format!("element kind {:?} needs a numeric type", e.kind),
            ));
        }
        let is_array = matches!(
            e.kind,
            K::Unique | K::TimeAndValue | K::TimeAndLastUniqueValue | K::DateAndCounter
        );
        if e.max_records.is_some() && !is_array {
            return Err(CoreError::invalid(
                format!("{field}.max_records"),
                "only array elements have a depth in records",
            ));
        }
        if let Some(n) = e.max_records {
            if n == 0 || n > MAX_RECORDS {
                return Err(CoreError::invalid(
                    format!("{field}.max_records"),
                    format!("must be 1..={MAX_RECORDS}"),
                ));
            }
        }
        if let Some(d) = e.max_days {
            if d == 0 || d > MAX_DAYS {
                return Err(CoreError::invalid(
                    format!("{field}.max_days"),
                    format!("must be 1..={MAX_DAYS}"),
                ));
            }
        }
        if e.bucket.is_some() && e.kind != K::DateAndCounter {
            return Err(CoreError::invalid(
                format!("{field}.bucket"),
                "only date_and_counter elements have buckets",
            ));
        }
        let bucket_ms = match (e.kind, e.bucket.unwrap_or_default()) {
            (K::DateAndCounter, BucketSpec::Day) => DAY_MS,
            (K::DateAndCounter, BucketSpec::Hour) => 3_600_000,
            _ => 0,
        };
        Ok(Element {
            kind: e.kind,
            attr,
            ty: e.ty,
            filter: self.filter(e.filter.as_ref(), e.filter_expr.as_deref(), field)?,
            max_records: e.max_records.unwrap_or(MAX_RECORDS),
            horizon_ms: e
                .max_days
                .map_or(self.retention_ms, |d| i64::from(d) * DAY_MS),
            bucket_ms,
            needs_current: false,
            filter_id: 0,
        })
    }

    fn lookup(&self, object: &str, element: &str, field: &str) -> CoreResult<(usize, usize)> {
        let (oi, names) = self.object_index.get(object).ok_or_else(|| {
            CoreError::invalid(format!("{field}.object"), format!("no object {object:?}"))
        })?;
        let ei = names.get(element).ok_or_else(|| {
            CoreError::invalid(
                format!("{field}.element"),
                format!("object {object:?} has no element {element:?}"),
            )
        })?;
        Ok((*oi, *ei))
    }

    fn elem(&self, obj: usize, elem: usize) -> &Element {
        &self.objects[obj].elements[elem]
    }

    #[allow(clippy::too_many_arguments)]
    fn hidden(
        &mut self,
        name: &str,
        key: &[KeyPartSpec],
        kind: ElementKind,
        attr: Option<(&str, ValueType)>,
        max_records: Option<u32>,
        horizon_ms: Option<Millis>,
        filter: Option<Box<dyn EventFilter>>,
        field: &str,
    ) -> CoreResult<usize> {
        let key = self.key(key, &format!("{field}.key"))?;
        let (attr, ty) = match attr {
            Some((a, ty)) => (Some(AttrPath::parse(a, &format!("{field}.attr"))?), ty),
            None => (None, ValueType::String),
        };
        let element = Element {
            kind,
            attr,
            ty,
            filter,
            max_records: max_records.unwrap_or(MAX_RECORDS),
            horizon_ms: horizon_ms.unwrap_or(self.retention_ms),
            bucket_ms: 0,
            needs_current: false,
            filter_id: 0,
        };
        let names = HashMap::from([("v".to_string(), 0)]);
        Ok(self.push_object(format!("${name}"), key, vec![element], names))
    }

    fn operand(
        &self,
        o: &OperandSpec,
        field: &str,
        params: &HashMap<String, usize>,
    ) -> CoreResult<Operand> {
        match (&o.attr, &o.param, &o.value) {
            (Some(a), None, None) => {
                Ok(Operand::Attr(AttrPath::parse(a, &format!("{field}.attr"))?))
            }
            (None, Some(p), None) => params.get(p).map(|i| Operand::Param(*i)).ok_or_else(|| {
                CoreError::invalid(
                    format!("{field}.param"),
                    format!("no parameter {p:?} defined before this one"),
                )
            }),
            (None, None, Some(v)) => Ok(Operand::Value(v.clone())),
            _ => Err(CoreError::invalid(
                field,
                "an operand has exactly one of `attr`, `param`, `value`",
            )),
        }
    }

    fn search(&self, s: &SearchSpec, field: &str) -> CoreResult<Search> {
        let mut out = Vec::new();
        if let Some(v) = &s.equal {
            out.push(Search::Equal(v.clone()));
        }
        if let Some(v) = &s.in_ {
            out.push(Search::In(v.clone()));
        }
        if s.any == Some(true) {
            out.push(Search::Any);
        }
        if s.current == Some(true) {
            out.push(Search::Current);
        }
        match (out.pop(), out.is_empty()) {
            (Some(s), true) => Ok(s),
            _ => Err(CoreError::invalid(
                field,
                "give exactly one of `equal`, `in`, `any: true`, `current: true`",
            )),
        }
    }

    fn param(
        &mut self,
        p: &ParamSpec,
        field: &str,
        params: &HashMap<String, usize>,
    ) -> CoreResult<ParamBody> {
        let op = |c: &Self, o: &OperandSpec, n: &str| c.operand(o, &format!("{field}.{n}"), params);
        Ok(match p {
            ParamSpec::CalcAggregate {
                object,
                element,
                agg,
                p,
                window: w,
                except,
                ..
            } => {
                let (obj, elem) = self.lookup(object, element, field)?;
                let e = self.elem(obj, elem);
                if e.is_single() && (*agg != AggKind::Value || w.is_some()) {
                    return Err(CoreError::invalid(
                        format!("{field}.agg"),
                        "a single-value element supports only `agg: value`, without a window",
                    ));
                }
                self.check_except(e, *except, field)?;
                let p = match (agg, p) {
                    (AggKind::Percentile, Some(p)) if (0.0..=100.0).contains(p) => *p,
                    (AggKind::Percentile, _) => {
                        return Err(CoreError::invalid(
                            format!("{field}.p"),
                            "percentile needs `p` in 0..=100",
                        ))
                    }
                    (_, Some(_)) => {
                        return Err(CoreError::invalid(
                            format!("{field}.p"),
                            "`p` is only for `agg: percentile`",
                        ))
                    }
                    (AggKind::Median, None) => 50.0,
                    (_, None) => 0.0,
                };
                ParamBody::Aggregate {
                    obj,
                    elem,
                    agg: *agg,
                    p,
                    window: window(w.as_ref()),
                    except: *except,
                }
            }
            ParamSpec::CalcInterval {
                object,
                element,
                unit,
                which,
                search,
                window: w,
                except,
                ..
            } => {
                let (obj, elem) = self.lookup(object, element, field)?;
                let e = self.elem(obj, elem);
                if !e.is_records() {
                    return Err(CoreError::invalid(
                        format!("{field}.element"),
                        "calc_interval needs a unique, time_and_value or \
                         time_and_last_unique_value element",
                    ));
                }
                self.check_except(e, *except, field)?;
                ParamBody::Interval {
                    obj,
                    elem,
                    unit_ms: unit.millis(),
                    which: *which,
                    search: self.search(search, &format!("{field}.search"))?,
                    window: window(w.as_ref()),
                    except: *except,
                }
            }
            ParamSpec::Save {
                name,
                key,
                attr,
                ty,
                nth,
                window: w,
                filter,
                filter_expr,
            } => {
                if *nth == 0 || *nth > 1000 {
                    return Err(CoreError::invalid(
                        format!("{field}.nth"),
                        "must be 1..=1000",
                    ));
                }
                let w = window(Some(w));
                let f = self.filter(filter.as_ref(), filter_expr.as_deref(), field)?;
                let obj = self.hidden(
                    name,
                    key,
                    ElementKind::TimeAndValue,
                    Some((attr, *ty)),
                    Some(*nth),
                    w.last_ms,
                    f,
                    field,
                )?;
                ParamBody::Previous {
                    obj,
                    elem: 0,
                    nth: *nth,
                    window: w,
                }
            }
            ParamSpec::EventCount {
                name,
                key,
                window: w,
                filter,
                filter_expr,
            }
            | ParamSpec::AmountSum {
                name,
                key,
                window: w,
                filter,
                filter_expr,
                ..
            } => {
                let (agg, attr) = match p {
                    ParamSpec::AmountSum { attr, .. } => {
                        (AggKind::Sum, Some((attr.as_str(), ValueType::Decimal)))
                    }
                    _ => (AggKind::Count, None),
                };
                let w = window(Some(w));
                let f = self.filter(filter.as_ref(), filter_expr.as_deref(), field)?;
                let obj = self.hidden(
                    name,
                    key,
                    ElementKind::TimeAndValue,
                    attr,
                    None,
                    w.last_ms,
                    f,
                    field,
                )?;
                ParamBody::Aggregate {
                    obj,
                    elem: 0,
                    agg,
                    p: 0.0,
                    window: w,
                    except: ExceptSpec::None,
                }
            }
            ParamSpec::TimeSincePrevious {
                name,
                key,
                unit,
                filter,
                filter_expr,
            } => {
                let f = self.filter(filter.as_ref(), filter_expr.as_deref(), field)?;
                let obj = self.hidden(
                    name,
                    key,
                    ElementKind::TimeAndValue,
                    None,
                    Some(1),
                    None,
                    f,
                    field,
                )?;
                ParamBody::Interval {
                    obj,
                    elem: 0,
                    unit_ms: unit.millis(),
                    which: WhichSpec::Last,
                    search: Search::Any,
                    window: Window::ALL,
                    except: ExceptSpec::Record,
                }
            }
            ParamSpec::TimeSinceNewDevice {
                name,
                key,
                device,
                unit,
                max_devices,
                filter,
                filter_expr,
            } => {
                let n = max_devices.unwrap_or(100);
                if n == 0 || n > MAX_RECORDS {
                    return Err(CoreError::invalid(
                        format!("{field}.max_devices"),
                        format!("must be 1..={MAX_RECORDS}"),
                    ));
                }
                let f = self.filter(filter.as_ref(), filter_expr.as_deref(), field)?;
                let obj = self.hidden(
                    name,
                    key,
                    ElementKind::Unique,
                    Some((device, ValueType::String)),
                    Some(n),
                    None,
                    f,
                    field,
                )?;
                ParamBody::Interval {
                    obj,
                    elem: 0,
                    unit_ms: unit.millis(),
                    which: WhichSpec::First,
                    search: Search::Current,
                    window: Window::ALL,
                    except: ExceptSpec::None,
                }
            }
            ParamSpec::CompareFl { a, b, .. } => {
                ParamBody::CompareFl(op(self, a, "a")?, op(self, b, "b")?)
            }
            ParamSpec::Ratio { a, b, .. } => ParamBody::Ratio(op(self, a, "a")?, op(self, b, "b")?),
            ParamSpec::Multiple { a, b, .. } => {
                ParamBody::Multiple(op(self, a, "a")?, op(self, b, "b")?)
            }
            ParamSpec::Sum { of, .. } => {
                if of.is_empty() {
                    return Err(CoreError::invalid(format!("{field}.of"), "needs operands"));
                }
                ParamBody::Sum(
                    of.iter()
                        .enumerate()
                        .map(|(i, o)| op(self, o, &format!("of[{i}]")))
                        .collect::<CoreResult<_>>()?,
                )
            }
            ParamSpec::Substring { of, start, len, .. } => ParamBody::Substring {
                of: op(self, of, "of")?,
                start: *start as usize,
                len: len.map(|l| l as usize),
            },
        })
    }

    fn check_except(&self, e: &Element, except: ExceptSpec, field: &str) -> CoreResult<()> {
        if except == ExceptSpec::Value && !(e.is_records() && e.attr.is_some()) {
            return Err(CoreError::invalid(
                format!("{field}.except"),
                "`except: value` needs an array element with values \
                 (unique, time_and_value, time_and_last_unique_value)",
            ));
        }
        Ok(())
    }
}

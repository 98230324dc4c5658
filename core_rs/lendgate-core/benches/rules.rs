//! Criterion benches of lists and rules (`cargo bench -p lendgate-core --bench rules`).
//!
//! Targets (issue 9): list bulk load of 1,000,000 entries in a few seconds; list
//! lookups and simple conditions at well over 1,000,000/s per core.

use criterion::{criterion_group, Criterion, Throughput};
use lendgate_core::expr::{Context, Expression, Value};
use lendgate_core::lists::{
    parse_lines, Entry, EntryKind, List, ListRegistry, ListType, ListsAt, WriteMode,
};
use lendgate_core::rules::{
    condition_options, parse_document, EventKind, RuleSet, DEFAULT_ZONE_THRESHOLD,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The allocator of the Python extension (`lendgate-py`'s `mimalloc` feature, on by
/// default), so these figures are those of the served code.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "rules_fixture.rs"]
mod fixture;
use fixture::{document, pack, registry, AT};

const MILLION: usize = 1_000_000;

fn phone_entries(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            value: format!("+7 912 {:07}", i),
            expire_time: None,
            comment: String::new(),
            create_time: 0,
            author: "bench".to_string(),
        })
        .collect()
}

fn lists(c: &mut Criterion) {
    let mut g = c.benchmark_group("lists");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(MILLION as u64));
    g.bench_function("bulk_load_1m_phones", |b| {
        b.iter_batched(
            || phone_entries(MILLION),
            |entries| {
                let l = List::new("phones", EntryKind::Phone, ListType::Black);
                black_box(l.write(entries, WriteMode::Replace))
            },
            criterion::BatchSize::PerIteration,
        )
    });
    let text: String = (0..MILLION)
        .map(|i| format!("+7 912 {:07}\t\tcomment\n", i))
        .collect();
    g.bench_function("bulk_load_1m_phones_from_lines", |b| {
        b.iter(|| {
            let (entries, _) = parse_lines(black_box(&text), "bench", 0);
            let l = List::new("phones", EntryKind::Phone, ListType::Black);
            black_box(l.write(entries, WriteMode::Replace))
        })
    });
    g.finish();

    let l = List::new("phones", EntryKind::Phone, ListType::Black);
    l.write(phone_entries(MILLION), WriteMode::Replace);
    let mut g = c.benchmark_group("lists/lookup");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hit_in_1m", |b| {
        b.iter(|| l.contains(black_box("89120123456"), 0))
    });
    g.bench_function("miss_in_1m", |b| {
        b.iter(|| l.contains(black_box("89990123456"), 0))
    });
    g.bench_function("add_one_to_1m", |b| {
        b.iter(|| l.write(phone_entries(1), WriteMode::Merge))
    });
    g.finish();
}

fn rules(c: &mut Criterion) {
    let doc = Value::from(&document());
    let lists = registry();
    let set = RuleSet::compile(pack(), DEFAULT_ZONE_THRESHOLD).expect("pack compiles");
    let out = set.evaluate(&doc, EventKind::Application, AT, &lists);
    assert!(out.rule_errors.is_empty(), "{:?}", out.rule_errors);
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(1));
    let simple = Expression::compile_with(
        "params.EmployerINNAndIP.countToday >= 5",
        condition_options(),
    )
    .expect("compiles");
    g.bench_function("simple_condition", |b| {
        b.iter(|| simple.evaluate_value(black_box(&doc)))
    });
    let in_list = Expression::compile_with(
        "in_list('one-day-companies', application.applicant.employer.tax_id)",
        condition_options(),
    )
    .expect("compiles");
    let host = ListsAt {
        lists: &lists,
        at: AT,
    };
    g.bench_function("in_list_condition", |b| {
        b.iter(|| {
            let cx = Context {
                host: Some(&host),
                reads: None,
            };
            in_list.evaluate_in(black_box(&doc), cx)
        })
    });
    g.bench_function("pack_of_30_on_one_event", |b| {
        b.iter(|| set.evaluate(black_box(&doc), EventKind::Application, AT, &lists))
    });
    let text = serde_json::to_vec(&document()).expect("json");
    g.bench_function("pack_of_30_from_json_bytes", |b| {
        b.iter(|| {
            let doc = parse_document(black_box(&text)).expect("json");
            set.evaluate(&doc, EventKind::Application, AT, &lists)
        })
    });
    g.finish();
}

/// Latency percentiles of the pack on one event, timed one call at a time.
fn pack_percentiles() {
    let doc = Value::from(&document());
    let lists = registry();
    let set = RuleSet::compile(pack(), DEFAULT_ZONE_THRESHOLD).expect("pack compiles");
    print_percentiles("rules/pack_of_30", &set, &doc, &lists);
}

/// Times `set` on `doc` one call at a time (200,000 calls after 10,000 warm-up calls)
/// and prints the latency percentiles under `name`.
fn print_percentiles(name: &str, set: &RuleSet, doc: &Value, lists: &ListRegistry) {
    let fired = set.evaluate(doc, EventKind::Application, AT, lists);
    assert!(
        fired.rule_errors.is_empty(),
        "{name}: rule errors {:?}",
        fired.rule_errors
    );
    let mut samples: Vec<Duration> = Vec::with_capacity(200_000);
    for i in 0..210_000 {
        let t = Instant::now();
        black_box(set.evaluate(black_box(doc), EventKind::Application, AT, lists));
        if i >= 10_000 {
            samples.push(t.elapsed());
        }
    }
    samples.sort_unstable();
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name} ({} rules) latency over {} calls ({} fired, score {}): p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
        set.len(),
        samples.len(),
        fired.fired_rules.len(),
        fired.fraud_score,
        p(0.50),
        p(0.99),
        p(0.999),
        samples[samples.len() - 1]
    );
}

/// The shipped default pack (`python/lendgate/scoring/default_pack/`: its rules and its
/// lists with their entries) on one application whose every parameter the pack reads is
/// set, timed one call at a time: the in-process figure of issue 9 (≤ 20 µs p99).
fn default_pack_percentiles() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../python/lendgate/scoring/default_pack");
    let read = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join(name)).expect("the default pack");
        serde_json::from_str(&text).expect("pack json")
    };
    let rules_doc = read("rules.json");
    let mut defs = Vec::new();
    let mut params = std::collections::BTreeSet::new();
    let mut consortium = std::collections::BTreeSet::new();
    let names = regex::Regex::new(r"(params|consortium)\.(\w+)").expect("regex");
    for raw in rules_doc["rules"].as_array().expect("rules") {
        let mut raw = raw.clone();
        let obj = raw.as_object_mut().expect("rule object");
        obj.entry("status").or_insert("WORKING".into());
        obj.entry("event_kind").or_insert("APPLICATION".into());
        obj.remove("matches"); // the scorer's, not the rule engine's
        let text = serde_json::to_string(&raw).expect("json");
        for c in names.captures_iter(&text) {
            let set = if &c[1] == "params" {
                &mut params
            } else {
                &mut consortium
            };
            set.insert(c[2].to_string());
        }
        defs.push(serde_json::from_value(raw).expect("a pack rule"));
    }
    let threshold = rules_doc["zone_threshold"].as_i64().expect("threshold");
    let set = RuleSet::compile(defs, threshold).expect("the default pack compiles");
    let lists = ListRegistry::new();
    for spec in read("lists.json")["lists"].as_array().expect("lists") {
        let id = spec["list_id"].as_str().expect("id");
        let kind: EntryKind = spec["entry_kind"]
            .as_str()
            .expect("kind")
            .parse()
            .expect("kind");
        let list_type: ListType = spec["list_type"]
            .as_str()
            .expect("type")
            .parse()
            .expect("type");
        let list = lists.create(id, kind, list_type).expect("new list");
        let entries = spec["entries"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let entries = entries
            .iter()
            .filter_map(|v| v.as_str())
            .map(|v| Entry {
                value: v.to_string(),
                expire_time: None,
                comment: String::new(),
                create_time: 0,
                author: "pack".to_string(),
            })
            .collect();
        list.write(entries, WriteMode::Merge);
    }
    // Every parameter the pack reads set (values chosen so that about half the rules
    // fire, each with its explanation trace), as in bench/rules_vs_zen.py.
    let mut doc = document();
    doc["params"] = params
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), serde_json::json!((i * 7) % 23)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    doc["consortium"] = consortium
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), serde_json::json!(i % 2)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    print_percentiles("rules/default_pack", &set, &Value::from(&doc), &lists);
}

criterion_group!(benches, lists, rules);

fn main() {
    benches();
    pack_percentiles();
    default_pack_percentiles();
    Criterion::default().configure_from_args().final_summary();
}

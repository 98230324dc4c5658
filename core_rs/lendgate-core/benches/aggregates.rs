//! Aggregate store benches (`cargo bench -p lendgate-core --bench aggregates`).
//!
//! The definition set is the seed-003 rule pack (`testdata/aggregates/seed003_rules.json`:
//! the objects, elements and parameters rules 1–11 need, plus the built-in history
//! parameters); `apply_proto` runs the same pack over `lendgate.v1.ApplicationEvent`
//! fields (`seed003_proto_rules.json`) on protobuf bytes. Besides criterion's timings, the bench prints the heap bytes per key
//! measured with a counting allocator, and the two-thread apply rate.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lendgate_core::aggregates::{AggregateStore, Definitions};
use mimalloc::MiMalloc;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates to mimalloc (the Python extension's allocator, so the figures are
// those of the served code) and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        MiMalloc.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        MiMalloc.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        MiMalloc.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[path = "agg_workload.rs"]
mod workload;
use workload::{event, event_at, pack, seed003_proto_event, seed003_proto_pack, T0};

fn memory_report() {
    let clients = 100_000u64;
    let events: Vec<Vec<u8>> = (0..clients * 5)
        .map(|i| event(i, clients).to_string().into_bytes())
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let store = AggregateStore::new(pack());
    let start = Instant::now();
    for ev in &events {
        store.apply(ev).expect("apply");
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "single thread: {} events in {secs:.2}s = {:.0} events/s",
        events.len(),
        events.len() as f64 / secs
    );
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let counts = store.key_counts();
    let keys: usize = counts.iter().map(|(_, n)| n).sum();
    eprintln!(
        "memory: {} events over {clients} clients -> {keys} keys in {} objects",
        events.len(),
        counts.len()
    );
    for (name, n) in &counts {
        eprintln!("  {name:>32}: {n} keys");
    }
    eprintln!(
        "memory: {bytes} heap bytes = {:.0} B/key, {:.0} B/client (all objects / clients)",
        bytes as f64 / keys as f64,
        bytes as f64 / clients as f64
    );

    // One element in isolation: time_and_value of decimals, 10 records per key.
    let defs = Definitions::from_json(
        &json!({"time_attr": "t", "objects": [{"name": "C", "key": [{"attr": "k"}],
                "elements": [{"name": "v", "kind": "time_and_value", "attr": "a", "type": "decimal"}]}]})
        .to_string(),
    )
    .expect("defs");
    let before = LIVE.load(Ordering::Relaxed);
    let one = AggregateStore::new(defs);
    for i in 0..1_000_000u64 {
        let ev = json!({"t": T0 + i as i64, "k": format!("client-{}", i % 100_000), "a": 1.5});
        one.apply_value(&ev).expect("apply");
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "memory: time_and_value, 100000 keys x 10 records: {:.0} B/key ({:.1} B/record incl. key overhead)",
        bytes as f64 / 100_000.0,
        bytes as f64 / 1_000_000.0
    );
    drop(one);

    // Two threads applying the realistic mix.
    let store = Arc::new(AggregateStore::new(pack()));
    let per = events.len() / 2;
    let start = Instant::now();
    std::thread::scope(|s| {
        for k in 0..2 {
            let store = store.clone();
            let evs = &events[k * per..(k + 1) * per];
            s.spawn(move || {
                for ev in evs {
                    // Two threads interleave time order; keep within the allowed lateness.
                    let _ = store.apply(ev);
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "threads: 2 threads applied {} events in {secs:.2}s = {:.0} events/s",
        per * 2,
        (per * 2) as f64 / secs
    );
}

/// Heap of the seed pack's state for `clients` clients with 180 days of history
/// (`per_client` events each, spread evenly over the 180 days), after an expiry pass,
/// scaled linearly to 1,000,000 clients.
fn projection(clients: u64, per_client: u64) {
    let n = clients * per_client;
    let span = 180 * 86_400_000i64;
    let before = LIVE.load(Ordering::Relaxed);
    let store = AggregateStore::new(pack());
    for i in 0..n {
        let t = T0 + (i as i64) * span / n as i64;
        store.apply_value(&event_at(i, clients, t)).expect("apply");
    }
    while !store.expire_step(1024).pass_complete {}
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64;
    let keys: usize = store.key_counts().iter().map(|(_, n)| n).sum();
    let elems: usize = store
        .key_counts()
        .iter()
        .zip(pack().objects_elements())
        .map(|((_, n), e)| n * e)
        .sum();
    eprintln!(
        "projection: {clients} clients x {per_client} events over 180 days = {n} events -> {keys} keys, \
         {elems} entity-elements, {:.1} MB heap = {:.0} B/client, {:.0} B per entity per element; \
         x{} -> {:.2} GiB for 1,000,000 clients",
        bytes / 1e6,
        bytes / clients as f64,
        bytes / elems as f64,
        1_000_000 / clients,
        bytes * (1_000_000.0 / clients as f64) / (1u64 << 30) as f64
    );
}

/// Element updates per second: one `time_and_value` element and one `count`, keyed by
/// client, so each event is two element updates plus one key lookup.
fn element_updates(c: &mut Criterion) {
    let defs = Definitions::from_json(
        &json!({"time_attr": "t", "objects": [{"name": "C", "key": [{"attr": "k"}],
                "elements": [{"name": "v", "kind": "time_and_value", "attr": "a", "type": "decimal", "max_records": 50},
                             {"name": "n", "kind": "count"}]}]})
        .to_string(),
    )
    .expect("defs");
    let store = AggregateStore::new(defs);
    let keys: Vec<String> = (0..10_000).map(|i| format!("client-{i}")).collect();
    let mut i = 0u64;
    let mut g = c.benchmark_group("aggregates/element_updates");
    g.throughput(Throughput::Elements(2));
    g.bench_function("time_and_value+count", |b| {
        b.iter_batched(
            || {
                i += 1;
                json!({"t": T0 + i as i64, "k": keys[(i % 10_000) as usize], "a": 1.5})
            },
            |ev| store.apply_value(&ev).expect("apply"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn aggregates(c: &mut Criterion) {
    memory_report();
    projection(20_000, 30);
    element_updates(c);
    // 10,000 clients fit the caches far better than 100,000: the difference is the
    // cost of cache misses on the per-key state.
    for clients in [10_000u64, 100_000] {
        apply_and_query(c, clients);
    }
    c.bench_function("compare_fl/passport", |b| {
        b.iter(|| {
            lendgate_core::aggregates::query::compare_fl(
                black_box("4510 123456"),
                black_box("4510 123465"),
            )
        })
    });
}

fn apply_and_query(c: &mut Criterion, clients: u64) {
    let store = AggregateStore::new(pack());
    let mut next = 0u64;
    while next < clients * 3 {
        store.apply_value(&event(next, clients)).expect("apply");
        next += 1;
    }
    // Inputs are generated outside the timed part, always later in event time, so
    // every timed call does the full work (none is refused as late).
    let mut g = c.benchmark_group(format!("aggregates/seed003_pack/{clients}_clients"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_json_bytes", |b| {
        b.iter_batched(
            || {
                next += 1;
                event(next, clients).to_string().into_bytes()
            },
            |ev| store.apply(&ev).expect("apply"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("apply_parsed_event", |b| {
        b.iter_batched(
            || {
                next += 1;
                event(next, clients)
            },
            |ev| store.apply_value(&ev).expect("apply"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("evaluate_json_bytes", |b| {
        b.iter_batched(
            || {
                next += 1;
                event(next, clients).to_string().into_bytes()
            },
            |ev| store.evaluate(&ev).expect("evaluate"),
            BatchSize::SmallInput,
        )
    });
    // The same pack over `ApplicationEvent` fields, events as protobuf bytes: only
    // the fields the pack reads are decoded (`aggregates::proto`).
    let proto = AggregateStore::new(seed003_proto_pack());
    let mut next = 0u64;
    while next < clients * 3 {
        proto
            .apply_proto(APPLICATION, &seed003_proto_event(next, clients))
            .expect("apply");
        next += 1;
    }
    g.bench_function("apply_proto", |b| {
        b.iter_batched(
            || {
                next += 1;
                seed003_proto_event(next, clients)
            },
            |ev| proto.apply_proto(APPLICATION, &ev).expect("apply"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

const APPLICATION: &str = "lendgate.v1.ApplicationEvent";

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = aggregates
}
criterion_main!(benches);

//! A fixed aggregate workload for instruction counting:
//!
//! ```text
//! cargo build --release -p lendgate-core --example aggregates_profile
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/examples/aggregates_profile [json|value|seed_proto|proto|proto_doc] \
//!     [clients] [events]
//! ```
//!
//! It warms a store with the seed-003 pack (3 events per client), then applies
//! `events` more inside `measured`, so callgrind's total is the cost of those events.
//! `proto` applies `lendgate.v1.ApplicationEvent` bytes to a proto-shaped pack with
//! `apply_proto` (only the fields read are decoded); `proto_doc` applies the same bytes
//! the way `apply_proto` did before: the whole document, then `apply_value`.
//! `seed_proto` applies `ApplicationEvent` bytes to the seed-003 pack over proto fields
//! (`testdata/aggregates/seed003_proto_rules.json`) with `apply_proto`.

#[path = "../benches/agg_workload.rs"]
mod workload;

use lendgate_core::aggregates::AggregateStore;

/// The allocator of the Python extension (`lendgate-py`'s `mimalloc` feature), so the
/// figures are those of the served code.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::Value;
use std::hint::black_box;

/// CPU time this thread has run, in seconds (Linux `schedstat`; 0 elsewhere): on a
/// shared machine it counts only the time the thread had a core, unlike the wall clock.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

#[inline(never)]
fn measured_json(store: &AggregateStore, events: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for ev in events {
        n += store.apply(ev).expect("apply").len();
    }
    n
}

#[inline(never)]
fn measured_value(store: &AggregateStore, events: &[Value]) -> usize {
    let mut n = 0;
    for ev in events {
        n += store.apply_value(ev).expect("apply").len();
    }
    n
}

#[inline(never)]
fn measured_proto(store: &AggregateStore, events: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for ev in events {
        n += store
            .apply_proto("lendgate.v1.ApplicationEvent", ev)
            .expect("apply")
            .len();
    }
    n
}

#[inline(never)]
fn measured_proto_doc(store: &AggregateStore, events: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for ev in events {
        let doc = lendgate_core::document::decode_document("lendgate.v1.ApplicationEvent", ev)
            .expect("decode");
        n += store.apply_value(&doc).expect("apply").len();
    }
    n
}

fn proto_main(mode: &str, clients: u64, n: u64) {
    let seed = mode == "seed_proto";
    let store = AggregateStore::new(if seed {
        workload::seed003_proto_pack()
    } else {
        workload::proto_pack()
    });
    let warm = clients * 3;
    let all: Vec<Vec<u8>> = (0..warm + n)
        .map(|i| {
            if seed {
                workload::seed003_proto_event(i, clients)
            } else {
                workload::proto_event(i, clients)
            }
        })
        .collect();
    for ev in &all[..warm as usize] {
        store
            .apply_proto("lendgate.v1.ApplicationEvent", ev)
            .expect("warm");
    }
    let events = &all[warm as usize..];
    let keys_before = store.key_counts();
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    let out = if mode != "proto_doc" {
        measured_proto(&store, events)
    } else {
        measured_proto_doc(&store, events)
    };
    let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    black_box(out);
    eprintln!(
        "{mode}: {n} events over {clients} clients in {secs:.3}s = {:.2} us/event \
         (CPU {cpu:.3}s = {:.2} us/event, {:.0} events/s)",
        secs * 1e6 / n as f64,
        cpu * 1e6 / n as f64,
        n as f64 / cpu
    );
    let after = store.key_counts();
    let new: Vec<String> = keys_before
        .iter()
        .zip(&after)
        .map(|((name, a), (_, b))| format!("{name} {a}->{b}"))
        .collect();
    eprintln!("keys per object: {}", new.join(", "));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("json", String::as_str);
    let clients: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let n: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    if mode.starts_with("proto") || mode == "seed_proto" {
        return proto_main(mode, clients, n);
    }
    let store = AggregateStore::new(workload::pack());
    let warm = clients * 3;
    for i in 0..warm {
        store
            .apply_value(&workload::event(i, clients))
            .expect("warm");
    }
    let values: Vec<Value> = (warm..warm + n)
        .map(|i| workload::event(i, clients))
        .collect();
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    let out = match mode {
        "value" => measured_value(&store, &values),
        _ => {
            let bytes: Vec<Vec<u8>> = values.iter().map(|v| v.to_string().into_bytes()).collect();
            measured_json(&store, &bytes)
        }
    };
    let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    black_box(out);
    eprintln!(
        "{mode}: {n} events over {clients} clients in {secs:.3}s = {:.2} us/event \
         (CPU {cpu:.3}s = {:.2} us/event, {:.0} events/s)",
        secs * 1e6 / n as f64,
        cpu * 1e6 / n as f64,
        n as f64 / cpu
    );
}

//! Criterion benches of lists and rules (`cargo bench -p lendgate-core --bench rules`).
//!
//! Targets (issue 9): list bulk load of 1,000,000 entries in a few seconds; list
//! lookups and simple conditions at well over 1,000,000/s per core.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lendgate_core::lists::{parse_lines, Entry, EntryKind, List, ListType, WriteMode};
use std::hint::black_box;
use std::time::Duration;

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

criterion_group!(benches, lists);
criterion_main!(benches);

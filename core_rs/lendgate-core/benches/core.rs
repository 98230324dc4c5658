//! Criterion benches of the core's hot functions (`cargo bench -p lendgate-core`).

use criterion::{criterion_group, criterion_main, Criterion};
use lendgate_core::normalize::{normalize_key, KeyKind};
use std::hint::black_box;

fn normalize(c: &mut Criterion) {
    c.bench_function("normalize_key/phone", |b| {
        b.iter(|| normalize_key(KeyKind::Phone, black_box("+7 (912) 345-67-89")))
    });
    c.bench_function("normalize_key/text", |b| {
        b.iter(|| normalize_key(KeyKind::Text, black_box("  Ivan   PETROV ")))
    });
}

criterion_group!(benches, normalize);
criterion_main!(benches);

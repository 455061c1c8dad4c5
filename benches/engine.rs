//! Engine throughput and table memory.
//!
//! `cargo bench --bench engine` — criterion reports time per iteration of a
//! 1 M-event stream; events/s = 1e6 / that time. The memory figure (bytes of
//! heap per live process) is printed before the timing runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wsmwatch::engine::Engine;
use wsmwatch::event::{ProcessEvent, ProcessKey, Timestamp};
use wsmwatch::testing::synthetic::{generate, Profile};

/// Counts live heap bytes, so the table's footprint can be read off.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Heap bytes per live process once `n` processes run, with and without
/// ETW sequence keys.
fn bytes_per_process(n: u32, keys: bool) -> f64 {
    let events: Vec<ProcessEvent> = (0..n)
        .map(|i| {
            let mut e = ProcessEvent::start(
                Timestamp(1_000 + i as u64),
                8 + i * 4,
                4,
                IMAGE[i as usize % IMAGE.len()],
            );
            if keys {
                e.key = Some(ProcessKey::Sequence(100 + i as u64));
                e.parent_key = Some(ProcessKey::Sequence(1));
            }
            e
        })
        .collect();
    let mut engine = Engine::default();
    let mut alerts = Vec::new();
    let before = LIVE.load(Ordering::Relaxed);
    for e in &events {
        engine.process(e, &mut alerts);
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(engine.table().len(), n as usize);
    black_box(&engine);
    (after - before) as f64 / n as f64
}

const IMAGE: &[&str] = &[
    r"C:\Windows\System32\svchost.exe",
    r"C:\Windows\System32\conhost.exe",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Windows\System32\RuntimeBroker.exe",
];

fn engine_throughput(c: &mut Criterion) {
    for n in [10_000u32, 100_000] {
        eprintln!(
            "table memory: {:.0} B/live process at {n} processes (sequence keys), {:.0} B without keys",
            bytes_per_process(n, true),
            bytes_per_process(n, false)
        );
    }
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    for (name, keys) in [("etw_sequence_keys", true), ("pid_and_time_only", false)] {
        let events = generate(Profile {
            sequence_keys: keys,
            ..Profile::default()
        });
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || (Engine::default(), Vec::with_capacity(1 << 16)),
                |(engine, alerts)| {
                    for e in &events {
                        engine.process(e, alerts);
                        alerts.clear();
                    }
                    black_box(engine.stats())
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, engine_throughput);
criterion_main!(benches);

//! Churn: a million process lifetimes through the engine. The table must
//! stay bounded by live processes + the tombstone bound, and the process's
//! peak memory must not grow with the stream (figures: docs/RELIABILITY.md).

use wsmwatch::engine::{Engine, EngineConfig};
use wsmwatch::table::TableConfig;
use wsmwatch::testing::synthetic::{Profile, Stream};

/// Peak resident set (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_million_lifetimes_stay_bounded() {
    // Peak RSS is the whole process's: measure it without the other tests.
    if peak_rss_kib().is_some()
        && !crate::util::alone_in_process("churn::a_million_lifetimes_stay_bounded")
    {
        return;
    }
    let lifetimes: usize = std::env::var("WSMWATCH_CHURN_LIFETIMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let live = 2_000;
    let table = TableConfig {
        max_tombstones: 8_192,
        ..TableConfig::default()
    };
    let mut engine = Engine::new(EngineConfig { table });
    let mut alerts = Vec::new();
    let mut max_entries = 0;
    let mut rss_at_tenth = None;
    let events = 2 * lifetimes + 3;
    for (i, ev) in Stream::new(Profile {
        events,
        live,
        session_every: 5_000,
        ..Profile::default()
    })
    .enumerate()
    {
        engine.process(&ev, &mut alerts);
        alerts.clear();
        if i % 1024 == 0 {
            max_entries = max_entries.max(engine.table().len());
        }
        if i == events / 10 {
            rss_at_tenth = peak_rss_kib();
        }
    }
    let s = engine.stats();
    assert!(s.starts as usize >= lifetimes, "{} starts: {s:?}", s.starts);
    // Live processes hover around `live` (the generator grows past it at
    // random, by a few percent); the rest is bounded tombstones.
    assert!(
        max_entries <= live * 2 + table.max_tombstones,
        "table peaked at {max_entries} entries: {s:?}"
    );
    assert_eq!(s.unresolved_parents, 0);
    let end = peak_rss_kib();
    println!(
        "churn: {} lifetimes, {} events, table peak {max_entries} entries, final {} ({} tombstones), \
         evicted {}, peak RSS at 10% {:?} KiB, at end {:?} KiB",
        s.starts, s.events, s.table.entries, s.table.tombstones, s.table.evicted, rss_at_tenth, end
    );
    if let (Some(a), Some(b)) = (rss_at_tenth, end) {
        // Memory must not grow with the stream: the last 90% may add at most
        // a few MiB of allocator slack to the peak seen after the first 10%.
        assert!(b <= a + 8 * 1024, "peak RSS grew from {a} KiB to {b} KiB");
    }
}

//! The native JSON-lines reader (`replay` of a `--record` file), and the
//! engine behind it: whatever the file holds, the reader reports bad lines
//! and carries on, every event it yields writes back out unchanged, and the
//! detection engine takes any sequence of such events without panicking.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wsmwatch::source::native::read_events;
use wsmwatch::source::{Backpressure, Emitter, SourceCounters, StopToken};
use wsmwatch::{Engine, ProcessEvent};

fuzz_target!(|data: &[u8]| {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (etx, erx) = crossbeam_channel::unbounded();
    let counters = Arc::new(SourceCounters::default());
    let mut em = Emitter::new(tx, Backpressure::Block, counters.clone(), etx);
    read_events(data, "fuzz.jsonl", &mut em, &StopToken::new()).expect("reader never fails");
    drop(em);
    for e in erx.try_iter() {
        let _ = e.to_string();
    }
    let events: Vec<ProcessEvent> = rx.try_iter().collect();
    assert_eq!(counters.snapshot().sent, events.len() as u64);
    for ev in &events {
        let line = serde_json::to_string(ev).expect("event serialises");
        let back: ProcessEvent = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("re-recorded event does not replay: {e}: {line}"));
        assert_eq!(&back, ev, "record/replay changed the event");
    }
    let mut engine = Engine::default();
    for alert in engine.run(&events) {
        serde_json::to_string(&alert).expect("alert serialises");
        let _ = alert.to_text();
    }
    let _ = engine.stats();
});

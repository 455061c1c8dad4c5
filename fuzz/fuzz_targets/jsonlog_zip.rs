//! Zips of event-log exports (JSON lines or EVTX members): a hostile
//! archive, zip bombs included, is refused or read within the expansion
//! limits, never a panic or an allocation past them.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use wsmwatch::replay::zip::{decode_zip, ZipLimits};
use wsmwatch::replay::winlog::Item;

fuzz_target!(|data: &[u8]| {
    let mut sink = |it: Item| {
        if let Item::Event(m) = it {
            serde_json::to_string(&m.event).expect("event serialises");
        }
    };
    let _ = decode_zip(Cursor::new(data), &ZipLimits::default(), &mut sink, &|_| {});
});

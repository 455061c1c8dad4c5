//! Whole EVTX files: header, chunks, BinXML (the third-party parser) and
//! our mapping. A hostile file yields events and named bad chunks/records;
//! a panic inside the parser is contained per chunk, so none may escape.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use wsmwatch::replay::evtx::decode;
use wsmwatch::replay::winlog::Item;

fuzz_target!(|data: &[u8]| {
    let mut sink = |it: Item| {
        if let Item::Event(m) = it {
            serde_json::to_string(&m.event).expect("event serialises");
        }
    };
    let _ = decode(Cursor::new(data), &mut sink, &|_| {});
});

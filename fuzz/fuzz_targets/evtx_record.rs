//! EVTX record → event mapping: the JSON the EVTX parser renders for one
//! record (`{"Event": {"System": …, "EventData": …}}`) goes through the
//! Sysmon 1/5 and Security 4688/4689 mapping. Any input maps, is skipped,
//! or is an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmwatch::replay::evtx::map_json;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(m)) = map_json(data) {
        serde_json::to_string(&m.event).expect("event serialises");
    }
});

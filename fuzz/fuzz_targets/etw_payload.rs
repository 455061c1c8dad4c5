//! Kernel-Process ETW payloads: every event id and version.
//!
//! Byte 0 picks the event id (1 start, 2 stop, 15 rundown, anything else is
//! an unhandled id), byte 1 is the version (so versions above the known
//! layouts are reached too), bytes 2..4 the header flags; the rest is
//! UserData. The decoder must return `Ok`/`Err`, never panic, and what it
//! decodes must survive the `--record` → `replay` round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmwatch::live::etw::{
    decode_event, decode_payload, EventHeaderInfo, KERNEL_PROCESS_PROVIDER,
};
use wsmwatch::{ProcessEvent, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_first_chunk::<4>() else {
        return;
    };
    let event_id = match head[0] % 4 {
        0 => 1,
        1 => 2,
        2 => 15,
        _ => u16::from(head[0]),
    };
    let version = head[1];
    let header = EventHeaderInfo {
        provider: KERNEL_PROCESS_PROVIDER,
        event_id,
        version,
        header_pid: 4242,
        timestamp: Timestamp(132_404_548_233_600_000),
        flags: u16::from_le_bytes([head[2], head[3]]),
    };
    let _ = header.pointer_size();
    if let Ok(Some(rec)) = decode_payload(event_id, version, payload) {
        // The full-fidelity record is what `--debug` dumps: it must render.
        serde_json::to_string(&rec).expect("record serialises");
    }
    match decode_event(&header, payload) {
        Ok(Some(ev)) => {
            let line = serde_json::to_string(&ev).expect("event serialises");
            let back: ProcessEvent = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("recorded event does not replay: {e}: {line}"));
            assert_eq!(back, ev, "record/replay changed the event");
        }
        Ok(None) => assert!(
            !matches!(event_id, 1 | 2 | 15),
            "a process event id decoded to nothing"
        ),
        Err(e) => {
            // The error is printed to the user: it must render too.
            let _ = e.to_string();
        }
    }
});

//! Kernel-Network and PowerShell ETW payloads (session attribution).
//!
//! Byte 0 picks the provider and event id (TCP connect/accept v4/v6,
//! PowerShell 4103/4104, or another id of either provider), bytes 1..3 the
//! header flags (the pointer size of `connid`); the rest is UserData. The
//! decoder must return `Ok`/`Err`, never panic, and a decoded activity must
//! survive the `--record` → `replay` round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmwatch::live::etw::providers::{KERNEL_NETWORK_PROVIDER, POWERSHELL_PROVIDER};
use wsmwatch::live::etw::{decode_event, EventHeaderInfo};
use wsmwatch::{ProcessEvent, Timestamp};

const IDS: [u16; 6] = [12, 15, 28, 31, 4103, 4104];

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_first_chunk::<3>() else {
        return;
    };
    let pick = usize::from(head[0]);
    let event_id = IDS.get(pick % 8).copied().unwrap_or(u16::from(head[0]));
    let provider = if matches!(event_id, 4103 | 4104) || pick % 16 >= 8 {
        POWERSHELL_PROVIDER
    } else {
        KERNEL_NETWORK_PROVIDER
    };
    let header = EventHeaderInfo {
        provider,
        event_id,
        version: 0,
        header_pid: 4242,
        timestamp: Timestamp(133_500_000_000_000_000),
        flags: u16::from_le_bytes([head[1], head[2]]),
    };
    match decode_event(&header, payload) {
        Ok(Some(ev)) => {
            let line = serde_json::to_string(&ev).expect("event serialises");
            let back: ProcessEvent = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("recorded activity does not replay: {e}: {line}"));
            assert_eq!(back, ev, "record/replay changed the activity");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

//! The EVTX template-value reader (`src/source/evtx_template.rs`), which
//! walks BinXML template definitions and instance values in raw chunk bytes
//! by hand. Bytes 0..4 give the definition offset, 4..6 the value offset;
//! the rest is the chunk. Any bytes give `None` or fields, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmwatch::replay::evtx_template::fuzz_walkers;

fuzz_target!(|data: &[u8]| {
    let Some((head, chunk)) = data.split_first_chunk::<6>() else {
        return;
    };
    let def = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let value_at = usize::from(u16::from_le_bytes([head[4], head[5]]));
    // Offsets past the chunk are the common mutation; fold most of them in.
    let len = chunk.len().max(1);
    fuzz_walkers(chunk, def % (len as u32 + 64), value_at % (len + 16));
});

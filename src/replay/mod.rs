//! Opens replay inputs.
//!
//! Every input — wsmwatch's own recordings, EVTX, event-log JSON exports,
//! zips of them, folders of any of these — goes to one [`EvidenceSource`],
//! which sniffs each file by content, decodes them in parallel and merges
//! them into one time-ordered stream: one source, so the order never
//! depends on thread timing or on the order of the arguments. Recordings,
//! `-` (stdin) included, are streamed as they are read.

mod coalesce;
decoder_mod!(dialect);
pub mod evidence;
decoder_mod!(
    #[cfg(feature = "evtx")]
    evtx
);
decoder_mod!(
    #[cfg(feature = "evtx")]
    evtx_template
);
mod counters;
mod format;
decoder_mod!(
    #[cfg(feature = "zip")]
    gzip
);
decoder_mod!(json);
decoder_mod!(jsonlog);
decoder_mod!(jsonscan);
mod order;
mod recordings;
mod sniff;
mod spill;
mod stdin;
decoder_mod!(
    #[cfg(feature = "zip")]
    tar
);
decoder_mod!(text);
mod walk;
decoder_mod!(winlog);
decoder_mod!(
    #[cfg(feature = "zip")]
    zip
);

#[cfg(feature = "fuzzing")]
pub use self::format::decode_bytes;
pub use self::format::{split_member_chain, ZipLimits};

use std::path::PathBuf;
use std::sync::Arc;

use self::evidence::{EvidenceSource, ReplayCounters, ReplayOptions};
use crate::source::Source;

/// What [`open`] made of the replay's arguments.
pub struct Opened {
    /// The sources to run: one.
    pub sources: Vec<Box<dyn Source>>,
    /// The replay's counters and notes, for a progress display and the
    /// final `replay read …` figures (always set).
    pub counters: Option<Arc<ReplayCounters>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.sources.iter().map(|s| s.name()).collect();
        f.debug_struct("Opened")
            .field("sources", &names)
            .finish_non_exhaustive()
    }
}

/// The source for the given paths: all of them in one ordered source.
pub fn open(paths: &[PathBuf], opts: ReplayOptions) -> Opened {
    let src = EvidenceSource::new(paths.to_vec(), opts);
    let counters = Some(src.counters());
    Opened {
        sources: vec![Box::new(src)],
        counters,
    }
}

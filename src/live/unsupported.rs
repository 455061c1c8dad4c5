//! The fallback for platforms without a live source: says so clearly.

use super::LiveConfig;
use crate::source::{Emitter, Source, SourceError, StopToken};

/// Live tracing on a platform that has none.
#[derive(Debug)]
pub struct LiveSource;

impl LiveSource {
    /// Always fails: there is no live tracer for this platform.
    pub fn new(_config: LiveConfig) -> Result<Self, SourceError> {
        Err(SourceError::Unsupported {
            platform: std::env::consts::OS,
        })
    }
}

impl Source for LiveSource {
    fn name(&self) -> String {
        "live:unsupported".into()
    }

    fn run(&mut self, _out: &mut Emitter, _stop: &StopToken) -> Result<(), SourceError> {
        Err(SourceError::Unsupported {
            platform: std::env::consts::OS,
        })
    }
}

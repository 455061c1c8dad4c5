//! No Event Log off Windows: opening it, or registering the source, fails
//! with [`SinkError::Unsupported`], so `--eventlog` is a clear error there.

use std::io;
use std::path::{Path, PathBuf};

use super::{EventWriter, Record};
use crate::sink::SinkError;

const WHAT: &str = "the Windows Event Log (--eventlog)";

/// The Windows Event Log; never opens here.
#[derive(Debug)]
pub struct EventLog(());

impl EventLog {
    /// Fails: there is no Event Log on this platform.
    pub fn open() -> Result<Self, SinkError> {
        Err(SinkError::Unsupported { what: WHAT })
    }
}

impl EventWriter for EventLog {
    fn report(&mut self, _: &Record) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, WHAT))
    }
}

/// Fails: there is no Event Log on this platform.
pub fn register_source(_message_file: &Path) -> Result<(), SinkError> {
    Err(SinkError::Unsupported { what: WHAT })
}

/// Fails: there is no Event Log on this platform.
pub fn unregister_source() -> Result<bool, SinkError> {
    Err(SinkError::Unsupported { what: WHAT })
}

/// Fails: there is no Event Log on this platform.
pub fn registered_message_file() -> Result<Option<PathBuf>, SinkError> {
    Err(SinkError::Unsupported { what: WHAT })
}

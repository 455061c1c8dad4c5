//! Opens replay inputs: picks the reader for each file.
//!
//! Today: the native JSON-lines format. Readers for event-log evidence
//! (EVTX, JSON exports, zips of them) plug in here by format detection.

use std::path::PathBuf;

use super::native::NativeFile;
use super::Source;

/// One source per input path, in the order given.
pub fn open(paths: &[PathBuf]) -> Vec<Box<dyn Source>> {
    paths
        .iter()
        .map(|p| Box::new(NativeFile::new(p.clone())) as Box<dyn Source>)
        .collect()
}

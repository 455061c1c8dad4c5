//! The chunked slab that holds every process slot.

use super::Process;

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Slots in fixed-size chunks: growth never copies or doubles.
#[derive(Debug, Default)]
pub(super) struct Slab {
    chunks: Vec<Vec<Process>>,
    pub(super) len: u32,
}

impl Slab {
    pub(super) fn get(&self, i: u32) -> Option<&Process> {
        self.chunks
            .get((i >> CHUNK_BITS) as usize)?
            .get(i as usize & (CHUNK - 1))
    }
    pub(super) fn at(&self, i: u32) -> &Process {
        &self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }
    pub(super) fn at_mut(&mut self, i: u32) -> &mut Process {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }
    pub(super) fn push(&mut self, p: Process) -> u32 {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(p);
        }
        self.len += 1;
        self.len - 1
    }
}

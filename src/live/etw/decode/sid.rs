//! `win:SID`: the mandatory label in ProcessStart v3+ and Rundown v1+.

use std::fmt;

use serde::{Serialize, Serializer};

/// A security identifier, stored inline (no allocation on the hot path).
///
/// Displays in the usual string form, e.g. `S-1-16-12288` for the High
/// mandatory label; serialises as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid {
    pub(super) revision: u8,
    pub(super) authority: [u8; 6],
    pub(super) count: u8,
    pub(super) sub_authorities: [u32; 15],
}

impl Sid {
    /// Most sub-authorities a SID may have (`SID_MAX_SUB_AUTHORITIES`).
    pub const MAX_SUB_AUTHORITIES: usize = 15;

    /// Builds a SID; `None` when there are more than 15 sub-authorities.
    pub fn new(revision: u8, authority: [u8; 6], sub_authorities: &[u32]) -> Option<Sid> {
        let mut subs = [0u32; 15];
        if sub_authorities.len() > Self::MAX_SUB_AUTHORITIES {
            return None;
        }
        for (slot, v) in subs.iter_mut().zip(sub_authorities) {
            *slot = *v;
        }
        Some(Sid {
            revision,
            authority,
            count: u8::try_from(sub_authorities.len()).ok()?,
            sub_authorities: subs,
        })
    }

    /// The revision byte (always 1 for a decoded SID).
    pub fn revision(&self) -> u8 {
        self.revision
    }

    /// The 48-bit identifier authority (16 = mandatory label).
    pub fn authority(&self) -> u64 {
        let mut b = [0u8; 8];
        for (dst, src) in b.iter_mut().skip(2).zip(self.authority) {
            *dst = src;
        }
        u64::from_be_bytes(b)
    }

    /// The sub-authorities, in order.
    pub fn sub_authorities(&self) -> &[u32] {
        self.sub_authorities
            .get(..usize::from(self.count))
            .unwrap_or(&[])
    }

    /// The integrity level RID when this is a mandatory label
    /// (`S-1-16-X`): 0x1000 Low, 0x2000 Medium, 0x3000 High, 0x4000 System.
    pub fn integrity_level(&self) -> Option<u32> {
        match self.sub_authorities() {
            [rid] if self.authority() == 16 => Some(*rid),
            _ => None,
        }
    }
}

impl fmt::Display for Sid {
    /// `S-R-A-S1-…`, with the authority in hex when it exceeds 32 bits, as
    /// `ConvertSidToStringSidW` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.authority();
        write!(f, "S-{}-", self.revision)?;
        if a >> 32 == 0 {
            write!(f, "{a}")?;
        } else {
            write!(f, "0x{a:012X}")?;
        }
        for s in self.sub_authorities() {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({self})")
    }
}

impl Serialize for Sid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

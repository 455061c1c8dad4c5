//! The bounds-checked cursor every decoder reads through.

use super::{DecodeError, Sid};
use crate::event::Timestamp;

/// A bounds-checked cursor over UserData. Every accessor either advances
/// past a complete field or returns an error naming it; none can panic.
pub(super) struct Reader<'a> {
    provider: &'static str,
    buf: &'a [u8],
    pos: usize,
    event_id: u16,
    pub(super) version: u8,
}

impl<'a> Reader<'a> {
    pub(super) fn new(provider: &'static str, buf: &'a [u8], event_id: u16, version: u8) -> Self {
        Reader {
            provider,
            buf,
            pos: 0,
            event_id,
            version,
        }
    }

    pub(super) fn truncated(&self, field: &'static str, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            provider: self.provider,
            event_id: self.event_id,
            version: self.version,
            field,
            offset: self.pos,
            needed,
            len: self.buf.len(),
        }
    }

    /// The unread rest of the payload.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        match self.rest().first_chunk::<N>() {
            Some(a) => {
                self.pos = self.pos.saturating_add(N);
                Ok(*a)
            }
            None => Err(self.truncated(field, N)),
        }
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.array::<1>(field).map(|[b]| b)
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_le_bytes)
    }

    pub(super) fn filetime(&mut self, field: &'static str) -> Result<Timestamp, DecodeError> {
        self.u64(field).map(Timestamp)
    }

    pub(super) fn sid(&mut self, field: &'static str) -> Result<Sid, DecodeError> {
        let start = self.pos;
        let revision = self.u8(field)?;
        let count = self.u8(field)?;
        if revision != 1 || usize::from(count) > Sid::MAX_SUB_AUTHORITIES {
            return Err(DecodeError::BadSid {
                provider: self.provider,
                event_id: self.event_id,
                version: self.version,
                field,
                offset: start,
                len: self.buf.len(),
                revision,
                sub_authority_count: count,
            });
        }
        let authority = self.array::<6>(field)?;
        let mut sub_authorities = [0u32; 15];
        for slot in sub_authorities.iter_mut().take(usize::from(count)) {
            *slot = self.u32(field)?;
        }
        Ok(Sid {
            revision,
            authority,
            count,
            sub_authorities,
        })
    }

    pub(super) fn unterminated(&self, field: &'static str) -> DecodeError {
        DecodeError::Unterminated {
            provider: self.provider,
            event_id: self.event_id,
            version: self.version,
            field,
            offset: self.pos,
            len: self.buf.len(),
        }
    }

    /// NUL-terminated UTF-16LE. The terminator must be an aligned `00 00`
    /// unit; unpaired surrogates become U+FFFD rather than failing, so a
    /// mangled name still yields an event.
    pub(super) fn utf16z(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let rest = self.rest();
        let Some(units) = rest.chunks_exact(2).position(|c| c == [0, 0]) else {
            return Err(self.unterminated(field));
        };
        let body = rest.chunks_exact(2).take(units);
        let mut s = String::with_capacity(units);
        let code_units = body.map(|c| match *c {
            [lo, hi] => u16::from_le_bytes([lo, hi]),
            _ => 0xFFFD,
        });
        s.extend(char::decode_utf16(code_units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)));
        // units + 1 <= rest.len() / 2, so this cannot overflow.
        self.pos = self
            .pos
            .saturating_add(units.saturating_add(1).saturating_mul(2));
        Ok(s)
    }

    /// NUL-terminated ANSI. Decoded as Latin-1 (each byte one char): never
    /// fails and loses nothing, and image names are ASCII in practice.
    pub(super) fn ansiz(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let rest = self.rest();
        let Some(n) = rest.iter().position(|&b| b == 0) else {
            return Err(self.unterminated(field));
        };
        let s: String = rest.iter().take(n).map(|&b| char::from(b)).collect();
        self.pos = self.pos.saturating_add(n.saturating_add(1));
        Ok(s)
    }
}

//! Reading a record's fields straight from its BinXML template values, by
//! name, without rendering it to JSON and parsing that back.
//!
//! An EVTX record is a template instance: a template *definition* (XML with
//! numbered substitution slots, stored once per chunk) plus the record's
//! *values*. Rendering a record means walking the definition and writing
//! every value as text; most of that text is then thrown away. Here the
//! definition is walked once per chunk and template to learn which slot holds
//! which field (`<Data Name="Image">%4</Data>` → slot 4 is `Image`; the
//! literal `<Computer>` text), and each record's values are read directly.
//!
//! Anything unexpected (a token this walker does not know, a value type it
//! does not read, an offset outside the chunk) returns `None`, and the
//! caller renders the record instead: this is a shortcut, never the only
//! path. A test checks it gives exactly what rendering gives on real files.

use std::borrow::Cow;

use super::winlog::{Fields, Flex};
use crate::event::Guid;

/// What a template definition says about its slots.
#[derive(Debug, Default, Clone)]
pub(crate) struct Shape {
    /// Slot index → field name (`Data/@Name`, or the element's own name),
    /// for the fields the mapping reads only: the name check is made once
    /// per template, not per record.
    pub slots: Vec<(u16, String)>,
    /// Literal text of elements (`Computer` → `DC1.insecurebank.local`).
    pub texts: Vec<(String, String)>,
}

impl Shape {
    /// The literal text of element `name`.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.texts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

struct Cur<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.d.get(self.p)?;
        self.p += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.d.get(self.p..self.p + 2)?;
        self.p += 2;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.d.get(self.p..self.p + 4)?;
        self.p += 4;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.d.get(self.p..self.p.checked_add(n)?)?;
        self.p += n;
        Some(b)
    }
}

fn utf16(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() / 2);
    s.extend(
        char::decode_utf16(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)),
    );
    while s.ends_with('\0') {
        s.pop();
    }
    s
}

/// A name in the chunk's string table: next u32, hash u16, count u16,
/// UTF-16, NUL. Returns the name and its size in bytes.
fn name_at(chunk: &[u8], off: u32) -> Option<(String, usize)> {
    let mut c = Cur {
        d: chunk,
        p: (off as usize).checked_add(6)?,
    };
    let n = c.u16()? as usize;
    Some((utf16(c.bytes(n * 2)?), 6 + 2 + n * 2 + 2))
}

/// A name reference; skips the name when it is stored inline right here.
fn name_ref(c: &mut Cur<'_>, chunk: &[u8]) -> Option<String> {
    let off = c.u32()?;
    let (name, size) = name_at(chunk, off)?;
    if off as usize == c.p {
        c.p += size;
    }
    Some(name)
}

/// Walks the template definition at `def` (chunk offset of its header).
pub(crate) fn shape(chunk: &[u8], def: u32) -> Option<Shape> {
    let mut c = Cur {
        d: chunk,
        p: def as usize,
    };
    let _next = c.u32()?;
    c.bytes(16)?;
    let size = c.u32()? as usize;
    let end = c.p.checked_add(size)?;
    if end > chunk.len() {
        return None;
    }
    let mut out = Shape::default();
    // Open elements; each with its `Name` attribute value, if any.
    let mut stack: Vec<(String, Option<String>)> = Vec::new();
    let mut in_start = false;
    let mut attr: Option<String> = None;
    while c.p < end {
        let t = c.u8()?;
        match t {
            0x00 => break,
            0x0f => {
                c.bytes(3)?;
            }
            0x01 | 0x41 => {
                c.u16()?; // dependency id (definitions have it)
                c.u32()?; // data size
                let name = name_ref(&mut c, chunk)?;
                if t == 0x41 {
                    c.u32()?;
                }
                stack.push((name, None));
                in_start = true;
                attr = None;
            }
            0x02 => {
                in_start = false;
                attr = None;
            }
            0x03 => {
                stack.pop();
                in_start = false;
                attr = None;
            }
            0x04 => {
                stack.pop();
            }
            0x06 | 0x46 => {
                attr = Some(name_ref(&mut c, chunk)?);
            }
            0x05 | 0x45 => {
                // Literal text: only UTF-16 strings appear in these templates.
                if c.u8()? != 0x01 {
                    return None;
                }
                let n = c.u16()? as usize;
                let text = utf16(c.bytes(n * 2)?);
                let top = stack.last_mut()?;
                if in_start {
                    if attr.as_deref() == Some("Name") {
                        top.1 = Some(text);
                    }
                } else {
                    out.texts.push((top.0.clone(), text));
                }
            }
            0x0d | 0x0e => {
                let idx = c.u16()?;
                c.u8()?;
                let top = stack.last()?;
                if !in_start {
                    let name = match (&top.0[..], &top.1) {
                        ("Data", Some(n)) => n.clone(),
                        (e, _) => e.to_owned(),
                    };
                    if Fields::reads(&name) {
                        out.slots.push((idx, name));
                    }
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The walkers over raw chunk bytes, without the EVTX parser in front: the
/// `evtx_template` fuzz target's entry. `def` is a template definition's
/// chunk offset, `value_at` the chunk offset of a BinXml instance value.
#[doc(hidden)]
pub fn fuzz_walkers(chunk: &[u8], def: u32, value_at: usize) {
    let outer = shape(chunk, def);
    let Some(inst) = chunk.get(value_at..).and_then(|b| instance(b, value_at)) else {
        return;
    };
    for &(ty, v) in &inst.values {
        let _ = flex(ty, v);
    }
    if let Some(s) = &outer {
        let _ = s.text("Computer");
        let _ = fields(s, &inst);
    }
    if let Some(s) = shape(chunk, inst.def) {
        let _ = fields(&s, &inst);
    }
}

/// A nested template instance (the `EventData` value, type BinXml): its
/// definition offset and its values' bytes, as (type, bytes) pairs.
pub(crate) struct Instance<'a> {
    /// Chunk offset of the definition.
    pub def: u32,
    /// Values in slot order.
    pub values: Vec<(u8, &'a [u8])>,
}

/// Parses a BinXml value that is a template instance. `abs` is the chunk
/// offset of `b[0]` (an inline definition is recognised by its offset).
pub(crate) fn instance(b: &[u8], abs: usize) -> Option<Instance<'_>> {
    let mut c = Cur { d: b, p: 0 };
    if c.u8()? != 0x0f {
        return None;
    }
    c.bytes(3)?;
    if c.u8()? != 0x0c {
        return None;
    }
    c.u8()?;
    c.u32()?; // template id
    let def = c.u32()?;
    if def as usize == abs + c.p {
        c.u32()?;
        c.bytes(16)?;
        let size = c.u32()? as usize;
        c.bytes(size)?;
    }
    let n = c.u32()? as usize;
    if n > 4096 {
        return None;
    }
    let mut desc = Vec::with_capacity(n);
    for _ in 0..n {
        let size = c.u16()?;
        let ty = c.u8()?;
        c.u8()?;
        desc.push((ty, size as usize));
    }
    let mut values = Vec::with_capacity(n);
    for (ty, size) in desc {
        values.push((ty, c.bytes(size)?));
    }
    Some(Instance { def, values })
}

/// One value as a [`Flex`], for the types these logs use. `None` for a type
/// this reader does not handle (the caller then renders the record).
pub(crate) fn flex(ty: u8, b: &[u8]) -> Option<Flex<'static>> {
    let le = |n: usize| -> Option<u64> {
        let s = b.get(..n)?;
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    };
    Some(match ty {
        0x00 => Flex::Other,
        0x01 => Flex::Str(Cow::Owned(utf16(b))),
        0x04 => Flex::UInt(le(1)?),
        0x06 => Flex::UInt(le(2)?),
        0x08 | 0x14 => Flex::UInt(le(4)?),
        0x0a | 0x15 => Flex::UInt(le(8)?),
        0x0f => {
            // Data1-3 little-endian, Data4 as stored: the order the text
            // form prints, which is what `Guid` holds.
            let g = b.get(..16)?;
            let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]) as u64;
            let d2 = u16::from_le_bytes([g[4], g[5]]) as u64;
            let d3 = u16::from_le_bytes([g[6], g[7]]) as u64;
            let mut d4 = [0u8; 8];
            d4.copy_from_slice(&g[8..16]);
            Flex::Guid(Guid((d1 << 32) | (d2 << 16) | d3, u64::from_be_bytes(d4)))
        }
        // A 32-bit boolean (Sysmon 3 `Initiated`).
        0x0d => Flex::Bool(le(4)? != 0),
        // FILETIME, SYSTEMTIME, SID, binary, floats, arrays: not fields
        // this reader maps; keep them out of the way.
        0x11 | 0x12 | 0x13 | 0x0e | 0x0b | 0x0c => Flex::Other,
        _ => return None,
    })
}

/// Fills `f` from an instance and its shape. `None` if a value could not
/// be read.
pub(crate) fn fields(shape: &Shape, inst: &Instance<'_>) -> Option<Fields<'static>> {
    let mut f = Fields::default();
    // Only the fields the mapping reads are in the shape (not Hashes & co).
    for (idx, name) in &shape.slots {
        let Some(&(ty, b)) = inst.values.get(*idx as usize) else {
            continue;
        };
        f.set(name, flex(ty, b)?);
    }
    Some(f)
}

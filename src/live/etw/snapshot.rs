//! The process snapshot that seeds the table with processes already running
//! when tracing starts (the WinRM `svchost.exe` started at boot), as pure
//! logic: parsing the `NtQuerySystemInformation(SystemProcessInformation)`
//! buffer and turning entries into [`ProcessEvent`]s.
//!
//! The buffer is parsed by offsets with bounds checks (no `unsafe`, no
//! struct casts), so malformed or truncated input is an error, never a
//! crash, and the parser is tested on Linux. The table merges a snapshot
//! entry and a rundown event of the same process on (pid, create time), so
//! a process seen both ways is one entry.

use crate::event::{Origin, ProcessEvent, Timestamp};

/// One running process as the snapshot reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotProcess {
    /// `UniqueProcessId`.
    pub pid: u32,
    /// `InheritedFromUniqueProcessId`: the parent at creation (may have
    /// exited since, and its pid may be reused).
    pub ppid: u32,
    /// `CreateTime` (FILETIME).
    pub create_time: Timestamp,
    /// `SessionId`.
    pub session_id: u32,
    /// `ImageName`: the bare file name (`svchost.exe`); the Windows side
    /// replaces it with the full NT path where the process can be opened.
    pub image: String,
}

/// Why a snapshot buffer could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// An entry runs past the end of the buffer.
    #[error(
        "SystemProcessInformation entry at offset {offset} needs {need} bytes, buffer has {len}"
    )]
    Truncated {
        /// Entry offset.
        offset: usize,
        /// Bytes the entry needs.
        need: usize,
        /// Buffer length.
        len: usize,
    },
    /// `NextEntryOffset` does not move forward by at least one entry.
    #[error("SystemProcessInformation entry at offset {offset}: bad NextEntryOffset {next}")]
    BadLink {
        /// Entry offset.
        offset: usize,
        /// The link value.
        next: u32,
    },
}

/// Offsets in the x64 `SYSTEM_PROCESS_INFORMATION` (phnt; the `windows`
/// crate's struct has the same layout with `Reserved` names).
mod off {
    pub(super) const NEXT: usize = 0;
    pub(super) const CREATE_TIME: usize = 32;
    pub(super) const NAME_LENGTH: usize = 56;
    pub(super) const NAME_BUFFER: usize = 64;
    pub(super) const PID: usize = 80;
    pub(super) const PPID: usize = 88;
    pub(super) const SESSION_ID: usize = 100;
    /// Bytes read from each entry.
    pub(super) const MIN_ENTRY: usize = 104;
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Parses a `SystemProcessInformation` buffer (x64 layout).
///
/// `base` is the address the OS wrote the buffer at: `ImageName.Buffer`
/// points into the buffer itself, so the name's offset is `ptr - base`. A
/// name pointer outside the buffer gives an empty name (not an error).
pub fn parse_process_information(
    buf: &[u8],
    base: usize,
) -> Result<Vec<SnapshotProcess>, SnapshotError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    if buf.is_empty() {
        return Ok(out);
    }
    loop {
        let end = at.saturating_add(off::MIN_ENTRY);
        if end > buf.len() {
            return Err(SnapshotError::Truncated {
                offset: at,
                need: off::MIN_ENTRY,
                len: buf.len(),
            });
        }
        let e = &buf[at..end];
        let name_len = usize::from(u16_at(e, off::NAME_LENGTH));
        let name_ptr = u64_at(e, off::NAME_BUFFER) as usize;
        let image = name_ptr
            .checked_sub(base)
            .filter(|_| name_ptr != 0 && name_len % 2 == 0)
            .and_then(|o| buf.get(o..o.checked_add(name_len)?))
            .map(|raw| {
                let units: Vec<u16> = raw
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            })
            .unwrap_or_default();
        out.push(SnapshotProcess {
            pid: u64_at(e, off::PID) as u32,
            ppid: u64_at(e, off::PPID) as u32,
            create_time: Timestamp(u64_at(e, off::CREATE_TIME)),
            session_id: u32_at(e, off::SESSION_ID),
            image,
        });
        let next = u32_at(e, off::NEXT);
        if next == 0 {
            return Ok(out);
        }
        if (next as usize) < off::MIN_ENTRY {
            return Err(SnapshotError::BadLink { offset: at, next });
        }
        at += next as usize;
    }
}

/// Turns snapshot entries into seed events: `Start` with origin
/// [`Origin::Snapshot`], time = creation time. The idle process (pid 0) is
/// skipped.
pub fn to_events(procs: Vec<SnapshotProcess>, host: Option<&str>) -> Vec<ProcessEvent> {
    procs
        .into_iter()
        .filter(|p| p.pid != 0)
        .map(|p| {
            let mut ev = ProcessEvent::start(p.create_time, p.pid, p.ppid, p.image);
            ev.session_id = Some(p.session_id);
            ev.host = host.map(str::to_owned);
            ev.origin = Origin::Snapshot;
            ev
        })
        .collect()
}

/// Builds a buffer in the x64 layout, for tests here and on Windows.
#[doc(hidden)]
pub fn build_test_buffer(procs: &[SnapshotProcess], base: usize, entry_size: usize) -> Vec<u8> {
    let entry_size = entry_size.max(off::MIN_ENTRY);
    let names: Vec<Vec<u8>> = procs
        .iter()
        .map(|p| p.image.encode_utf16().flat_map(u16::to_le_bytes).collect())
        .collect();
    let names_at = entry_size * procs.len();
    let mut buf = vec![0u8; names_at + names.iter().map(Vec::len).sum::<usize>()];
    let mut name_off = names_at;
    for (i, (p, name)) in procs.iter().zip(&names).enumerate() {
        let e = i * entry_size;
        let next = if i + 1 == procs.len() {
            0
        } else {
            entry_size as u32
        };
        buf[e..e + 4].copy_from_slice(&next.to_le_bytes());
        buf[e + off::CREATE_TIME..e + off::CREATE_TIME + 8]
            .copy_from_slice(&p.create_time.0.to_le_bytes());
        buf[e + off::NAME_LENGTH..e + off::NAME_LENGTH + 2]
            .copy_from_slice(&(name.len() as u16).to_le_bytes());
        buf[e + off::NAME_LENGTH + 2..e + off::NAME_LENGTH + 4]
            .copy_from_slice(&(name.len() as u16 + 2).to_le_bytes());
        let ptr = if name.is_empty() {
            0
        } else {
            (base + name_off) as u64
        };
        buf[e + off::NAME_BUFFER..e + off::NAME_BUFFER + 8].copy_from_slice(&ptr.to_le_bytes());
        buf[e + off::PID..e + off::PID + 8].copy_from_slice(&u64::from(p.pid).to_le_bytes());
        buf[e + off::PPID..e + off::PPID + 8].copy_from_slice(&u64::from(p.ppid).to_le_bytes());
        buf[e + off::SESSION_ID..e + off::SESSION_ID + 4]
            .copy_from_slice(&p.session_id.to_le_bytes());
        buf[name_off..name_off + name.len()].copy_from_slice(name);
        name_off += name.len();
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn procs() -> Vec<SnapshotProcess> {
        vec![
            SnapshotProcess {
                pid: 0,
                ppid: 0,
                create_time: Timestamp(0),
                session_id: 0,
                image: String::new(),
            },
            SnapshotProcess {
                pid: 4,
                ppid: 0,
                create_time: Timestamp(133_000_000_000_000_000),
                session_id: 0,
                image: "System".into(),
            },
            SnapshotProcess {
                pid: 1234,
                ppid: 700,
                create_time: Timestamp(133_000_000_100_000_000),
                session_id: 0,
                image: "svchost.exe".into(),
            },
        ]
    }

    #[test]
    fn parses_entries_names_and_links() {
        let base = 0x1_0000_0000;
        for size in [104, 256, 333] {
            let buf = build_test_buffer(&procs(), base, size);
            assert_eq!(parse_process_information(&buf, base), Ok(procs()), "{size}");
        }
        assert_eq!(parse_process_information(&[], 0), Ok(vec![]));
    }

    #[test]
    fn truncation_and_bad_links_are_errors_not_panics() {
        let base = 4096;
        let buf = build_test_buffer(&procs(), base, 200);
        for cut in 0..buf.len() {
            let _ = parse_process_information(&buf[..cut], base);
        }
        assert!(matches!(
            parse_process_information(&buf[..50], base),
            Err(SnapshotError::Truncated { offset: 0, .. })
        ));
        assert!(matches!(
            parse_process_information(&buf[..250], base),
            Err(SnapshotError::Truncated { offset: 200, .. })
        ));
        let mut bad = buf.clone();
        bad[0..4].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(
            parse_process_information(&bad, base),
            Err(SnapshotError::BadLink { offset: 0, next: 8 })
        );
        // A name pointer outside the buffer gives an empty name.
        let got = parse_process_information(&buf, base + 1_000_000).unwrap();
        assert!(got.iter().all(|p| p.image.is_empty()));
    }

    #[test]
    fn seed_events_are_snapshot_starts_without_idle() {
        let evs = to_events(procs(), Some("h"));
        assert_eq!(evs.len(), 2);
        let svc = &evs[1];
        assert_eq!(svc.kind, EventKind::Start);
        assert_eq!(svc.origin, Origin::Snapshot);
        assert_eq!((svc.pid, svc.ppid), (Some(1234), Some(700)));
        assert_eq!(svc.create_time, Some(Timestamp(133_000_000_100_000_000)));
        assert_eq!(svc.time, Timestamp(133_000_000_100_000_000));
        assert_eq!(svc.host.as_deref(), Some("h"));
        assert_eq!(svc.image, "svchost.exe");
    }
}

//! The drive-letter table from `QueryDosDeviceW`, with which the live
//! source turns ETW's NT image paths into DOS paths. The mapping itself is pure
//! ([`crate::live::etw::dospath`]).

use windows::core::PCWSTR;
use windows::Win32::Storage::FileSystem::{GetLogicalDriveStringsW, QueryDosDeviceW};

use crate::live::etw::dospath::{drives_from_multi_sz, first_multi_sz, DeviceMap};

/// The current drive letters and their NT devices, plus `%SystemRoot%`.
/// Drives that cannot be queried are left out.
pub fn dos_device_map() -> DeviceMap {
    let mut drives = vec![0u16; 1024];
    // SAFETY: the buffer is writable for its whole length, which the
    // slice passes along with the pointer.
    let n = unsafe { GetLogicalDriveStringsW(Some(&mut drives)) } as usize;
    let drives = drives_from_multi_sz(&drives[..n.min(drives.len())]);
    let mut pairs = Vec::new();
    for d in drives {
        let name = super::etw::wide(&d);
        let mut target = vec![0u16; 4096];
        // SAFETY: `name` is NUL-terminated and outlives the call; `target`
        // is writable for its whole length, passed with the slice.
        let len =
            unsafe { QueryDosDeviceW(PCWSTR::from_raw(name.as_ptr()), Some(&mut target)) } as usize;
        if let Some(dev) = first_multi_sz(&target[..len.min(target.len())]) {
            pairs.push((d, dev));
        }
    }
    let map = DeviceMap::new(pairs);
    match std::env::var("SystemRoot") {
        Ok(root) => map.with_system_root(root),
        Err(_) => map,
    }
}

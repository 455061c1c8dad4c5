//! ProcessStop (id 2) v0–v2.

use serde::Serialize;

use super::{DecodeError, Reader};
use crate::event::Timestamp;

/// The v1+ resource counters of a ProcessStop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessStopCounters {
    /// CPUCycleCount.
    pub cpu_cycle_count: u64,
    /// ReadOperationCount.
    pub read_operation_count: u32,
    /// WriteOperationCount.
    pub write_operation_count: u32,
    /// ReadTransferKiloBytes.
    pub read_transfer_kilobytes: u32,
    /// WriteTransferKiloBytes.
    pub write_transfer_kilobytes: u32,
    /// HardFaultCount.
    pub hard_fault_count: u32,
}

/// Every field of a ProcessStop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessStopData {
    /// `EventDescriptor.Version` as received.
    pub version: u8,
    /// ProcessID.
    pub process_id: u32,
    /// ProcessSequenceNumber (v2+).
    pub process_sequence_number: Option<u64>,
    /// CreateTime.
    pub create_time: Timestamp,
    /// ExitTime.
    pub exit_time: Timestamp,
    /// ExitCode.
    pub exit_code: u32,
    /// TokenElevationType.
    pub token_elevation_type: u32,
    /// HandleCount.
    pub handle_count: u32,
    /// CommitCharge (bytes).
    pub commit_charge: u64,
    /// CommitPeak (bytes).
    pub commit_peak: u64,
    /// The v1+ counters.
    pub counters: Option<ProcessStopCounters>,
    /// ImageName: the short EPROCESS image name in ANSI (`Test.x64.exe`),
    /// not a path. Bytes map 1:1 to U+0000–U+00FF, so nothing is lost.
    pub image_name: String,
}

/// ProcessStop with the given (already capped) layout version 0–2.
pub(super) fn read_stop(r: &mut Reader<'_>, layout: u8) -> Result<ProcessStopData, DecodeError> {
    let version = r.version;
    let process_id = r.u32("ProcessID")?;
    let process_sequence_number = if layout >= 2 {
        Some(r.u64("ProcessSequenceNumber")?)
    } else {
        None
    };
    let create_time = r.filetime("CreateTime")?;
    let exit_time = r.filetime("ExitTime")?;
    let exit_code = r.u32("ExitCode")?;
    let token_elevation_type = r.u32("TokenElevationType")?;
    let handle_count = r.u32("HandleCount")?;
    let commit_charge = r.u64("CommitCharge")?;
    let commit_peak = r.u64("CommitPeak")?;
    let counters = if layout >= 1 {
        Some(ProcessStopCounters {
            cpu_cycle_count: r.u64("CPUCycleCount")?,
            read_operation_count: r.u32("ReadOperationCount")?,
            write_operation_count: r.u32("WriteOperationCount")?,
            read_transfer_kilobytes: r.u32("ReadTransferKiloBytes")?,
            write_transfer_kilobytes: r.u32("WriteTransferKiloBytes")?,
            hard_fault_count: r.u32("HardFaultCount")?,
        })
    } else {
        None
    };
    let image_name = r.ansiz("ImageName")?;
    Ok(ProcessStopData {
        version,
        process_id,
        process_sequence_number,
        create_time,
        exit_time,
        exit_code,
        token_elevation_type,
        handle_count,
        commit_charge,
        commit_peak,
        counters,
        image_name,
    })
}

//! ProcessStart (id 1) v0–v5 and ProcessRundown (id 15) v0–v3, which share
//! one layout family.

use serde::Serialize;

use super::{DecodeError, Reader, Sid};
use crate::event::Timestamp;

/// Every field of a ProcessStart or ProcessRundown, as the manifest names
/// them. Fields a version lacks are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessStartData {
    /// `EventDescriptor.Version` as received (may exceed the known layouts).
    pub version: u8,
    /// ProcessID.
    pub process_id: u32,
    /// ProcessSequenceNumber (Start v3+, Rundown v1+): unique per boot.
    pub process_sequence_number: Option<u64>,
    /// CreateTime.
    pub create_time: Timestamp,
    /// ParentProcessID (as reported: may be spoofed, see the header pid).
    pub parent_process_id: u32,
    /// ParentProcessSequenceNumber (Start v3+, Rundown v1+).
    pub parent_process_sequence_number: Option<u64>,
    /// SessionID.
    pub session_id: u32,
    /// Flags (Start v1+, every Rundown); bit 0x1 = PackageId.
    pub flags: Option<u32>,
    /// ProcessTokenElevationType (v3+): 1 default, 2 full, 3 limited.
    pub token_elevation_type: Option<u32>,
    /// ProcessTokenIsElevated (v3+), raw value (0 or 1).
    pub token_is_elevated: Option<u32>,
    /// MandatoryLabel (v3+), e.g. `S-1-16-12288`.
    pub mandatory_label: Option<Sid>,
    /// ImageName: an NT device path (`\Device\HarddiskVolume3\…`).
    pub image_name: String,
    /// ImageChecksum (Start v2+, every Rundown).
    pub image_checksum: Option<u32>,
    /// TimeDateStamp of the image's PE header (Start v2+, every Rundown).
    pub time_date_stamp: Option<u32>,
    /// PackageFullName (Start v2+, every Rundown); empty when not packaged,
    /// which allocates nothing.
    pub package_full_name: Option<String>,
    /// PackageRelativeAppId (Start v2+, every Rundown).
    pub package_relative_app_id: Option<String>,
    /// SecurityMitigations (Start v4+, Rundown v2+).
    pub security_mitigations: Option<u32>,
    /// PartitionID (Start v5+, Rundown v3+).
    pub partition_id: Option<u32>,
    /// ProcessMachine, an `IMAGE_FILE_MACHINE_*` value (Start v5+, Rundown v3+).
    pub process_machine: Option<u16>,
}

/// ProcessStart with the given (already capped) layout version 0–5.
pub(super) fn read_start(r: &mut Reader<'_>, layout: u8) -> Result<ProcessStartData, DecodeError> {
    let version = r.version;
    if layout >= 3 {
        let process_id = r.u32("ProcessID")?;
        let seq = r.u64("ProcessSequenceNumber")?;
        let create_time = r.filetime("CreateTime")?;
        let parent_process_id = r.u32("ParentProcessID")?;
        let parent_seq = r.u64("ParentProcessSequenceNumber")?;
        let session_id = r.u32("SessionID")?;
        let flags = r.u32("Flags")?;
        let elevation_type = r.u32("ProcessTokenElevationType")?;
        let is_elevated = r.u32("ProcessTokenIsElevated")?;
        let label = r.sid("MandatoryLabel")?;
        let image_name = r.utf16z("ImageName")?;
        let image_checksum = r.u32("ImageChecksum")?;
        let time_date_stamp = r.u32("TimeDateStamp")?;
        let package_full_name = r.utf16z("PackageFullName")?;
        let package_relative_app_id = r.utf16z("PackageRelativeAppId")?;
        let security_mitigations = if layout >= 4 {
            Some(r.u32("SecurityMitigations")?)
        } else {
            None
        };
        let (partition_id, process_machine) = if layout >= 5 {
            (Some(r.u32("PartitionID")?), Some(r.u16("ProcessMachine")?))
        } else {
            (None, None)
        };
        Ok(ProcessStartData {
            version,
            process_id,
            process_sequence_number: Some(seq),
            create_time,
            parent_process_id,
            parent_process_sequence_number: Some(parent_seq),
            session_id,
            flags: Some(flags),
            token_elevation_type: Some(elevation_type),
            token_is_elevated: Some(is_elevated),
            mandatory_label: Some(label),
            image_name,
            image_checksum: Some(image_checksum),
            time_date_stamp: Some(time_date_stamp),
            package_full_name: Some(package_full_name),
            package_relative_app_id: Some(package_relative_app_id),
            security_mitigations,
            partition_id,
            process_machine,
        })
    } else {
        let process_id = r.u32("ProcessID")?;
        let create_time = r.filetime("CreateTime")?;
        let parent_process_id = r.u32("ParentProcessID")?;
        let session_id = r.u32("SessionID")?;
        let flags = if layout >= 1 {
            Some(r.u32("Flags")?)
        } else {
            None
        };
        let image_name = r.utf16z("ImageName")?;
        let (image_checksum, time_date_stamp, package_full_name, package_relative_app_id) =
            if layout >= 2 {
                (
                    Some(r.u32("ImageChecksum")?),
                    Some(r.u32("TimeDateStamp")?),
                    Some(r.utf16z("PackageFullName")?),
                    Some(r.utf16z("PackageRelativeAppId")?),
                )
            } else {
                (None, None, None, None)
            };
        Ok(ProcessStartData {
            version,
            process_id,
            process_sequence_number: None,
            create_time,
            parent_process_id,
            parent_process_sequence_number: None,
            session_id,
            flags,
            token_elevation_type: None,
            token_is_elevated: None,
            mandatory_label: None,
            image_name,
            image_checksum,
            time_date_stamp,
            package_full_name,
            package_relative_app_id,
            security_mitigations: None,
            partition_id: None,
            process_machine: None,
        })
    }
}

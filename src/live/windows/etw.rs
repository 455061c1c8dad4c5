//! The FFI edge to ETW: ferrisetw for the session and its consumer, raw
//! `ControlTraceW`/`EnableTraceEx2` for what ferrisetw does not expose
//! (QUERY for loss counters and the session handle, FLUSH, CAPTURE_STATE,
//! STOP by name), and the one audited cast to reach an event's UserData.
//!
//! This module and its siblings are the only code that imports ferrisetw or
//! the `windows` crate.

use std::mem::{align_of, offset_of, size_of};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use ferrisetw::native::EvntraceNativeError;
use ferrisetw::provider::{EventFilter, Provider};
use ferrisetw::trace::{DumpFileParams, LoggingMode, TraceError, TraceProperties, UserTrace};
use ferrisetw::{EventRecord, SchemaLocator, GUID};
use windows::core::PCWSTR;
use windows::Win32::Foundation::ERROR_SUCCESS;
use windows::Win32::System::Diagnostics::Etw::{
    ControlTraceW, EnableTraceEx2, CONTROLTRACE_HANDLE, EVENT_CONTROL_CODE_CAPTURE_STATE,
    EVENT_RECORD, EVENT_TRACE_CONTROL, EVENT_TRACE_CONTROL_FLUSH, EVENT_TRACE_CONTROL_QUERY,
    EVENT_TRACE_CONTROL_STOP, EVENT_TRACE_PROPERTIES, WNODE_FLAG_TRACED_GUID,
};

use crate::event::ProcessEvent;
use crate::live::etw::providers::{required_only, retry_required_only, ProviderPlan};
use crate::live::etw::session::{EtwCode, SessionControl, StartFailure};
use crate::live::etw::settings::SessionSettings;
use crate::live::etw::{
    decode_event, guid_from_u128, EventHeaderInfo, KERNEL_PROCESS_GUID, KEYWORD_PROCESS,
};
use crate::source::{OsLosses, SourceCounters};

/// Microsoft-Windows-Kernel-Process as the `windows` crate's GUID.
pub(super) const KERNEL_PROCESS: GUID = GUID::from_u128(KERNEL_PROCESS_GUID);

/// `TRACE_LEVEL_INFORMATION`: the provider's process events are level 4.
const LEVEL_INFORMATION: u8 = 4;

/// What the ETW callback hands to the source thread.
// The large variant is the common one; boxing it would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Msg {
    /// A decoded start, stop, rundown or activity (connection, command).
    Event(ProcessEvent),
    /// A payload that did not decode: (event id, version, error text).
    Malformed(u16, u8, String),
}

/// The raw `EVENT_RECORD` behind ferrisetw's wrapper.
///
/// ferrisetw 1.2.0 keeps `user_buffer()` crate-private. Its `EventRecord` is
/// `#[repr(transparent)] pub struct EventRecord(pub(crate) EVENT_RECORD)`
/// over the `windows` 0.57 `EVENT_RECORD`; both crates are pinned with `=`
/// in Cargo.toml, and size and alignment are checked at compile time.
fn raw_record(rec: &EventRecord) -> &EVENT_RECORD {
    const _: () = assert!(size_of::<EventRecord>() == size_of::<EVENT_RECORD>());
    const _: () = assert!(align_of::<EventRecord>() == align_of::<EVENT_RECORD>());
    // SAFETY: `EventRecord` is `#[repr(transparent)]` over `EVENT_RECORD`
    // (ferrisetw =1.2.0, windows =0.57.0, sizes asserted above), so the
    // pointer cast preserves layout and validity, and the returned reference
    // borrows `rec` with the same lifetime.
    unsafe { &*(rec as *const EventRecord).cast::<EVENT_RECORD>() }
}

/// The event's UserData (payload) bytes, borrowed for the callback.
pub(super) fn user_data(rec: &EventRecord) -> &[u8] {
    let raw = raw_record(rec);
    let len = usize::from(raw.UserDataLength);
    if raw.UserData.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: ETW guarantees `UserData` points to `UserDataLength` readable
    // bytes that stay valid and unmodified for the duration of the callback;
    // the slice borrows `rec`, which ferrisetw lends only for that duration.
    unsafe { std::slice::from_raw_parts(raw.UserData.cast::<u8>(), len) }
}

/// The header fields the decoder needs.
fn header_info(rec: &EventRecord) -> EventHeaderInfo {
    EventHeaderInfo {
        provider: guid_from_u128(rec.provider_id().to_u128()),
        event_id: rec.event_id(),
        version: rec.version(),
        header_pid: rec.process_id(),
        timestamp: EventHeaderInfo::timestamp_from_raw(rec.raw_timestamp()),
        flags: rec.event_flags(),
    }
}

/// The ETW callback: decode by hand (never TDH or ferrisetw's `Parser`),
/// `try_send`, count drops. Never blocks, never panics.
fn callback(
    tx: Sender<Msg>,
    counters: Arc<SourceCounters>,
) -> impl FnMut(&EventRecord, &SchemaLocator) + Send + Sync + 'static {
    move |rec: &EventRecord, _: &SchemaLocator| handle_record(rec, &tx, &counters)
}

/// The callback's body: header + UserData → decoder → queue.
pub(super) fn handle_record(rec: &EventRecord, tx: &Sender<Msg>, counters: &SourceCounters) {
    let header = header_info(rec);
    let msg = match decode_event(&header, user_data(rec)) {
        Ok(Some(ev)) => Msg::Event(ev),
        Ok(None) => return,
        Err(e) => Msg::Malformed(header.event_id, header.version, e.to_string()),
    };
    if tx.try_send(msg).is_err() {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// `EVENT_TRACE_PROPERTIES` with room for the two names `ControlTraceW`
/// writes back.
#[repr(C)]
pub(super) struct PropertiesBuf {
    /// The properties proper.
    pub props: EVENT_TRACE_PROPERTIES,
    logger_name: [u16; 1024],
    log_file_name: [u16; 1024],
}

impl PropertiesBuf {
    pub(super) fn new() -> Box<PropertiesBuf> {
        let mut b = Box::new(PropertiesBuf {
            props: EVENT_TRACE_PROPERTIES::default(),
            logger_name: [0; 1024],
            log_file_name: [0; 1024],
        });
        b.props.Wnode.BufferSize = size_of::<PropertiesBuf>() as u32;
        b.props.Wnode.Flags = WNODE_FLAG_TRACED_GUID;
        b.props.LoggerNameOffset = offset_of!(PropertiesBuf, logger_name) as u32;
        b.props.LogFileNameOffset = offset_of!(PropertiesBuf, log_file_name) as u32;
        b
    }

    /// `Wnode.HistoricalContext`: after a QUERY, the session's handle.
    pub(super) fn session_handle(&self) -> u64 {
        // SAFETY: reading a plain `u64` member of a union of integers (all
        // bit patterns are valid); the struct was zero-initialised.
        unsafe { self.props.Wnode.Anonymous1.HistoricalContext }
    }

    /// True when the OS filled the block in (a real session answered);
    /// Wine's stubs return success and leave it zeroed.
    pub(super) fn answered(&self) -> bool {
        self.props.BufferSize != 0 || self.props.NumberOfBuffers != 0
    }

    /// The loss counters, each kind on its own (events and buffers are
    /// different units; `LogBuffersLost` matters with `--etl`).
    pub(super) fn losses(&self) -> OsLosses {
        OsLosses {
            events: u64::from(self.props.EventsLost),
            realtime_buffers: u64::from(self.props.RealTimeBuffersLost),
            log_buffers: u64::from(self.props.LogBuffersLost),
        }
    }
}

/// A NUL-terminated UTF-16 copy of `s`, for Win32 string arguments.
pub(super) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// `ControlTraceW(0, name, props, code)`.
pub(super) fn control_by_name(
    name: &str,
    code: EVENT_TRACE_CONTROL,
) -> Result<Box<PropertiesBuf>, EtwCode> {
    let mut buf = PropertiesBuf::new();
    let wname = wide(name);
    // SAFETY: `wname` is NUL-terminated and outlives the call; `buf.props`
    // heads a block of `Wnode.BufferSize` bytes whose name offsets point
    // inside it, as ControlTraceW requires; the call returns before `buf`
    // is touched again.
    let status = unsafe {
        ControlTraceW(
            CONTROLTRACE_HANDLE { Value: 0 },
            PCWSTR::from_raw(wname.as_ptr()),
            &mut buf.props,
            code,
        )
    };
    if status == ERROR_SUCCESS {
        Ok(buf)
    } else {
        Err(EtwCode(status.0 as i32))
    }
}

/// QUERY: the loss counters and the session handle.
pub(super) fn query(name: &str) -> Result<Box<PropertiesBuf>, EtwCode> {
    control_by_name(name, EVENT_TRACE_CONTROL_QUERY)
}

/// FLUSH: deliver the session's partly filled buffers now (bounds latency).
pub(super) fn flush(name: &str) -> Result<(), EtwCode> {
    control_by_name(name, EVENT_TRACE_CONTROL_FLUSH).map(|_| ())
}

/// STOP by name; returns the session's final loss counters (STOP fills in
/// the properties one last time), or `None` when the call succeeded without
/// describing a session (Wine).
pub(super) fn stop(name: &str) -> Result<Option<OsLosses>, EtwCode> {
    control_by_name(name, EVENT_TRACE_CONTROL_STOP).map(|b| b.answered().then(|| b.losses()))
}

/// Asks the provider for a rundown (ProcessRundown, id 15) of the processes
/// already running: `EnableTraceEx2(CAPTURE_STATE)` on the session handle
/// from QUERY's `Wnode.HistoricalContext`.
pub(super) fn capture_state(name: &str) -> Result<(), String> {
    let q = query(name).map_err(|c| format!("ControlTraceW(QUERY): {c}"))?;
    let handle = q.session_handle();
    if handle == 0 {
        return Err("ControlTraceW(QUERY) returned no session handle".into());
    }
    // SAFETY: the GUID reference is valid for the call; no enable
    // parameters (None) are passed; the handle is only used by the OS,
    // which validates it.
    let status = unsafe {
        EnableTraceEx2(
            CONTROLTRACE_HANDLE { Value: handle },
            &KERNEL_PROCESS,
            EVENT_CONTROL_CODE_CAPTURE_STATE.0,
            LEVEL_INFORMATION,
            KEYWORD_PROCESS,
            0,
            0,
            None,
        )
    };
    if status == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(format!(
            "EnableTraceEx2(CAPTURE_STATE): {}",
            EtwCode(status.0 as i32)
        ))
    }
}

/// A started ferrisetw session and its consumer handle.
pub(super) type Started = (UserTrace, ferrisetw::native::TraceHandle);

/// [`SessionControl`] over ferrisetw.
pub(super) struct FerrisControl {
    pub properties: TraceProperties,
    /// The providers to enable, Kernel-Process first
    /// (`live::etw::providers::session_providers`).
    pub providers: Vec<ProviderPlan>,
    pub etl_file: Option<PathBuf>,
    pub tx: Sender<Msg>,
    pub counters: Arc<SourceCounters>,
}

impl std::fmt::Debug for FerrisControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FerrisControl")
            .field("properties", &self.properties)
            .field("providers", &self.providers)
            .field("etl_file", &self.etl_file)
            .finish_non_exhaustive()
    }
}

impl FerrisControl {
    /// Session properties from the pure settings
    /// (`live::etw::settings` says why these values).
    pub(super) fn properties(s: &SessionSettings) -> TraceProperties {
        TraceProperties {
            buffer_size: s.buffer_kib,
            min_buffer: s.min_buffers,
            max_buffer: s.max_buffers,
            flush_timer: Duration::from_secs(u64::from(s.flush_timer_secs)),
            log_file_mode: LoggingMode::from_bits_truncate(s.log_file_mode),
        }
    }
}

fn start_failure(e: TraceError) -> StartFailure {
    match e {
        TraceError::InvalidTraceName => StartFailure::Other("invalid ETW session name".into()),
        TraceError::EtwNativeError(EvntraceNativeError::AlreadyExist) => {
            StartFailure::AlreadyExists
        }
        TraceError::EtwNativeError(EvntraceNativeError::InvalidHandle) => {
            StartFailure::Other("StartTraceW returned an invalid session handle".into())
        }
        TraceError::EtwNativeError(EvntraceNativeError::IoError(io)) => {
            let code = EtwCode(io.raw_os_error().unwrap_or(0));
            // ferrisetw reports StartTraceW/EnableTraceEx2 failures as
            // HRESULTs and OpenTraceW's as GetLastError's plain code.
            let step = if code.hresult().is_some() {
                "StartTraceW/EnableTraceEx2"
            } else {
                "OpenTraceW"
            };
            let message = code
                .win32()
                .map(|w| std::io::Error::from_raw_os_error(w as i32).to_string())
                .unwrap_or_else(|| io.to_string());
            StartFailure::Code {
                step,
                code,
                message,
            }
        }
    }
}

impl FerrisControl {
    /// One ferrisetw session with `providers`, every one routed to the same
    /// callback (the decoder routes by provider GUID).
    fn start_with(&self, name: &str, providers: &[ProviderPlan]) -> Result<Started, StartFailure> {
        let mut builder = UserTrace::new()
            .named(name.to_owned())
            .set_trace_properties(self.properties);
        for p in providers {
            let provider = Provider::by_guid(GUID::from_u128(p.guid))
                .any(p.any_keyword)
                .all(0)
                .level(p.level)
                .add_filter(EventFilter::ByEventIds(p.event_ids.to_vec()))
                .add_callback(callback(self.tx.clone(), self.counters.clone()))
                .build();
            builder = builder.enable(provider);
        }
        if let Some(path) = &self.etl_file {
            builder = builder.set_etl_dump_file(DumpFileParams {
                file_path: path.clone(),
                ..DumpFileParams::default()
            });
        }
        builder.start().map_err(start_failure)
    }
}

impl SessionControl for FerrisControl {
    type Session = Started;

    fn stop_by_name(&mut self, name: &str) -> Result<bool, EtwCode> {
        stop(name).map(|lost| lost.is_some())
    }

    fn start(&mut self, name: &str) -> Result<Started, StartFailure> {
        let r = self.start_with(name, &self.providers);
        // Enabling an attribution provider can fail (8 sessions already
        // enable it, policy): monitor processes without it rather than not
        // at all. ferrisetw leaves the session running on that failure.
        match (r, required_only(&self.providers)) {
            (
                Err(StartFailure::Code {
                    step,
                    code,
                    message,
                }),
                Some(required),
            ) if retry_required_only(step, code.win32()) => {
                tracing::warn!(
                    "enabling {} failed ({code}: {message}); tracing processes only",
                    self.providers
                        .iter()
                        .filter(|p| !p.required)
                        .map(|p| p.kind.name())
                        .collect::<Vec<_>>()
                        .join(" and ")
                );
                let _ = stop(name);
                self.providers = required;
                self.start_with(name, &self.providers)
            }
            (r, _) => r,
        }
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

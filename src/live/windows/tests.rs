//! Windows-only tests. They run under Wine in CI (`.ci/windows-test.sh`),
//! where ETW consumers are stubs, and on a real Windows runner.
#![allow(clippy::print_stderr, reason = "a test under Wine says what it saw")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::event::{image_file_name, EventKind, Origin};
use crate::live::etw::session::{start_clean, EtwCode, SessionControl, SessionError, StartFailure};
use crate::live::etw::settings::SessionSettings;
use crate::source::{Backpressure, SourceCounters};

/// True under Wine (ntdll exports `wine_get_version`).
fn under_wine() -> bool {
    use windows::core::s;
    use windows::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: both names are static NUL-terminated strings; the module
    // handle of ntdll stays valid for the life of the process.
    unsafe {
        match GetModuleHandleA(s!("ntdll.dll")) {
            Ok(h) => GetProcAddress(h, s!("wine_get_version")).is_some(),
            Err(_) => false,
        }
    }
}

fn exe_name() -> String {
    let exe = std::env::current_exe().unwrap();
    exe.file_name().unwrap().to_string_lossy().into_owned()
}

/// Not a test on its own: the child process the snapshot test looks for.
#[test]
#[ignore = "helper: spawned by snapshot_finds_this_process_and_its_child"]
fn sleeping_child() {
    if std::env::var_os("WSMWATCH_TEST_CHILD").is_some() {
        std::thread::sleep(Duration::from_secs(20));
    }
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn snapshot_finds_this_process_and_its_child() {
    let me = std::process::id();
    let child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "live::windows::tests::sleeping_child",
            ])
            .env("WSMWATCH_TEST_CHILD", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child_pid = child.0.id();
    std::thread::sleep(Duration::from_millis(300));

    let events = snapshot::seed_events(Some("testhost")).unwrap();
    assert!(events.len() > 2, "{events:?}");
    assert!(events.iter().all(|e| e.origin == Origin::Snapshot
        && e.kind == EventKind::Start
        && e.host.as_deref() == Some("testhost")));

    let mine = events
        .iter()
        .find(|e| e.pid == Some(me))
        .unwrap_or_else(|| panic!("pid {me} not in the snapshot"));
    assert!(
        image_file_name(&mine.image).eq_ignore_ascii_case(&exe_name()),
        "image {:?} vs {:?}",
        mine.image,
        exe_name()
    );
    assert!(mine.create_time.is_some_and(|t| t.0 > 0), "{mine:?}");

    let kid = events
        .iter()
        .find(|e| e.pid == Some(child_pid))
        .unwrap_or_else(|| panic!("child pid {child_pid} not in the snapshot"));
    assert_eq!(kid.ppid, Some(me), "{kid:?}");
    assert!(
        image_file_name(&kid.image).eq_ignore_ascii_case(&exe_name()),
        "{kid:?}"
    );
    eprintln!("snapshot: self {mine:?}\nsnapshot: child {kid:?}");
}

/// DOS paths are applied at the edge: a snapshot event for this process
/// leaves the source with the DOS form of its image (`C:\…`), the form
/// alerts show, and no process-global table is involved.
#[test]
fn snapshot_events_leave_the_source_with_dos_images() {
    let me = std::process::id();
    let map = dos_device_map();
    let mut events = snapshot::seed_events(None).unwrap();
    for ev in &mut events {
        map.apply(ev);
    }
    let mine = events.iter().find(|e| e.pid == Some(me)).unwrap();
    if mine.image.contains('\\') {
        let exe = std::env::current_exe().unwrap();
        assert!(
            mine.image.eq_ignore_ascii_case(&exe.to_string_lossy()),
            "{} vs {}",
            mine.image,
            exe.display()
        );
    } else {
        eprintln!("no full image path for self: {}", mine.image);
    }
}

#[test]
fn dos_map_maps_this_executable() {
    let map = dos_device_map();
    eprintln!("device map: {map:?}");
    let me = std::process::id();
    let procs = snapshot::processes().unwrap();
    let p = procs.iter().find(|p| p.pid == me).unwrap();
    match snapshot::full_image(me, p.create_time) {
        Some(nt) => {
            eprintln!("own NT image path: {nt}");
            if let Some(dos) = map.to_dos(&nt) {
                let exe = std::env::current_exe().unwrap();
                assert!(
                    dos.eq_ignore_ascii_case(&exe.to_string_lossy()),
                    "{dos} vs {}",
                    exe.display()
                );
            }
        }
        None => eprintln!("QueryFullProcessImageNameW not available for self"),
    }
}

/// Records the calls, to show what the real sequence did.
struct Recording<C> {
    inner: C,
    calls: Vec<String>,
}

impl<C: SessionControl> SessionControl for Recording<C> {
    type Session = C::Session;
    fn stop_by_name(&mut self, name: &str) -> Result<bool, EtwCode> {
        let r = self.inner.stop_by_name(name);
        self.calls.push(format!("stop {r:?}"));
        r
    }
    fn start(&mut self, name: &str) -> Result<C::Session, StartFailure> {
        let r = self.inner.start(name);
        self.calls.push(format!("start {:?}", r.as_ref().err()));
        r
    }
    fn sleep(&mut self, d: Duration) {
        self.inner.sleep(d)
    }
}

fn emitter() -> (Emitter, Arc<SourceCounters>) {
    let (tx, _rx) = crossbeam_channel::bounded(1024);
    let (etx, _erx) = crossbeam_channel::unbounded();
    let c = Arc::new(SourceCounters::default());
    (
        Emitter::new(tx, Backpressure::DropNewest, c.clone(), etx),
        c,
    )
}

#[test]
fn wine_failed_open_is_access_denied_and_stops_the_session() {
    if !under_wine() {
        eprintln!("skipped: Wine-specific (OpenTraceW is a stub there); real hosts run the end-to-end workflow");
        return;
    }
    let (tx, _rx) = bounded(16);
    let mut ctl = Recording {
        inner: FerrisControl {
            properties: FerrisControl::properties(&SessionSettings::from_config(
                &LiveConfig::default(),
            )),
            providers: crate::live::etw::providers::session_providers(&LiveConfig::default()),
            etl_file: None,
            tx,
            counters: Arc::new(SourceCounters::default()),
        },
        calls: Vec::new(),
    };
    let err = match start_clean(&mut ctl, SESSION_NAME, Retry::default()) {
        Ok(_) => panic!("a session started under Wine"),
        Err(e) => e,
    };
    eprintln!("calls: {:?}\nerror: {err}", ctl.calls);
    assert_eq!(
        err,
        SessionError::AccessDenied {
            step: "OpenTraceW",
            code: EtwCode(5)
        }
    );
    // stale-session stop, the failed start, then the cleanup stop.
    assert_eq!(ctl.calls.len(), 3, "{:?}", ctl.calls);
    assert!(ctl.calls[1].starts_with("start Some"), "{:?}", ctl.calls);
    assert!(ctl.calls[2].starts_with("stop"), "{:?}", ctl.calls);
}

#[test]
fn wine_live_run_fails_with_a_clear_message() {
    if !under_wine() {
        eprintln!("skipped: Wine-specific; real hosts run the end-to-end workflow");
        return;
    }
    let mut src = LiveSource::new(LiveConfig {
        takeover: true,
        ..LiveConfig::default()
    })
    .unwrap();
    assert_eq!(src.name(), "etw:wsmwatch-kernel-process");
    let (mut out, counters) = emitter();
    let stop = StopToken::new();
    let err = src.run(&mut out, &stop).unwrap_err();
    let msg = err.to_string();
    eprintln!("live error: {msg}");
    assert!(
        matches!(err, SourceError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(msg.contains("OpenTraceW"), "{msg}");
    assert!(msg.contains("Administrator"), "{msg}");
    assert!(msg.contains(SESSION_NAME), "{msg}");
    assert_eq!(counters.snapshot().sent, 0);
}

#[test]
fn config_is_checked() {
    let bad = LiveConfig {
        buffer_kib: Some(0),
        takeover: true,
        ..LiveConfig::default()
    };
    assert!(LiveSource::new(bad).is_err());
    let bad = LiveConfig {
        min_buffers: Some(10),
        max_buffers: Some(5),
        takeover: true,
        ..LiveConfig::default()
    };
    assert!(LiveSource::new(bad).is_err());
    assert!(LiveSource::new(LiveConfig {
        takeover: true,
        ..LiveConfig::default()
    })
    .is_ok());
}

#[test]
fn control_buffer_layout() {
    let b = etw::query("wsmwatch-test-no-such-session");
    // Wine answers success without touching the block; Windows answers
    // ERROR_WMI_INSTANCE_NOT_FOUND. Either way, no crash and a sane block.
    match b {
        Ok(b) => assert_eq!(b.losses(), OsLosses::default()),
        Err(c) => assert_eq!(
            c.win32(),
            Some(crate::live::etw::session::ERROR_WMI_INSTANCE_NOT_FOUND)
        ),
    }
}

/// A ProcessStart v0 payload: PID, CreateTime, PPID, SessionID, ImageName.
fn start_v0(pid: u32, create: u64, ppid: u32, image: &str) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(pid.to_le_bytes());
    p.extend(create.to_le_bytes());
    p.extend(ppid.to_le_bytes());
    p.extend(1u32.to_le_bytes());
    p.extend(image.encode_utf16().chain([0]).flat_map(u16::to_le_bytes));
    p
}

fn raw_event(
    id: u16,
    version: u8,
    header_pid: u32,
    payload: &mut [u8],
) -> windows::Win32::System::Diagnostics::Etw::EVENT_RECORD {
    let mut raw = windows::Win32::System::Diagnostics::Etw::EVENT_RECORD::default();
    raw.EventHeader.ProviderId = etw::KERNEL_PROCESS;
    raw.EventHeader.EventDescriptor.Id = id;
    raw.EventHeader.EventDescriptor.Version = version;
    raw.EventHeader.EventDescriptor.Keyword = 0x8000_0000_0000_0010;
    raw.EventHeader.ProcessId = header_pid;
    raw.EventHeader.TimeStamp = 133_000_000_050_000_000;
    raw.EventHeader.Flags = 0x40;
    raw.UserData = payload.as_mut_ptr().cast();
    raw.UserDataLength = payload.len() as u16;
    raw
}

fn as_record(
    raw: &windows::Win32::System::Diagnostics::Etw::EVENT_RECORD,
) -> &ferrisetw::EventRecord {
    // SAFETY: the inverse of `etw::raw_record`: ferrisetw's `EventRecord`
    // is `#[repr(transparent)]` over this `EVENT_RECORD` (pinned versions,
    // sizes asserted there); the reference borrows `raw`.
    unsafe { &*(raw as *const windows::Win32::System::Diagnostics::Etw::EVENT_RECORD).cast() }
}

#[test]
fn callback_edge_decodes_raw_records_counts_errors_and_drops() {
    let mut payload = start_v0(
        4242,
        133_000_000_000_000_000,
        700,
        r"\Device\HarddiskVolume3\Windows\System32\wsmprovhost.exe",
    );
    let raw = raw_event(1, 0, 777, &mut payload);
    let rec = as_record(&raw);
    assert_eq!(etw::user_data(rec), &payload[..]);

    let (tx, rx) = bounded(1);
    let counters = SourceCounters::default();
    etw::handle_record(rec, &tx, &counters);
    match rx.try_recv().unwrap() {
        Msg::Event(ev) => {
            assert_eq!(ev.kind, EventKind::Start);
            assert_eq!((ev.pid, ev.ppid), (Some(4242), Some(700)));
            // The header ProcessId is kept as the creator.
            assert_eq!(ev.creator_pid, Some(777));
            assert_eq!(image_file_name(&ev.image), "wsmprovhost.exe");
            assert_eq!(ev.origin, Origin::Live);
            assert_eq!(ev.time.0, 133_000_000_050_000_000);
        }
        other => panic!("{other:?}"),
    }

    // Truncated payload: a counted malformed record, not a crash.
    let mut short = payload[..10].to_vec();
    let raw = raw_event(1, 0, 777, &mut short);
    etw::handle_record(as_record(&raw), &tx, &counters);
    assert!(matches!(rx.try_recv().unwrap(), Msg::Malformed(1, 0, _)));

    // Another event id (ThreadStart) is ignored.
    let raw = raw_event(3, 0, 777, &mut payload);
    etw::handle_record(as_record(&raw), &tx, &counters);
    assert!(rx.try_recv().is_err());

    // No payload at all.
    let mut raw = raw_event(1, 0, 777, &mut payload);
    raw.UserData = std::ptr::null_mut();
    assert!(etw::user_data(as_record(&raw)).is_empty());

    // Queue full: the callback never blocks, it counts a drop.
    let raw = raw_event(1, 0, 777, &mut payload);
    etw::handle_record(as_record(&raw), &tx, &counters);
    etw::handle_record(as_record(&raw), &tx, &counters);
    assert_eq!(counters.snapshot().dropped, 1);
}

#[test]
fn wine_control_calls_are_harmless() {
    if !under_wine() {
        eprintln!("skipped: Wine-specific");
        return;
    }
    // Wine's ControlTraceW answers success without a session handle, so the
    // rundown request reports that instead of calling EnableTraceEx2 with 0.
    let e = etw::capture_state("wsmwatch-test-no-such-session").unwrap_err();
    assert!(e.contains("no session handle"), "{e}");
    assert!(etw::flush("wsmwatch-test-no-such-session").is_ok());
    assert_eq!(etw::stop("wsmwatch-test-no-such-session"), Ok(None));
}

/// Defect 1: a second instance reclaimed the running one's session. The
/// real `CreateMutexW` (Wine implements named mutexes): a second holder is
/// refused unless it takes over, and the mutex goes with the last handle.
#[test]
fn a_second_instance_is_refused_by_the_host_mutex() {
    let _serial = MUTEX_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let first = instance::InstanceGuard::acquire(true).unwrap();
    let second = instance::InstanceGuard::acquire(false);
    let err = second.unwrap_err();
    assert!(err.to_string().contains("--takeover"), "{err}");
    let third = instance::InstanceGuard::acquire(true).unwrap();
    assert_eq!(third.instance, crate::live::instance::Instance::TakingOver);
    drop((first, third));
}

/// Tests that take the real host mutex run one at a time.
static MUTEX_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Defect 6: events lost and buffers lost were added together, and
/// `LogBuffersLost` (the `--etl` file) was ignored.
#[test]
fn loss_counters_are_kept_apart() {
    let mut b = etw::PropertiesBuf::new();
    b.props.EventsLost = 7;
    b.props.RealTimeBuffersLost = 2;
    b.props.LogBuffersLost = 3;
    assert_eq!(
        b.losses(),
        OsLosses {
            events: 7,
            realtime_buffers: 2,
            log_buffers: 3
        }
    );
}

/// Defect 2 at the Windows edge: after the STOP, what the consumer still
/// delivers is forwarded (with its DOS path and host) until `ProcessTrace`
/// returns, and only then is the trace released. A scripted consumer thread
/// stands in for `ProcessTrace`; the STOP goes to a session that does not
/// exist.
#[test]
fn ordered_shutdown_forwards_what_arrives_until_the_consumer_returns() {
    use crate::event::{ProcessEvent, Timestamp};
    use crate::live::etw::lifecycle::ordered_shutdown;
    let (tx, rx) = bounded(16);
    let (done_tx, done_rx) = bounded(1);
    let consumer = std::thread::spawn(move || {
        for pid in [10, 11] {
            std::thread::sleep(Duration::from_millis(100));
            let ev = ProcessEvent::start(Timestamp(1), pid, 4, r"\Device\HarddiskVolume9\late.exe");
            tx.send(Msg::Event(ev)).unwrap();
        }
        let _ = done_tx.send(Ok(()));
    });
    let mut running = Running {
        trace: None,
        rx,
        done_rx,
        consumer: Some(consumer),
        consumer_done: false,
    };
    let (etx, erx) = crossbeam_channel::unbounded();
    let (itx, _irx) = crossbeam_channel::unbounded();
    let mut out = Emitter::new(
        etx,
        Backpressure::Block,
        Arc::new(SourceCounters::default()),
        itx,
    );
    let devices = DeviceMap::new([("Q:", r"\Device\HarddiskVolume9")]);
    let mut steps = EtwStop {
        name: "wsmwatch-test-no-such-session",
        running: &mut running,
        out: &mut out,
        devices: &devices,
        logons: &mut crate::live::etw::logon::SessionHostLogons::default(),
        host: Some("h"),
    };
    let o = ordered_shutdown(&mut steps, Duration::from_secs(5));
    assert!(o.consumer_done);
    let evs: Vec<_> = erx.try_iter().collect();
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(evs[0].image, r"Q:\late.exe");
    assert_eq!(evs[0].host.as_deref(), Some("h"));
}

/// Kernel-Network and PowerShell records through the real callback edge:
/// routed by provider GUID, pid from the payload (network) or the header
/// (PowerShell), a truncated one a counted malformed record.
#[test]
fn callback_edge_routes_network_and_powershell_records() {
    use crate::activity::{Activity, Direction};
    use crate::live::etw::providers::{KERNEL_NETWORK_GUID, POWERSHELL_GUID};
    use windows::core::GUID;
    let (tx, rx) = bounded(8);
    let counters = SourceCounters::default();

    // TCPv4 accept: 10.0.0.5:50000 → 10.0.0.6:5985, PID 4 (HTTP.sys).
    let mut accept = hex_bytes(
        "04000000 00000000 0a000005 0a000006 c350 1761 b405 0100 0000 0100 \
         ffff0000 0800 0800 78563412 7856341200a0ffff",
    );
    let mut raw = raw_event(15, 0, 1234, &mut accept);
    raw.EventHeader.ProviderId = GUID::from_u128(KERNEL_NETWORK_GUID);
    etw::handle_record(as_record(&raw), &tx, &counters);
    let Msg::Event(ev) = rx.try_recv().unwrap() else {
        panic!("not an event")
    };
    assert_eq!((ev.kind, ev.pid), (EventKind::Activity, Some(4)));
    let Some(Activity::Connection(c)) = ev.activity.as_deref() else {
        panic!("{ev:?}")
    };
    assert_eq!(c.direction, Direction::Inbound);
    assert_eq!(c.client(), (Some("10.0.0.5"), Some(50_000)));
    assert_eq!(c.server(), (Some("10.0.0.6"), Some(5985)));

    // 4104: MessageNumber 1, MessageTotal 1, "whoami", "g", "".
    let mut block = hex_bytes("01000000 01000000 770068006f0061006d0069000000 67000000 0000");
    let mut raw = raw_event(4104, 1, 5120, &mut block);
    raw.EventHeader.ProviderId = GUID::from_u128(POWERSHELL_GUID);
    etw::handle_record(as_record(&raw), &tx, &counters);
    let Msg::Event(ev) = rx.try_recv().unwrap() else {
        panic!("not an event")
    };
    assert_eq!(ev.pid, Some(5120));
    let Some(Activity::Command(cmd)) = ev.activity.as_deref() else {
        panic!("{ev:?}")
    };
    assert_eq!(cmd.script_block_text.as_deref(), Some("whoami"));

    let mut short = block[..9].to_vec();
    let mut raw = raw_event(4104, 1, 5120, &mut short);
    raw.EventHeader.ProviderId = GUID::from_u128(POWERSHELL_GUID);
    etw::handle_record(as_record(&raw), &tx, &counters);
    match rx.try_recv().unwrap() {
        Msg::Malformed(4104, 1, m) => assert!(m.starts_with("PowerShell event 4104"), "{m}"),
        other => panic!("{other:?}"),
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The token reader on this test process (the same calls as for a
/// session host). A real Windows host gives a non-zero logon id with the
/// user and package. Wine 8 opens the process and the token and answers
/// `TokenStatistics`, but its `AuthenticationId` is always 0 (a FIXME in
/// its ntdll): that is the clean, counted `NoLogonId`, never a logon with
/// id 0. Its `LsaGetLogonSessionData` answers any LUID with an empty user
/// and domain, logon type 0 and package "Negotiate", which the second half
/// checks on the SYSTEM logon (0x3e7): the LSA buffer is read and freed.
#[test]
fn token_of_this_process_gives_its_logon_or_a_clean_error() {
    use crate::live::etw::logon::TokenError;
    use windows::Win32::Foundation::LUID;
    let me = std::process::id();
    let procs = snapshot::processes().unwrap();
    let created = procs.iter().find(|p| p.pid == me).map(|p| p.create_time);
    let read = token::read_logon(me, created);
    eprintln!("own token: {read:?}");
    let system = token::session_data(&LUID {
        LowPart: 0x3e7,
        HighPart: 0,
    });
    eprintln!("SYSTEM logon session: {system:?}");
    if under_wine() {
        assert_eq!(read.failure, Some(TokenError::NoLogonId), "{read:?}");
        assert!(read.logon.is_none());
        let system = system.unwrap();
        assert_eq!(system.auth_package.as_deref(), Some("Negotiate"));
        assert_eq!((system.user, system.domain), (None, None));
    } else {
        let logon = read
            .logon
            .clone()
            .expect("the token of our own process is readable");
        assert_ne!(logon.logon_id, 0, "{read:?}");
        assert_eq!(read.failure, None);
        assert!(
            logon.user.is_some() && logon.auth_package.is_some(),
            "{logon:?}"
        );
        assert!(system.unwrap().auth_package.is_some());
    }
    // A pid that names no process: a counted Win32 error, no logon.
    let gone = token::read_logon(0xFFFF_FFF0, None);
    assert!(gone.logon.is_none());
    assert!(
        matches!(
            gone.failure,
            Some(crate::live::etw::logon::TokenError::Win32 {
                step: "OpenProcess",
                ..
            })
        ),
        "{gone:?}"
    );
    // The wrong creation time: the pid was reused.
    if created.is_some() {
        let reused = token::read_logon(me, Some(crate::event::Timestamp(1)));
        assert_eq!(
            reused.failure,
            Some(crate::live::etw::logon::TokenError::Reused)
        );
    }
}

/// The Windows edge of "logon, then start": a `wsmprovhost.exe` start (here
/// named after this test process, so its token is real) goes through
/// `emit_with_logon`. Windows: the logon first, then the start with its
/// `logon_id`. Wine (no logon id): the start alone, one `incomplete`.
#[test]
fn a_session_host_start_leaves_after_its_logon_or_is_counted() {
    use crate::event::{ProcessEvent, Timestamp};
    let me = std::process::id();
    let created = snapshot::processes()
        .unwrap()
        .iter()
        .find(|p| p.pid == me)
        .map(|p| p.create_time)
        .unwrap();
    let mut start = ProcessEvent::start(created, me, 1, r"C:\Windows\System32\wsmprovhost.exe");
    start.create_time = Some(created);
    let (etx, erx) = crossbeam_channel::unbounded();
    let (itx, _irx) = crossbeam_channel::unbounded();
    let counters = Arc::new(SourceCounters::default());
    let mut out = Emitter::new(etx, Backpressure::Block, counters.clone(), itx);
    let mut logons = crate::live::etw::logon::SessionHostLogons::default();
    emit_with_logon(&mut logons, &mut out, start).unwrap();
    let evs: Vec<_> = erx.try_iter().collect();
    eprintln!("emitted: {evs:?}");
    if under_wine() {
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(evs[0].kind, EventKind::Start);
        assert_eq!(evs[0].logon_id, None);
        assert_eq!(counters.snapshot().incomplete, 1);
    } else {
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!(evs[0].kind, EventKind::Activity);
        assert_eq!(evs[1].kind, EventKind::Start);
        assert!(evs[1].logon_id.is_some_and(|id| id != 0));
        assert_eq!(counters.snapshot().incomplete, 0);
    }
    // A snapshot view of a process that is not a session host: untouched.
    let other = ProcessEvent::start(Timestamp(5), 77, 1, r"C:\x\svchost.exe");
    emit_with_logon(&mut logons, &mut out, other.clone()).unwrap();
    assert_eq!(erx.try_iter().collect::<Vec<_>>(), [other]);
}

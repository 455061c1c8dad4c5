use super::*;
use crate::event::Guid;

fn t(s: u64) -> Timestamp {
    Timestamp(130_000_000_000_000_000 + s * 10_000_000)
}
fn start(s: u64, pid: u32, ppid: u32, image: &str) -> ProcessEvent {
    ProcessEvent::start(t(s), pid, ppid, image)
}
fn stop(s: u64, pid: u32) -> ProcessEvent {
    ProcessEvent::stop(t(s), pid, "")
}
fn new(tb: &mut ProcessTable, e: &ProcessEvent) -> ProcRef {
    match tb.start(e) {
        Start::New(r) => r,
        other => panic!("expected new, got {other:?}"),
    }
}
fn parent_image(tb: &ProcessTable, r: ProcRef) -> Option<String> {
    tb.parent(r).map(|p| tb.get(p).unwrap().image.to_string())
}

#[test]
fn resolves_parent_by_pid() {
    let mut tb = ProcessTable::default();
    new(&mut tb, &start(1, 900, 4, "svchost.exe"));
    let c = new(&mut tb, &start(2, 1280, 900, "wsmprovhost.exe"));
    assert_eq!(parent_image(&tb, c).as_deref(), Some("svchost.exe"));
}

#[test]
fn pid_reuse_never_names_the_wrong_parent() {
    let mut tb = ProcessTable::default();
    new(&mut tb, &start(1, 500, 4, "old.exe"));
    // A child of old.exe, created while it ran.
    let c1 = new(&mut tb, &start(2, 600, 500, "c1.exe"));
    tb.stop(&stop(3, 500));
    new(&mut tb, &start(10, 500, 4, "new.exe"));
    let c2 = new(&mut tb, &start(11, 700, 500, "c2.exe"));
    assert_eq!(parent_image(&tb, c1).as_deref(), Some("old.exe"));
    assert_eq!(parent_image(&tb, c2).as_deref(), Some("new.exe"));
    // A child created at 5: old.exe had exited, new.exe did not exist.
    let c3 = new(&mut tb, &start(5, 800, 500, "c3.exe"));
    assert_eq!(parent_image(&tb, c3), None);
    // A late child created at 2.5 s still finds old.exe (tombstone).
    let mut late = start(2, 801, 500, "late.exe");
    late.create_time = Some(Timestamp(t(2).0 + 5_000_000));
    let c4 = new(&mut tb, &late);
    assert_eq!(parent_image(&tb, c4).as_deref(), Some("old.exe"));
}

#[test]
fn child_after_parent_stop_resolves_to_tombstone() {
    let mut tb = ProcessTable::default();
    new(&mut tb, &start(1, 500, 4, "p.exe"));
    assert!(matches!(tb.stop(&stop(3, 500)), Stop::Exited(_)));
    // Delivered after the stop, created before it.
    let c = new(&mut tb, &start(2, 600, 500, "c.exe"));
    assert_eq!(parent_image(&tb, c).as_deref(), Some("p.exe"));
    assert!(matches!(tb.stop(&stop(4, 500)), Stop::Duplicate(_)));
}

#[test]
fn parent_key_beats_pid_and_contradiction_is_unresolved() {
    let mut tb = ProcessTable::default();
    let mut p = start(1, 500, 4, "p.exe");
    p.key = Some(ProcessKey::Sequence(10));
    new(&mut tb, &p);
    let mut c = start(2, 600, 500, "c.exe");
    c.parent_key = Some(ProcessKey::Sequence(10));
    let c = new(&mut tb, &c);
    assert_eq!(parent_image(&tb, c).as_deref(), Some("p.exe"));
    let mut d = start(3, 601, 500, "d.exe");
    d.parent_key = Some(ProcessKey::Sequence(11));
    let d = new(&mut tb, &d);
    assert_eq!(tb.parent(d), None);
}

#[test]
fn unknown_parent_is_none_and_hint_makes_placeholder() {
    let mut tb = ProcessTable::default();
    let c = new(&mut tb, &start(1, 600, 3332, "hostname.exe"));
    assert_eq!(tb.parent(c), None);
    let mut e = start(2, 601, 3333, "hostname.exe");
    e.parent_image = Some(r"C:\Windows\System32\wsmprovhost.exe".into());
    let c = new(&mut tb, &e);
    let p = tb.parent(c).unwrap();
    assert!(tb.get(p).unwrap().placeholder);
    assert_eq!(tb.get(p).unwrap().file_name(), "wsmprovhost.exe");
    assert_eq!(tb.stats().placeholders, 1);
    // A sibling reuses the same placeholder.
    let mut e2 = start(3, 602, 3333, "whoami.exe");
    e2.parent_image = e.parent_image.clone();
    let c2 = new(&mut tb, &e2);
    assert_eq!(tb.parent(c2), Some(p));
}

#[test]
fn two_channels_of_one_process_are_one_entry() {
    let mut tb = ProcessTable::default();
    new(&mut tb, &start(1, 960, 4, "svchost.exe"));
    // Security 4688: whole seconds, no GUID.
    let sec = start(8, 9036, 960, r"C:\windows\system32\wsmprovhost.exe");
    let r = new(&mut tb, &sec);
    // Sysmon 1: 0.706 s later, with a GUID, case differs.
    let mut sys = start(8, 9036, 960, r"C:\Windows\System32\WSMPROVHOST.EXE");
    sys.time = Timestamp(t(8).0 + 7_060_000);
    sys.create_time = Some(sys.time);
    sys.key = Some(ProcessKey::Guid(Guid(1, 2)));
    assert_eq!(tb.start(&sys), Start::Duplicate(r));
    // A child naming the parent by GUID finds it.
    let mut c = start(9, 10116, 9036, "powershell.exe");
    c.parent_key = Some(ProcessKey::Guid(Guid(1, 2)));
    let c = new(&mut tb, &c);
    assert_eq!(tb.parent(c), Some(r));
    assert!(matches!(tb.stop(&stop(20, 9036)), Stop::Exited(_)));
    assert!(matches!(tb.stop(&stop(20, 9036)), Stop::Duplicate(_)));
}

#[test]
fn pidless_record_merges_with_pid_record() {
    let mut tb = ProcessTable::default();
    new(&mut tb, &start(1, 960, 4, "svchost.exe"));
    let mut sys = start(8, 0, 960, "wsmprovhost.exe");
    sys.pid = None;
    sys.key = Some(ProcessKey::Guid(Guid(7, 7)));
    let r = new(&mut tb, &sys);
    let sec = start(8, 9036, 960, "wsmprovhost.exe");
    assert_eq!(tb.start(&sec), Start::Duplicate(r));
    assert_eq!(tb.get(r).unwrap().pid(), Some(9036));
    // Now findable by pid.
    let c = new(&mut tb, &start(9, 10116, 9036, "powershell.exe"));
    assert_eq!(tb.parent(c), Some(r));
    // And the other way round: pid first, pid-less second.
    let mut sys2 = start(9, 0, 10116, "conhost.exe");
    let r2 = new(&mut tb, &start(9, 3384, 10116, "conhost.exe"));
    sys2.pid = None;
    sys2.key = Some(ProcessKey::Guid(Guid(8, 8)));
    assert_eq!(tb.start(&sys2), Start::Duplicate(r2));
    // Later children naming it by GUID find it.
    let mut w = start(10, 3148, 3384, "whoami.exe");
    w.parent_key = Some(ProcessKey::Guid(Guid(8, 8)));
    let w = new(&mut tb, &w);
    assert_eq!(tb.parent(w), Some(r2));
}

#[test]
fn missing_stop_is_implied_by_reuse() {
    let mut tb = ProcessTable::default();
    let a = new(&mut tb, &start(1, 500, 4, "a.exe"));
    let b = new(&mut tb, &start(5, 500, 4, "b.exe"));
    assert_eq!(tb.get(a).unwrap().exit_time(), Some(t(5)));
    assert_eq!(tb.stats().implied_exits, 1);
    // The late real stop of a still lands on a.
    assert_eq!(tb.stop(&stop(4, 500)), Stop::Exited(a));
    assert_eq!(tb.get(a).unwrap().exit_time(), Some(t(4)));
    assert_eq!(tb.get(b).unwrap().exit_time(), None);
}

#[test]
fn tombstones_are_bounded_by_age_and_count() {
    let mut tb = ProcessTable::new(TableConfig {
        tombstone_age: 5 * 10_000_000,
        max_tombstones: 100,
        max_ancestry: 16,
    });
    for i in 0..1000u32 {
        new(&mut tb, &start(i as u64, 1000 + i, 4, "x.exe"));
        tb.stop(&stop(i as u64, 1000 + i));
        assert!(tb.stats().tombstones <= 100);
    }
    // Age: only the last ~5 s survive.
    assert!(tb.len() <= 6, "{}", tb.len());
    // Reused slots do not resurrect old processes.
    assert!(tb.stats().evicted >= 994);
}

#[test]
fn stale_parent_handle_after_eviction_resolves_to_nothing() {
    let mut tb = ProcessTable::new(TableConfig {
        tombstone_age: 10_000_000,
        max_tombstones: 10,
        max_ancestry: 16,
    });
    new(&mut tb, &start(1, 10, 4, "p.exe"));
    let c = new(&mut tb, &start(2, 11, 10, "c.exe"));
    tb.stop(&stop(3, 10));
    // Evict p by advancing the clock, then reuse its slot.
    new(&mut tb, &start(100, 12, 4, "other.exe"));
    assert_eq!(tb.parent(c), None);
    assert_eq!(tb.ancestors(c).count(), 0);
}

#[test]
fn ancestry_walks_up_to_limit() {
    let mut tb = ProcessTable::default();
    new(&mut tb, &start(0, 100, 4, "p0"));
    let mut last = None;
    for i in 1..30u32 {
        last = Some(new(&mut tb, &start(i as u64, 100 + i, 99 + i, "p")));
    }
    assert_eq!(tb.ancestors(last.unwrap()).count(), 16);
}

#[test]
fn snapshot_and_rundown_of_one_process_merge() {
    let mut tb = ProcessTable::default();
    let mut snap = start(1, 960, 700, "svchost.exe");
    snap.origin = Origin::Snapshot;
    let r = new(&mut tb, &snap);
    let mut rd = start(
        1,
        960,
        700,
        r"\Device\HarddiskVolume3\Windows\System32\svchost.exe",
    );
    rd.origin = Origin::Rundown;
    rd.key = Some(ProcessKey::Sequence(55));
    assert_eq!(tb.start(&rd), Start::Duplicate(r));
    // The NT path replaces the bare name, and the sequence key now works.
    assert!(tb.get(r).unwrap().image.contains("HarddiskVolume3"));
    let mut c = start(2, 1280, 960, "wsmprovhost.exe");
    c.parent_key = Some(ProcessKey::Sequence(55));
    let c = new(&mut tb, &c);
    assert_eq!(tb.parent(c), Some(r));
}

/// A boot-time parent whose sequence number the index's window has long
/// moved past is still found by key, and its stop still lands.
#[test]
fn an_old_sequence_number_resolves_after_heavy_churn() {
    let seq = |e: &mut ProcessEvent, s: u64, ps: Option<u64>| {
        e.key = Some(ProcessKey::Sequence(s));
        e.parent_key = ps.map(ProcessKey::Sequence);
    };
    let mut tb = ProcessTable::default();
    let mut winrm = start(0, 1204, 660, "svchost.exe");
    seq(&mut winrm, 40, None);
    let w = new(&mut tb, &winrm);
    // 200k short-lived processes on recycled pids, 1 ms apart.
    for i in 0..200_000u64 {
        let at = Timestamp(t(1).0 + i * 10_000);
        let pid = 5000 + (i % 64) as u32 * 4;
        let mut e = ProcessEvent::start(at, pid, 4, "x.exe");
        seq(&mut e, 1_000 + i, None);
        new(&mut tb, &e);
        let mut x = ProcessEvent::stop(at, pid, "");
        seq(&mut x, 1_000 + i, None);
        assert!(matches!(tb.stop(&x), Stop::Exited(_)));
    }
    let mut c = start(300, 8000, 999, "wsmprovhost.exe");
    seq(&mut c, 300_000, Some(40));
    let c = new(&mut tb, &c);
    assert_eq!(tb.parent(c), Some(w));
    let mut x = stop(301, 1204);
    seq(&mut x, 40, None);
    assert_eq!(tb.stop(&x), Stop::Exited(w));
    assert!(tb.len() <= 1 + 1 + TableConfig::default().max_tombstones);
}

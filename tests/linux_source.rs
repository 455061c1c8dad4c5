//! The Linux connector source on its own, against the real kernel (root only).
#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wsmwatch::event::{EventKind, Origin, ProcessEvent};
use wsmwatch::source::live::{LiveConfig, LiveSource};
use wsmwatch::source::{Backpressure, Emitter, Source, SourceCounters, SourceError, StopToken};

fn start() -> Option<(
    crossbeam_channel::Receiver<ProcessEvent>,
    Arc<SourceCounters>,
    StopToken,
    std::thread::JoinHandle<Result<(), SourceError>>,
)> {
    let mut src = match LiveSource::new(LiveConfig::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIP: live source unavailable: {e}");
            return None;
        }
    };
    let (tx, rx) = crossbeam_channel::bounded(1 << 16);
    let (etx, _erx) = crossbeam_channel::unbounded();
    let counters = Arc::new(SourceCounters::default());
    let mut em = Emitter::new(tx, Backpressure::DropNewest, counters.clone(), etx);
    let stop = StopToken::new();
    let s2 = stop.clone();
    let h = std::thread::spawn(move || src.run(&mut em, &s2));
    Some((rx, counters, stop, h))
}

#[test]
fn sees_seed_and_a_live_exec_with_consistent_keys() {
    let Some((rx, _c, stop, h)) = start() else {
        return;
    };
    let me = std::process::id();
    // Our own process must come from the seed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen_self = None;
    while seen_self.is_none() && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            if ev.pid == Some(me) && ev.kind == EventKind::Start {
                seen_self = Some(ev);
            }
        }
    }
    let seen_self = seen_self.expect("own process in the seed");
    assert_eq!(seen_self.origin, Origin::Snapshot);
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("0.2")
        .spawn()
        .unwrap();
    let cpid = child.id();
    child.wait().unwrap();
    let mut start = None;
    let mut stopped = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while (start.is_none() || stopped.is_none()) && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            if ev.pid == Some(cpid) {
                match ev.kind {
                    EventKind::Start => start = Some(ev),
                    EventKind::Stop => stopped = Some(ev),
                }
            }
        }
    }
    let start = start.expect("child start");
    let stopped = stopped.expect("child stop");
    eprintln!("{start:?}\n{stopped:?}");
    assert!(start.image.ends_with("sleep"), "{}", start.image);
    assert_eq!(start.command_line.as_deref(), Some("/bin/sleep 0.2"));
    assert_eq!(start.ppid, Some(me));
    assert_eq!(start.parent_key, seen_self.key);
    assert_eq!(start.origin, Origin::Live);
    assert_eq!(stopped.key, start.key);
    assert_eq!(stopped.exit_code, Some(0));
    let t0 = Instant::now();
    stop.stop();
    h.join().unwrap().unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
}

//! A full disk, end to end: the real binary writing alerts to `/dev/full`
//! (every write fails with ENOSPC) must say so and exit 3, never exit 0 as
//! if the alerts had been written. `src/sink` tests the same with a failing
//! writer; this proves the binary passes it on.

use std::process::Command;

use wsmwatch::testing::demo::EXPECTED_ALERTS;

use crate::util::bin;

#[test]
fn alerts_to_a_full_disk_are_reported_and_fail_the_run() {
    let full = std::fs::File::options().write(true).open("/dev/full");
    if full.is_err() {
        eprintln!("SKIP: no /dev/full here");
        return;
    }
    // As --output, and as stdout redirected to the full device.
    let to_file = Command::new(bin())
        .args(["demo", "--format", "json", "--output", "/dev/full"])
        .output()
        .unwrap();
    let to_stdout = Command::new(bin())
        .args(["demo", "--format", "json"])
        .stdout(full.unwrap())
        .output()
        .unwrap();
    for (o, target) in [(to_file, "/dev/full"), (to_stdout, "stdout")] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{target}: {err}");
        assert!(
            err.contains(&format!("cannot write to {target}")) && err.contains("os error 28"),
            "{target}: {err}"
        );
        let unwritten = format!("unwritten alerts {}", EXPECTED_ALERTS.len());
        assert!(err.contains(&unwritten), "{target}: {err}");
    }
}

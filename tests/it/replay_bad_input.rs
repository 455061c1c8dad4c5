//! Bad evidence: every broken chunk, line or member is reported with its
//! file and place, the rest is still read, and nothing panics.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::util::evidence_records as replay;

fn real(rel: &str) -> Option<Vec<u8>> {
    Some(std::fs::read(crate::util::dataset(rel)?).unwrap())
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

const SEC: &str = r#"{"EventID":4688,"Channel":"Security","Hostname":"H","EventTime":"2020-01-01 00:00:01","@timestamp":"2020-01-01T00:00:02Z","NewProcessId":"0x10","ProcessId":"0x4","NewProcessName":"C:\\a.exe"}"#;

#[test]
fn bad_json_line_is_named_and_the_rest_is_read() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "x.json",
        format!("{SEC}\n{{\"EventID\":4688,\"Chan\n{SEC}\n").as_bytes(),
    );
    let (evs, errs) = replay(vec![p.clone()]);
    assert_eq!(evs.len(), 2);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!("{}: line 2: invalid JSON", p.display())),
        "{errs:?}"
    );
}

#[test]
fn unreadable_zip_member_is_named_and_the_next_member_is_read() {
    // Stored (not deflated) so a flipped byte breaks only the CRC.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opt =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("a.json", opt).unwrap();
    w.write_all(format!("{SEC}\n").as_bytes()).unwrap();
    w.start_file("b.json", opt).unwrap();
    w.write_all(format!("{SEC}\n").as_bytes()).unwrap();
    let mut z = w.finish().unwrap().into_inner();
    // Corrupt a.json's data: its first byte is right after the local header.
    let at = memchr::memmem::find(&z, b"{\"EventID\"").unwrap();
    z[at + 2] = b'X';
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "e.zip", &z);
    let (evs, errs) = replay(vec![p.clone()]);
    assert_eq!(evs.len(), 1, "b.json still read: {errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{}: member a.json", p.display()))),
        "{errs:?}"
    );
}

#[test]
fn zip_bomb_is_refused_with_a_clear_error() {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opt = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("bomb.json", opt).unwrap();
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        w.write_all(&zeros).unwrap();
    }
    let z = w.finish().unwrap().into_inner();
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "bomb.zip", &z);
    let (_, errs) = replay(vec![p]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("member bomb.json") && errs[0].contains("zip bomb"),
        "{errs:?}"
    );
}

#[test]
fn unknown_and_missing_files() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "x.bin", b"\x00\x01garbage");
    // Not bad input: a file no format claims is named and counted as
    // skipped, and with nothing else read the binary exits 3.
    let (_, errs, notes, sum) = crate::util::evidence_with_notes(vec![p]);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(
        notes[0].contains("x.bin: skipped: unknown format"),
        "{notes:?}"
    );
    assert!(sum.nothing_decoded(), "{sum:?}");
    let (_, errs) = replay(vec![d.path().join("nope.evtx")]);
    assert!(errs[0].contains("nope.evtx: file: cannot read"), "{errs:?}");
}

#[test]
fn truncated_evtx_reports_the_chunk_and_keeps_the_rest() {
    let Some(data) = real("evtx-attack-samples/PanacheSysmon_vs_AtomicRedTeam01.evtx") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // Cut the file in the middle of its fourth chunk.
    let cut = 4096 + 3 * 65536 + 30_000;
    let p = write(d.path(), "cut.evtx", &data[..cut]);
    let (evs, errs) = replay(vec![p.clone()]);
    assert!(!evs.is_empty());
    assert!(evs.len() < 512);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&p.display().to_string()) && e.contains("chunk")),
        "{errs:?}"
    );
}

#[test]
fn corrupt_evtx_chunk_is_reported_and_other_chunks_read() {
    let Some(mut data) = real("evtx-attack-samples/PanacheSysmon_vs_AtomicRedTeam01.evtx") else {
        return;
    };
    // Smash the records area of chunk 2.
    let start = 4096 + 2 * 65536 + 512;
    for b in &mut data[start..start + 4000] {
        *b = 0xA5;
    }
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "bad.evtx", &data);
    let (evs, errs) = replay(vec![p.clone()]);
    assert!(evs.len() > 400, "other chunks still read: {}", evs.len());
    assert!(!errs.is_empty());
    assert!(errs.iter().all(|e| e.contains("chunk 2")), "{errs:?}");
}

#[test]
fn mutated_evtx_never_panics() {
    let Some(orig) = real("evtx-attack-samples/LM_winrm_exec_sysmon_1_winrshost.evtx") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut paths = Vec::new();
    for i in 0..60 {
        let mut data = orig.clone();
        // Mutate inside the chunk (header and records), where parsers break.
        for _ in 0..(1 + next() % 16) {
            let at = 4096 + (next() as usize % 8192);
            data[at] = next() as u8;
        }
        paths.push(write(d.path(), &format!("m{i}.evtx"), &data));
    }
    // Panics inside would fail the test; errors are fine.
    let (_evs, _errs) = replay(paths);
}

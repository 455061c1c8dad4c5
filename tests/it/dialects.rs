//! Every export dialect and container of the same remote session gives
//! exactly the alerts its NXLog form gives; the binary names each file's
//! dialect; bad members are named with their chain.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wsmwatch::Engine;

use crate::dialect_fixtures as fx;
use crate::dialect_fixtures_win as fxw;
use crate::util::{bin, evidence_events, evidence_records};

/// The alerts of some evidence, as comparable facts (times to the second:
/// NXLog's Security times are whole seconds).
fn alerts(paths: Vec<PathBuf>) -> (Vec<String>, Vec<String>) {
    let (events, errors) = evidence_events(paths);
    let mut engine = Engine::default();
    let facts = engine
        .run(&events)
        .iter()
        .map(|a| {
            let j = a.to_ecs();
            let g = |p: &str| {
                p.split('.')
                    .try_fold(&j, |v, k| v.get(k))
                    .map(|v| match v {
                        Value::String(s) => s.to_ascii_lowercase(),
                        v => v.to_string(),
                    })
                    .unwrap_or_default()
            };
            format!(
                "{} {} {} pid={} {} parent={} session={} user={} cmd={}",
                &g("@timestamp")[..19],
                g("event.action"),
                g("host.hostname"),
                g("process.pid"),
                g("process.name"),
                g("process.parent.pid"),
                g("wsmwatch.session.pid"),
                g("process.user.name"),
                g("process.command_line"),
            )
        })
        .collect();
    (facts, errors)
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn reference(dir: &Path) -> Vec<String> {
    let (a, errors) = alerts(vec![write(dir, "nxlog.json", &fx::nxlog(&fx::session()))]);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        a.iter().any(|s| s.contains("remote_session_started")),
        "the NXLog reference raises the session: {a:#?}"
    );
    assert!(
        a.iter().any(|s| s.contains("remote_session_activity")),
        "{a:#?}"
    );
    assert!(
        a.iter().any(|s| s.contains("remote_session_ended")),
        "{a:#?}"
    );
    a
}

type Writer = fn(&[fx::Rec]) -> Vec<u8>;

const DIALECTS: &[(&str, Writer, &str)] = &[
    ("winlogbeat6.json", fx::winlogbeat6, "winlogbeat-6"),
    ("winlogbeat8.ndjson", fx::ecs, "winlogbeat-ecs"),
    (
        "elasticdump.json",
        fx::elasticdump,
        "elasticsearch-docs/winlogbeat-ecs",
    ),
    (
        "search.json",
        fx::es_search,
        "elasticsearch-search/winlogbeat-6",
    ),
    ("evtx_dump.json", fx::evtx_dump_json, "evtx-json"),
    ("evtx_dump.jsonl", fx::evtx_dump_jsonl, "evtx-json"),
    ("chainsaw.json", fx::chainsaw_json, "evtx-json"),
    ("velociraptor.json", fx::velociraptor, "velociraptor"),
    ("ps51.json", fxw::get_winevent_ps51, "get-winevent-json"),
    ("ps7.json", fxw::get_winevent_ps7, "get-winevent-json"),
    ("ps7-xml.json", fxw::get_winevent_xml, "get-winevent-json"),
    ("wevtutil.xml", fxw::wevtutil, "wevtutil-xml"),
    ("eventviewer.xml", fxw::event_viewer, "eventviewer-xml"),
];

#[test]
fn every_dialect_gives_the_nxlog_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let want = reference(dir.path());
    for (name, w, _) in DIALECTS {
        let p = write(dir.path(), name, &w(&fx::session()));
        let (got, errors) = alerts(vec![p]);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(got, want, "{name}");
    }
}

/// The activities of some evidence, as comparable facts (times to the
/// second, as for the alerts).
fn activities(paths: Vec<PathBuf>) -> (Vec<String>, Vec<String>) {
    let (events, errors) = evidence_records(paths);
    let facts = events
        .iter()
        .filter(|e| e.kind == wsmwatch::EventKind::Activity)
        .map(|e| {
            format!(
                "{} {:?} pid={:?} key={:?} image={} user={:?} {}",
                e.time.0 / wsmwatch::Timestamp::TICKS_PER_SEC,
                e.host,
                e.pid,
                e.key,
                e.image,
                e.user,
                serde_json::to_string(&e.activity).unwrap()
            )
        })
        .collect();
    (facts, errors)
}

#[test]
fn every_dialect_gives_the_nxlog_activities() {
    let dir = tempfile::tempdir().unwrap();
    let s = fx::session();
    let (want, errors) = activities(vec![write(dir.path(), "nxlog.json", &fx::nxlog(&s))]);
    assert!(errors.is_empty(), "{errors:?}");
    // The logon, the script block (run by the writer, pid 3080) and the
    // session host's connection.
    assert_eq!(want.len(), 3, "{want:#?}");
    assert!(want[0].contains(r#"{"logon":{"logon_id":443890,"user":"pgustavo","domain":"THESHIRE.LOCAL","logon_type":3,"auth_package":"Kerberos","source_ip":"172.18.39.5","source_port":57967}}"#), "{want:#?}");
    assert!(
        want[1].contains("pid=Some(3080)") && want[1].contains(r#""script_block_text":"whoami""#),
        "{want:#?}"
    );
    assert!(
        want[2].contains("pid=Some(9036)")
            && want[2].contains(r#""direction":"outbound""#)
            && want[2].contains(r#""local_port":50001"#),
        "{want:#?}"
    );
    for (name, w, _) in DIALECTS {
        let (got, errors) = activities(vec![write(dir.path(), name, &w(&s))]);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(got, want, "{name}");
    }
    // A bare `<EventData>` string has no `<System>`: no writer's pid.
    let (got, errors) = activities(vec![write(
        dir.path(),
        "x.json",
        &fxw::xml_in_json(&s, None),
    )]);
    assert!(errors.is_empty(), "{errors:?}");
    let want: Vec<String> = want
        .iter()
        .map(|w| w.replace("pid=Some(3080)", "pid=None"))
        .collect();
    assert_eq!(got, want);
}

/// A folder of per-channel JSON arrays, the event data an XML string.
#[test]
fn per_channel_arrays_with_embedded_xml_give_the_nxlog_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let want = reference(dir.path());
    let s = fx::session();
    let sub = dir.path().join("channels");
    std::fs::create_dir(&sub).unwrap();
    for (n, ch) in [
        ("Security.json", "Security"),
        ("Sysmon.json", "Microsoft-Windows-Sysmon/Operational"),
        (
            "PowerShell.json",
            "Microsoft-Windows-PowerShell/Operational",
        ),
    ] {
        write(&sub, n, &fxw::xml_in_json(&s, Some(ch)));
    }
    let (got, errors) = alerts(vec![sub]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, want);
}

#[test]
fn a_single_get_winevent_object_is_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let one: Vec<fx::Rec> = fx::session()
        .into_iter()
        .filter(|r| r.id == 4688)
        .take(1)
        .collect();
    for (n, w) in [
        ("one51.json", fxw::get_winevent_ps51 as Writer),
        ("one7.json", fxw::get_winevent_ps7),
    ] {
        let (events, errors) = evidence_events(vec![write(dir.path(), n, &w(&one))]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(events.len(), 1, "{n}");
        assert_eq!(events[0].pid, Some(960));
        assert_eq!(events[0].host.as_deref(), Some(fx::HOST));
    }
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn tar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, d) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_636_140);
        h.set_cksum();
        b.append_data(&mut h, n, &d[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn zip(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opt = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (n, d) in members {
        w.start_file(*n, opt).unwrap();
        w.write_all(d).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn every_container_gives_the_nxlog_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let want = reference(dir.path());
    let s = fx::session();
    // Split across two members of different dialects: the merge is by time.
    let (a, b) = s.split_at(6);
    let containers: Vec<(&str, Vec<u8>)> = vec![
        ("session.json.gz", gz(&fx::winlogbeat6(&s))),
        ("session.xml.gz", gz(&fxw::wevtutil(&s))),
        (
            "session.tar",
            tar(&[
                ("a/evtx.json", fx::evtx_dump_json(a)),
                ("b/ps.json", fxw::get_winevent_ps51(b)),
            ]),
        ),
        (
            "session.tgz",
            gz(&tar(&[
                ("logs/wlb6.json", fx::winlogbeat6(a)),
                ("README.txt", b"notes".to_vec()),
                ("logs/vr.json", fx::velociraptor(b)),
            ])),
        ),
        (
            "tar-in-zip.zip",
            zip(&[(
                "inner.tar.gz",
                gz(&tar(&[("x.xml", fxw::event_viewer(&s))])),
            )]),
        ),
        (
            "zip-in-tgz.tar.gz",
            gz(&tar(&[(
                "inner.zip",
                zip(&[("a.json", fx::ecs(a)), ("b.json", fx::elasticdump(b))]),
            )])),
        ),
    ];
    for (name, data) in containers {
        let (got, errors) = alerts(vec![write(dir.path(), name, &data)]);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn bad_members_are_named_by_their_chain_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = fx::session();
    let mut bad = fx::ecs(&s[..2]);
    bad.extend_from_slice(b"{\"winlog\": broken\n");
    let data = gz(&tar(&[
        (
            "inner.zip",
            zip(&[("file.json", bad), ("ok.json", fx::ecs(&s[2..]))]),
        ),
        ("deep.gz", gz(&gz(&gz(&gz(b"{}\n"))))),
    ]));
    let p = write(dir.path(), "outer.tgz", &data);
    let (events, errors) = evidence_records(vec![p.clone()]);
    let want = format!("{}!inner.zip!file.json: line 3: invalid JSON", p.display());
    assert!(errors.iter().any(|e| e.starts_with(&want)), "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("outer.tgz!deep.gz") && e.contains("nested deeper")),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // svchost, wsmprovhost, whoami from both channels, and their stops;
    // the logon, the script block and the connection.
    let acts = events
        .iter()
        .filter(|e| e.kind == wsmwatch::EventKind::Activity)
        .count();
    assert_eq!((events.len() - acts, acts), (10, 3), "{events:#?}");
}

#[test]
fn a_file_of_unknown_dialect_is_named_with_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "other.json",
        b"[{\"ts\": 1, \"msg\": \"x\"}, {\"ts\": 2, \"msg\": \"y\"}]",
    );
    let (events, errors) = evidence_events(vec![p]);
    assert!(events.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("keys: msg, ts"), "{errors:?}");
}

#[test]
fn the_binary_names_each_files_dialect() {
    let dir = tempfile::tempdir().unwrap();
    for (name, w, _) in DIALECTS {
        write(dir.path(), name, &w(&fx::session()));
    }
    write(dir.path(), "nxlog.json", &fx::nxlog(&fx::session()));
    write(
        dir.path(),
        "more.tgz",
        &gz(&tar(&[("a.json", fx::winlogbeat6(&fx::session()))])),
    );
    let out = Command::new(bin())
        .args(["replay", "--format", "json", "--no-progress"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("replay read 15 files: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    for want in [
        "2 winlogbeat-6,",
        "3 evtx-json",
        "3 get-winevent-json",
        "1 nxlog-json (host-local time)",
        "1 velociraptor",
        "1 eventviewer-xml",
        "1 wevtutil-xml",
        "1 elasticsearch-search/winlogbeat-6",
        "1 elasticsearch-docs/winlogbeat-ecs",
        "1 winlogbeat-ecs",
        "containers: 1 gzip, 1 tar",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
}

/// The OTRF capture (NXLog JSON lines in a zip) re-packed as `.tar.gz`
/// and `.json.gz` gives exactly the events the zip gives.
#[test]
fn a_real_capture_repacked_in_every_container_reads_the_same() {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/otrf/empire_psremoting_stager.zip");
    if !d.exists() {
        eprintln!(
            "SKIPPED: {} not found (real evidence lives in ../shared/datasets)",
            d.display()
        );
        return;
    }
    let mut z = zip::ZipArchive::new(std::fs::File::open(&d).unwrap()).unwrap();
    let mut m = z.by_index(0).unwrap();
    let name = m.name().to_owned();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut m, &mut data).unwrap();
    let (want, errors) = evidence_events(vec![d.clone()]);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!want.is_empty());
    let dir = tempfile::tempdir().unwrap();
    for (n, bytes) in [
        ("c.tgz", gz(&tar(&[(name.as_str(), data.clone())]))),
        ("c.json.gz", gz(&data)),
        ("c.tar", tar(&[(name.as_str(), data.clone())])),
    ] {
        let (got, errors) = evidence_events(vec![write(dir.path(), n, &bytes)]);
        assert!(errors.is_empty(), "{n}: {errors:?}");
        assert_eq!(got, want, "{n}");
    }
    // A real EVTX (read into memory from a stream) in a tgz, and in a zip
    // in a tar.
    let e = d.with_file_name("../evtx-attack-samples/PanacheSysmon_vs_AtomicRedTeam01.evtx");
    let evtx = std::fs::read(&e).unwrap();
    let (want, errors) = evidence_events(vec![e]);
    assert!(errors.is_empty() && !want.is_empty(), "{errors:?}");
    for (n, bytes) in [
        ("e.tgz", gz(&tar(&[("x/p.evtx", evtx.clone())]))),
        ("e.tar", tar(&[("z.zip", zip(&[("p.evtx", evtx.clone())]))])),
    ] {
        let (got, errors) = evidence_events(vec![write(dir.path(), n, &bytes)]);
        assert!(errors.is_empty(), "{n}: {errors:?}");
        assert_eq!(got, want, "{n}");
    }
}

/// Writes the throughput corpus of `scripts/bench-dialects.sh`: the same
/// records in every dialect, one file each, into `$WSMWATCH_BENCH_DIR`.
/// The session is repeated `$WSMWATCH_BENCH_COPIES` times a minute apart,
/// each copy with 30 activity records (logons, network connections,
/// PowerShell), about the share real logs have.
#[test]
#[ignore = "writes the benchmark corpus; run by scripts/bench-dialects.sh"]
fn write_bench_corpus() {
    let dir = PathBuf::from(std::env::var_os("WSMWATCH_BENCH_DIR").expect("WSMWATCH_BENCH_DIR"));
    let copies: i64 = std::env::var("WSMWATCH_BENCH_COPIES").map_or(800, |v| v.parse().unwrap());
    let base = fx::session();
    let noise: Vec<fx::Rec> = base
        .iter()
        .filter(|r| ![1, 5, 4688, 4689].contains(&r.id))
        .cloned()
        .collect();
    let mut recs = Vec::new();
    for c in 0..copies {
        let mut copy = base.clone();
        for _ in 0..10 {
            copy.extend(noise.iter().cloned());
        }
        for (i, r) in copy.iter_mut().enumerate() {
            r.utc_ms += c * 60_000;
            r.record_id = (c * 100) as u64 + i as u64;
        }
        copy.sort_by_key(|r| r.utc_ms);
        recs.extend(copy);
    }
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "nxlog.json", &fx::nxlog(&recs));
    for (name, w, _) in DIALECTS {
        write(&dir, name, &w(&recs));
    }
    write(&dir, "xml-in-json.json", &fxw::xml_in_json(&recs, None));
    write(&dir, "winlogbeat6.json.gz", &gz(&fx::winlogbeat6(&recs)));
    write(
        &dir,
        "winlogbeat6.tar",
        &tar(&[("w.json", fx::winlogbeat6(&recs))]),
    );
}

//! Baseline for `scripts/bench-replay.sh`: the `evtx` crate's own parse
//! rate on the same files — every record rendered to JSON with the crate's
//! multithreaded chunk parsing, the way `evtx_dump -o json` does it, and
//! nothing else. It is the floor `wsmwatch replay` is measured against.
//!
//! `cargo bench --bench evtx_raw -- [--value] FILE_OR_DIR...` (a bench
//! target, not an example: the one example is the binary users carry): `--value` also parses each record
//! into a `serde_json::Value`, as Sigma engines over EVTX do.

use std::path::{Path, PathBuf};
use std::time::Instant;

use evtx::{EvtxParser, ParserSettings};

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        for e in v {
            walk(&e, out);
        }
    } else if p
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("evtx"))
    {
        out.push(p.to_owned());
    }
}

fn main() {
    let mut value = false;
    let mut files = Vec::new();
    for a in std::env::args().skip(1) {
        if a == "--value" {
            value = true;
        } else if a == "--bench" {
            // `cargo bench` passes this to every bench binary.
        } else {
            walk(Path::new(&a), &mut files);
        }
    }
    let t0 = Instant::now();
    let (mut records, mut errors, mut bytes) = (0u64, 0u64, 0u64);
    for f in &files {
        bytes += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let Ok(p) = EvtxParser::from_path(f) else {
            errors += 1;
            continue;
        };
        // num_threads(0): one per core, the crate's default.
        let mut p = p.with_configuration(ParserSettings::new().num_threads(0));
        if value {
            for r in p.records_json_value() {
                match r {
                    Ok(_) => records += 1,
                    Err(_) => errors += 1,
                }
            }
        } else {
            for r in p.records_json() {
                match r {
                    Ok(_) => records += 1,
                    Err(_) => errors += 1,
                }
            }
        }
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "evtx crate ({}): {} files, {records} records, {errors} errors, {:.1} MB in {s:.3} s: {:.0} records/s, {:.1} MB/s",
        if value { "JSON + serde_json::Value" } else { "JSON" },
        files.len(),
        bytes as f64 / 1e6,
        records as f64 / s,
        bytes as f64 / 1e6 / s
    );
}

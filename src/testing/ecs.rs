//! The ECS field reference, for tests: reads Elastic's flat field list
//! (`ecs_flat.yml`) and checks an alert document against it. For tests
//! only; `detect::alert` uses it on every alert kind and the real-evidence
//! tests on every alert the datasets raise.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::event::Timestamp;

/// One field of the flat list: its type and whether it may be an array.
#[derive(Debug)]
pub struct Field {
    /// The ECS type (`keyword`, `long`, `date`, `ip`…).
    pub ty: String,
    /// True when ECS `normalize` has `array`.
    pub array: bool,
}

/// The flat list beside the repository (`../shared/ecs/ecs_flat.yml`), or
/// why it is absent (the caller says the test is skipped); under `CI=true`
/// a missing file fails instead.
pub fn ecs_flat() -> Result<PathBuf, String> {
    super::present(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/ecs/ecs_flat.yml"),
        "the ECS field list",
        "the official ECS field list lives beside the repo in ../shared/ecs",
    )
}

/// Reads the flat file's simple shape by hand: a top-level `name:` line per
/// field, then two-space-indented attributes, among them `type: …` and
/// `normalize:` followed by `- array` items (or `normalize: []`).
pub fn parse_flat(text: &str) -> HashMap<String, Field> {
    let mut fields = HashMap::new();
    let mut name: Option<String> = None;
    let mut attr = String::new();
    let mut ty = String::new();
    let mut array = false;
    let mut flush = |name: &mut Option<String>, ty: &mut String, array: &mut bool| {
        if let Some(n) = name.take() {
            fields.insert(
                n,
                Field {
                    ty: std::mem::take(ty),
                    array: std::mem::take(array),
                },
            );
        }
    };
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            flush(&mut name, &mut ty, &mut array);
            name = Some(line.trim_end_matches(':').trim_matches('\'').to_owned());
        } else if let Some(rest) = line.strip_prefix("  ") {
            if let Some(item) = rest.strip_prefix("- ") {
                if attr == "normalize" && item.trim() == "array" {
                    array = true;
                }
            } else if !rest.starts_with(' ') {
                if let Some((k, v)) = rest.split_once(':') {
                    attr = k.to_owned();
                    if k == "type" {
                        ty = v.trim().to_owned();
                    }
                }
            }
        }
    }
    flush(&mut name, &mut ty, &mut array);
    fields
}

/// Does one JSON scalar (or object) fit an ECS type?
fn fits(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "constant_keyword" | "text" | "match_only_text" | "wildcard" => v.is_string(),
        "ip" => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_i64() || v.is_u64(),
        "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
        "date" => v
            .as_str()
            .is_some_and(|s| Timestamp::parse_rfc3339(s).is_some()),
        "boolean" => v.is_boolean(),
        "object" | "flattened" | "nested" => v.is_object(),
        _ => false,
    }
}

/// Every leaf of `v` as `(dotted path, value)`; arrays are leaves.
fn leaves<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        _ => out.push((prefix.to_owned(), v)),
    }
}

/// What is wrong with one alert document, as readable lines: every leaf
/// outside `wsmwatch.*` and `powershell.*` must be a field of `fields` with
/// a value of its type (arrays only where ECS allows them).
pub fn problems(doc: &Value, fields: &HashMap<String, Field>) -> Vec<String> {
    let mut out = Vec::new();
    let mut all = Vec::new();
    leaves("", doc, &mut all);
    for (path, v) in all {
        if path.starts_with("wsmwatch.") || path.starts_with("powershell.") {
            continue;
        }
        let Some(f) = fields.get(&path) else {
            out.push(format!("{path}: not an ECS field"));
            continue;
        };
        let ok = match v {
            Value::Array(items) => f.array && items.iter().all(|i| fits(&f.ty, i)),
            _ => fits(&f.ty, v),
        };
        if !ok {
            out.push(format!(
                "{path}: {v} is not a {} (array: {})",
                f.ty, f.array
            ));
        }
    }
    out
}

//! The Windows-side writers of the session of `dialect_fixtures`: event
//! XML (wevtutil, Event Viewer) and `Get-WinEvent | ConvertTo-Json`
//! (Windows PowerShell 5.1 and PowerShell 7).

use serde_json::{json, Value};

use crate::dialect_fixtures::{ps7_time, system_time, text, Rec, HOST, SEC_GUID, SYSMON_GUID, V};

/// The event as `EventLogRecord.ToXml()` / wevtutil renders it.
pub fn event_xml(r: &Rec, rendering: bool) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut x = format!(
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='{}' Guid='{}'/><EventID>{}</EventID><Version>{}</Version><Level>0</Level><Task>13312</Task><Opcode>0</Opcode><Keywords>0x8020000000000000</Keywords><TimeCreated SystemTime='{}'/><EventRecordID>{}</EventRecordID><Correlation/><Execution ProcessID='3080' ThreadID='4040'/><Channel>{}</Channel><Computer>{}</Computer><Security/></System><EventData>",
        r.provider,
        if r.sysmon() { SYSMON_GUID } else { SEC_GUID },
        r.id,
        r.version,
        system_time(r.utc_ms),
        r.record_id,
        r.channel,
        HOST
    );
    for (k, v) in r.data() {
        x.push_str(&format!("<Data Name='{k}'>{}</Data>", esc(&text(&v, true))));
    }
    x.push_str("</EventData>");
    if rendering {
        x.push_str(&format!(
            "<RenderingInfo Culture='en-US'><Message>{}</Message><Level>Information</Level><Task>Process Creation</Task><Opcode>Info</Opcode><Channel>Security</Channel><Provider>Microsoft Windows security auditing.</Provider><Keywords><Keyword>Audit Success</Keyword></Keywords></RenderingInfo>",
            esc(&r.message())
        ));
    }
    x.push_str("</Event>");
    x
}

/// `wevtutil qe … /f:xml > out.xml`: events back to back, no root.
pub fn wevtutil(recs: &[Rec]) -> Vec<u8> {
    recs.iter()
        .map(|r| event_xml(r, false))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

/// Event Viewer "Save Selected Events…" as XML: UTF-16LE with a BOM,
/// `<Events>` root, `<RenderingInfo>` per event.
pub fn event_viewer(recs: &[Rec]) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<Events>");
    for r in recs {
        s.push_str(&event_xml(r, true));
    }
    s.push_str("</Events>");
    utf16le(&s)
}

pub fn utf16le(s: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in s.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

/// `Get-WinEvent` `EventLogRecord` properties; `ps7` picks the time form.
fn winevent_doc(r: &Rec, ps7: bool) -> Value {
    let props: Vec<Value> = r
        .data()
        .into_iter()
        .map(|(_, v)| {
            let j = match v {
                V::U(n) | V::Hex(n) => json!(n),
                V::Guid(g) => json!(g),
                V::S(s) | V::Sid(s) => json!(s),
                V::B(b) => json!(b),
            };
            json!({ "Value": j })
        })
        .collect();
    let time = if ps7 {
        ps7_time(r.utc_ms)
    } else {
        format!("/Date({})/", r.utc_ms)
    };
    json!({
        "Message": r.message(),
        "Id": r.id,
        "Version": r.version,
        "Qualifiers": null,
        "Level": 4,
        "Task": 1,
        "Opcode": 0,
        "Keywords": -9214364837600034816i64,
        "RecordId": r.record_id,
        "ProviderName": r.provider,
        "ProviderId": if r.sysmon() { &SYSMON_GUID[1..37] } else { &SEC_GUID[1..37] },
        "LogName": r.channel,
        "ProcessId": 3080,
        "ThreadId": 4040,
        "MachineName": HOST,
        "UserId": if ps7 { json!("S-1-5-18") } else { json!({"BinaryLength": 12, "AccountDomainSid": null, "Value": "S-1-5-18"}) },
        "TimeCreated": time,
        "ActivityId": null,
        "RelatedActivityId": null,
        "ContainerLog": r.channel,
        "MatchedQueryIds": [],
        "Bookmark": {},
        "LevelDisplayName": "Information",
        "OpcodeDisplayName": "Info",
        "TaskDisplayName": "Process Create (rule: ProcessCreate)",
        "KeywordsDisplayNames": [],
        "Properties": props
    })
}

/// Windows PowerShell 5.1 `ConvertTo-Json` layout: four-space indents and
/// `"key":  value` (two spaces), `\/` escaped, CRLF; `Out-File` writes it
/// UTF-16LE with a BOM.
struct Ps51 {
    indent: usize,
    has_value: bool,
}

impl serde_json::ser::Formatter for Ps51 {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.indent += 1;
        self.has_value = false;
        w.write_all(b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.indent -= 1;
        if self.has_value {
            w.write_all(b"\r\n")?;
            w.write_all("    ".repeat(self.indent).as_bytes())?;
        }
        w.write_all(b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        w.write_all(if first { b"\r\n" } else { b",\r\n" })?;
        w.write_all("    ".repeat(self.indent).as_bytes())
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.indent += 1;
        self.has_value = false;
        w.write_all(b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.indent -= 1;
        if self.has_value {
            w.write_all(b"\r\n")?;
            w.write_all("    ".repeat(self.indent).as_bytes())?;
        }
        w.write_all(b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        w.write_all(if first { b"\r\n" } else { b",\r\n" })?;
        w.write_all("    ".repeat(self.indent).as_bytes())
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b":  ")
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

fn ps51_text(v: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        Ps51 {
            indent: 0,
            has_value: false,
        },
    );
    serde::Serialize::serialize(v, &mut ser).unwrap();
    // JavaScriptSerializer escapes `/` in `\/Date(…)\/`.
    String::from_utf8(out)
        .unwrap()
        .replace("\"/Date(", "\"\\/Date(")
        .replace(")/\"", ")\\/\"")
}

/// `Get-WinEvent … | ConvertTo-Json | Out-File x.json` in Windows
/// PowerShell 5.1 (a single object when there is one event).
pub fn get_winevent_ps51(recs: &[Rec]) -> Vec<u8> {
    let docs: Vec<Value> = recs.iter().map(|r| winevent_doc(r, false)).collect();
    let v = if docs.len() == 1 {
        docs[0].clone()
    } else {
        Value::Array(docs)
    };
    utf16le(&(ps51_text(&v) + "\r\n"))
}

/// The same in PowerShell 7 (UTF-8, two-space indents, ISO 8601 times).
pub fn get_winevent_ps7(recs: &[Rec]) -> Vec<u8> {
    let docs: Vec<Value> = recs.iter().map(|r| winevent_doc(r, true)).collect();
    let v = if docs.len() == 1 {
        docs[0].clone()
    } else {
        Value::Array(docs)
    };
    let mut out = serde_json::to_vec_pretty(&v).unwrap();
    out.push(b'\n');
    out
}

/// `Get-WinEvent | Select-Object Id,LogName,MachineName,TimeCreated,
/// @{n='Xml';e={$_.ToXml()}} | ConvertTo-Json` (PowerShell 7).
pub fn get_winevent_xml(recs: &[Rec]) -> Vec<u8> {
    let docs: Vec<Value> = recs
        .iter()
        .map(|r| {
            json!({
                "Id": r.id,
                "LogName": r.channel,
                "MachineName": HOST,
                "TimeCreated": ps7_time(r.utc_ms),
                "Xml": event_xml(r, false)
            })
        })
        .collect();
    serde_json::to_vec_pretty(&Value::Array(docs)).unwrap()
}

/// A per-channel JSON array whose records keep the event data as an XML
/// string (`Select-Object TimeCreated, Id, LogName, MachineName,
/// @{n='EventData';e={…}}`-style exports): envelope in JSON, UTC
/// `TimeCreated`, `EventData` the `<EventData>` element.
/// `channel: None` writes every channel in one array.
pub fn xml_in_json(recs: &[Rec], channel: Option<&str>) -> Vec<u8> {
    let docs: Vec<Value> = recs
        .iter()
        .filter(|r| channel.is_none_or(|c| r.channel == c))
        .map(|r| {
            let mut data = String::from("<EventData>");
            for (k, v) in r.data() {
                let t = text(&v, true)
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                data.push_str(&format!("<Data Name=\"{k}\">{t}</Data>"));
            }
            data.push_str("</EventData>");
            json!({
                "TimeCreated": system_time(r.utc_ms),
                "EventID": r.id,
                "Channel": r.channel,
                "Computer": HOST,
                "EventData": data
            })
        })
        .collect();
    serde_json::to_vec_pretty(&Value::Array(docs)).unwrap()
}

//! Event XML, streamed with `quick-xml` (a pull parser: one event in
//! memory at a time):
//!
//! * `wevtutil qe LOG /f:xml` (and `Get-WinEvent`'s `ToXml()`): `<Event
//!   xmlns=…>` elements back to back, with no root element;
//! * Event Viewer "Save All Events As… / Save Selected Events…" in XML:
//!   the same `<Event>`s under one `<Events>` root, each with a
//!   `<RenderingInfo>` (skipped);
//! * an `<EventData>` or `<Event>` string embedded in a JSON record
//!   ([`parse_event_str`]).
//!
//! `System/TimeCreated/@SystemTime` is UTC. `EventData/Data/@Name` gives
//! the field names, so the one `winlog` mapping reads them; `UserData`
//! leaves are read under their element names.

use std::borrow::Cow;
use std::io::BufRead;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use crate::event::Timestamp;
use crate::replay::format::{Cx, Format, Payload};
use crate::replay::winlog::{self, Envelope, Fields, Flex, Item, Provider, TimeBasis};

/// One `<Event>` as read: its envelope and the wanted data fields.
#[derive(Debug, Default)]
pub(crate) struct XmlEvent {
    /// `System/Provider/@Name`.
    pub provider_name: Option<String>,
    /// `System/Channel`.
    pub channel: Option<String>,
    /// `System/EventID`.
    pub event_id: Option<u32>,
    /// `System/Computer`.
    pub computer: Option<String>,
    /// `System/TimeCreated/@SystemTime` (UTC).
    pub time: Option<Timestamp>,
    /// `System/Execution/@ProcessID`: the writer's pid.
    pub execution_pid: Option<u32>,
    /// The data fields `winlog` reads.
    pub fields: Fields<'static>,
}

impl XmlEvent {
    /// The provider, when it is one that is read.
    pub(crate) fn provider(&self) -> Option<Provider> {
        [&self.channel, &self.provider_name]
            .into_iter()
            .flatten()
            .find_map(|n| Provider::classify(n))
    }
}

/// Event XML (`<Event …>`, `<Events>`, `<?xml …?>` first).
#[derive(Debug)]
pub(crate) struct Xml;

impl Format for Xml {
    fn name(&self) -> &'static str {
        "xml"
    }
    fn sniff(&self, head: &[u8]) -> bool {
        head.trim_ascii_start().starts_with(b"<")
    }
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let mut r = Reader::from_reader(Counted {
            inner: input.reader(),
            on_bytes: cx.on_bytes,
        });
        let mut buf = Vec::new();
        let mut n = 0u64;
        let mut root_events = false;
        // The first element, named when the file holds no events at all.
        let mut first: Option<String> = None;
        let res = loop {
            buf.clear();
            let ev = match r.read_event_into(&mut buf) {
                Ok(ev) => ev,
                Err(e) => {
                    break Err(format!(
                        "event {}: bad XML: {e}; the rest is not read",
                        n + 1
                    ))
                }
            };
            match ev {
                Event::Start(e) if e.local_name().as_ref() == b"Event" => {
                    n += 1;
                    let end = e.name().as_ref().to_vec();
                    match read_event(&mut r, &end, true) {
                        Ok(Some(x)) => {
                            if let Err(message) = map(&x, cx.sink) {
                                (cx.sink)(Item::Bad {
                                    location: format!("event {n}"),
                                    message,
                                });
                            }
                        }
                        Ok(None) => {}
                        Err(e) => break Err(format!("event {n}: {e}; the rest is not read")),
                    }
                }
                Event::Start(e) if e.local_name().as_ref() == b"Events" => root_events = true,
                Event::Start(e) | Event::Empty(e) if first.is_none() => {
                    first = Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                }
                Event::Eof => break Ok(()),
                _ => {}
            }
        };
        (cx.on_records)(n);
        if n == 0 && res.is_ok() {
            let root = first.unwrap_or_default();
            cx.dialect = Some((format!("unknown-xml (root <{root}>)"), false));
            return Err(format!(
                "not event XML: no <Event> element (the root is <{root}>)"
            ));
        }
        let label = if root_events {
            "eventviewer-xml"
        } else {
            "wevtutil-xml"
        };
        cx.dialect = Some((label.to_owned(), false));
        res
    }
}

/// Progress for the bytes the XML reader pulls.
struct Counted<'a, R> {
    inner: R,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl<R: BufRead> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<'_, R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        (self.on_bytes)(n as u64);
        self.inner.consume(n);
    }
}

/// Maps a read event and hands it on.
fn map(x: &XmlEvent, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
    let (Some(provider), Some(event_id)) = (x.provider(), x.event_id) else {
        return Ok(());
    };
    let env = Envelope {
        provider,
        event_id,
        host: x.computer.as_deref(),
        time: x.time.map(|t| (t, TimeBasis::Utc)),
        execution_pid: x.execution_pid,
    };
    if let Some(m) = winlog::to_event(&env, &x.fields).map_err(|e| e.to_string())? {
        sink(Item::Event(m));
    }
    Ok(())
}

/// Reads an event XML string (an `<Event>`, or just its `<EventData>`).
pub(crate) fn parse_event_str(s: &str) -> Result<Option<XmlEvent>, String> {
    let mut r = Reader::from_reader(s.as_bytes());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r
            .read_event_into(&mut buf)
            .map_err(|e| format!("bad XML: {e}"))?
        {
            Event::Start(e)
                if matches!(
                    e.local_name().as_ref(),
                    b"Event" | b"EventData" | b"UserData"
                ) =>
            {
                let end = e.name().as_ref().to_vec();
                if e.local_name().as_ref() == b"Event" {
                    return read_event(&mut r, &end, false);
                }
                let mut x = XmlEvent::default();
                let user = e.local_name().as_ref() == b"UserData";
                read_data(&mut r, &end, user, &mut x.fields)?;
                return Ok(Some(x));
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
    }
}

/// Text being collected for one element.
enum Target {
    EventId,
    Channel,
    Computer,
}

/// Reads an `<Event>` after its start tag, through its end tag. With
/// `filter`, an event that is not a wanted Sysmon/Security one is skipped
/// once its `<System>` is read, and `None` returned.
fn read_event<R: BufRead>(
    r: &mut Reader<R>,
    end: &[u8],
    filter: bool,
) -> Result<Option<XmlEvent>, String> {
    let mut x = XmlEvent::default();
    let mut buf = Vec::new();
    let err = |e: quick_xml::Error| format!("bad XML: {e}");
    loop {
        buf.clear();
        match r.read_event_into(&mut buf).map_err(err)? {
            Event::Start(e) => {
                let name = e.name().as_ref().to_vec();
                match e.local_name().as_ref() {
                    b"System" => {
                        read_system(r, &name, &mut x)?;
                        let wanted = x
                            .provider()
                            .zip(x.event_id)
                            .is_some_and(|(p, id)| p.wants(id));
                        if filter && !wanted {
                            let mut skip = Vec::new();
                            r.read_to_end_into(quick_xml::name::QName(end), &mut skip)
                                .map_err(err)?;
                            return Ok(None);
                        }
                    }
                    b"EventData" => read_data(r, &name, false, &mut x.fields)?,
                    b"UserData" => read_data(r, &name, true, &mut x.fields)?,
                    _ => {
                        let mut skip = Vec::new();
                        r.read_to_end_into(quick_xml::name::QName(&name), &mut skip)
                            .map_err(err)?;
                    }
                }
            }
            Event::End(e) if e.name().as_ref() == end => return Ok(Some(x)),
            Event::Eof => return Err("the input ends inside this event".into()),
            _ => {}
        }
    }
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.try_get_attribute(name).ok().flatten().and_then(|a| {
        a.normalized_value(quick_xml::XmlVersion::default())
            .ok()
            .map(Cow::into_owned)
    })
}

/// Appends an entity or character reference's text.
fn push_ref(text: &mut String, r: &BytesRef<'_>) {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        text.push(c);
    } else if let Ok(name) = r.decode() {
        match quick_xml::escape::resolve_predefined_entity(&name) {
            Some(s) => text.push_str(s),
            None => {
                text.push('&');
                text.push_str(&name);
                text.push(';');
            }
        }
    }
}

fn read_system<R: BufRead>(r: &mut Reader<R>, end: &[u8], x: &mut XmlEvent) -> Result<(), String> {
    let mut buf = Vec::new();
    let mut target = None;
    let mut text = String::new();
    let err = |e: quick_xml::Error| format!("bad XML: {e}");
    loop {
        buf.clear();
        match r.read_event_into(&mut buf).map_err(err)? {
            Event::Start(e) | Event::Empty(e) => {
                match e.local_name().as_ref() {
                    b"Provider" => {
                        x.provider_name =
                            attr(&e, b"Name").or_else(|| attr(&e, b"EventSourceName"));
                    }
                    b"TimeCreated" => {
                        x.time = attr(&e, b"SystemTime").and_then(|t| Timestamp::parse_rfc3339(&t));
                    }
                    b"Execution" => {
                        x.execution_pid = attr(&e, b"ProcessID")
                            .and_then(|p| winlog::parse_num(&p))
                            .and_then(|p| u32::try_from(p).ok());
                    }
                    b"EventID" => target = Some(Target::EventId),
                    b"Channel" => target = Some(Target::Channel),
                    b"Computer" => target = Some(Target::Computer),
                    _ => target = None,
                }
                text.clear();
            }
            Event::Text(t) if target.is_some() => {
                text.push_str(&t.decode().map_err(|e| format!("bad XML: {e}"))?);
            }
            Event::GeneralRef(g) if target.is_some() => push_ref(&mut text, &g),
            Event::End(e) => {
                if e.name().as_ref() == end {
                    return Ok(());
                }
                let v = text.trim();
                match target.take() {
                    Some(Target::EventId) => {
                        x.event_id = winlog::parse_num(v).and_then(|v| u32::try_from(v).ok())
                    }
                    Some(Target::Channel) => x.channel = Some(v.to_owned()),
                    Some(Target::Computer) => x.computer = Some(v.to_owned()),
                    None => {}
                }
                text.clear();
            }
            Event::Eof => return Err("the input ends inside <System>".into()),
            _ => {}
        }
    }
}

/// `<EventData>`: `<Data Name="X">v</Data>`, an unnamed `<Data>` as `Data`
/// (Windows PowerShell's strings, kept one a line); `<UserData>`: every
/// leaf element under its own name.
fn read_data<R: BufRead>(
    r: &mut Reader<R>,
    end: &[u8],
    user: bool,
    f: &mut Fields<'static>,
) -> Result<(), String> {
    let mut buf = Vec::new();
    let mut name: Option<String> = None;
    let mut text = String::new();
    let err = |e: quick_xml::Error| format!("bad XML: {e}");
    loop {
        buf.clear();
        match r.read_event_into(&mut buf).map_err(err)? {
            Event::Start(e) => {
                name = if user {
                    Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
                } else if e.local_name().as_ref() == b"Data" {
                    attr(&e, b"Name").or_else(|| Some("Data".to_owned()))
                } else {
                    None
                };
                text.clear();
            }
            Event::Empty(e) => {
                let n = if user {
                    Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
                } else {
                    attr(&e, b"Name")
                        .or_else(|| (e.local_name().as_ref() == b"Data").then(|| "Data".to_owned()))
                };
                if let Some(n) = n.filter(|n| Fields::reads(n)) {
                    f.set(&n, Flex::Str(Cow::Owned(String::new())));
                }
            }
            Event::Text(t) if name.is_some() => {
                text.push_str(&t.decode().map_err(|e| format!("bad XML: {e}"))?);
            }
            Event::CData(t) if name.is_some() => {
                text.push_str(&t.decode().map_err(|e| format!("bad XML: {e}"))?);
            }
            Event::GeneralRef(g) if name.is_some() => push_ref(&mut text, &g),
            Event::End(e) => {
                if e.name().as_ref() == end {
                    return Ok(());
                }
                if let Some(n) = name.take().filter(|n| Fields::reads(n)) {
                    f.set(&n, Flex::Str(Cow::Owned(std::mem::take(&mut text))));
                }
                text.clear();
            }
            Event::Eof => return Err("the input ends inside the event data".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: &str = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' Guid='{54849625-5478-4994-a5ba-3e3b0328c30d}'/><EventID>4688</EventID><Version>2</Version><TimeCreated SystemTime='2020-09-20T21:09:08.706641100Z'/><EventRecordID>7</EventRecordID><Channel>Security</Channel><Computer>WS6.corp</Computer><Security/></System><EventData><Data Name='SubjectUserName'>WS6$</Data><Data Name='NewProcessId'>0x234c</Data><Data Name='NewProcessName'>C:\\Windows\\System32\\wsmprovhost.exe</Data><Data Name='ProcessId'>0x3c0</Data><Data Name='CommandLine'>a &amp; b &#x41;</Data><Data Name='TargetUserName'/></EventData></Event>";

    #[test]
    fn one_event_string_is_read() {
        let x = parse_event_str(EV).unwrap().unwrap();
        assert_eq!(x.provider(), Some(Provider::Security));
        assert_eq!(x.event_id, Some(4688));
        assert_eq!(x.computer.as_deref(), Some("WS6.corp"));
        assert_eq!(
            x.fields.CommandLine.as_ref().and_then(Flex::as_str),
            Some("a & b A")
        );
        assert_eq!(
            x.fields.NewProcessId.as_ref().and_then(Flex::as_u32),
            Some(0x234c)
        );
        let mut items = Vec::new();
        let mut sink = |i| items.push(i);
        let mut cx = Cx {
            sink: &mut sink,
            on_records: &|_| {},
            on_bytes: &|_| {},
            on_read: &|_| {},
            zip: &crate::replay::format::ZipLimits::default(),
            depth: 0,
            dialect: None,
        };
        let html = Payload::Stream(Box::new(&b"<html><body/></html>"[..]));
        let e = Xml.decode(html, &mut cx).unwrap_err();
        assert!(e.contains("root is <html>"), "{e}");
        let frag = parse_event_str("<EventData><Data Name='ProcessId'>12</Data></EventData>")
            .unwrap()
            .unwrap();
        assert_eq!(
            frag.fields.ProcessId.as_ref().and_then(Flex::as_u32),
            Some(12)
        );
    }
}

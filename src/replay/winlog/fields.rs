//! The event-data values as exports write them ([`Flex`]) and the one
//! list of field names the mapping reads ([`Fields`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::event::Guid;

/// A JSON scalar that exports write either as a number or as a string
/// (`"ProcessId": 960` in EVTX, `"960"` in NXLog, `"0x3c0"` in 4688), or as
/// an EVTX `{"#text": …}` element with attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Flex<'a> {
    /// A string, borrowed from the input when it had no escapes.
    Str(Cow<'a, str>),
    /// An unsigned integer.
    UInt(u64),
    /// A signed integer (NXLog writes `Keywords` this way).
    Int(i64),
    /// A GUID read as binary (EVTX template values).
    Guid(Guid),
    /// A boolean (Sysmon's `Initiated` rendered from EVTX: `true`).
    Bool(bool),
    /// Anything else (null, float, object without `#text`).
    Other,
}

impl<'a> Flex<'a> {
    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Flex::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned number: decimal, or hex with `0x`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Flex::UInt(v) => Some(*v),
            Flex::Int(v) => u64::try_from(*v).ok(),
            Flex::Str(s) => parse_num(s),
            Flex::Guid(_) | Flex::Bool(_) | Flex::Other => None,
        }
    }

    /// The value as a boolean: `true`/`false` in any case, a JSON or
    /// EVTX boolean, or `1`/`0`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Flex::Bool(b) => Some(*b),
            Flex::UInt(v) => Some(*v != 0),
            Flex::Str(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Flex::Str(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            Flex::Str(s) => parse_num(s).map(|v| v != 0),
            _ => None,
        }
    }

    /// The value as a 32-bit number (PIDs, event ids, session ids).
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }
}

/// Parses `"960"` or `"0x3c0"` (Security writes PIDs as hex strings).
pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Flex<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Flex<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Flex::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Flex::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Flex::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Flex::UInt(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(if v >= 0 {
                    Flex::UInt(v as u64)
                } else {
                    Flex::Int(v)
                })
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Flex::Other)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Flex::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Flex::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Flex::Other)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(self)
            }
            // Unnamed `<Data>` strings (Windows PowerShell 400/403/800) render
            // as `"Data": {"#text": ["…", "…"]}`: their strings, one a line.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out: Option<String> = None;
                while let Some(v) = a.next_element::<Flex<'de>>()? {
                    if let Flex::Str(s) = v {
                        join(&mut out, &s);
                    }
                }
                Ok(out.map_or(Flex::Other, |s| Flex::Str(Cow::Owned(s))))
            }
            // EVTX renders `<EventID Qualifiers="0">4688</EventID>` as
            // `{"#attributes": {...}, "#text": 4688}`.
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Flex::Other;
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    if k == "#text" {
                        out = m.next_value()?;
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Appends `s` to `out` on a line of its own.
fn join(out: &mut Option<String>, s: &str) {
    match out {
        Some(o) => {
            o.push('\n');
            o.push_str(s);
        }
        None => *out = Some(s.to_owned()),
    }
}

/// Declares [`Fields`] from one list of names: the struct serde fills,
/// and the by-name setter the EVTX template and XML readers use.
macro_rules! fields {
    ($($(#[doc = $d:literal])+ $name:ident,)+) => {
        /// The event-data fields wsmwatch reads, under the names every
        /// container uses. Unknown fields are skipped without being built.
        #[allow(non_snake_case)]
        #[derive(Debug, Default, Deserialize)]
        #[serde(default)]
        pub struct Fields<'a> {
            $($(#[doc = $d])+ #[serde(borrow)] pub $name: Option<Flex<'a>>,)+
        }

        impl<'a> Fields<'a> {
            /// Every name [`Fields::set`] keeps.
            const NAMES: &'static [&'static str] = &[$(stringify!($name)),+];

            /// The field called `name`.
            fn slot(&mut self, name: &str) -> Option<&mut Option<Flex<'a>>> {
                Some(match name {
                    $(stringify!($name) => &mut self.$name,)+
                    _ => return None,
                })
            }
        }
    };
}

fields! {
    /// Sysmon: creation or exit time, UTC, `2020-09-20 21:09:08.706`.
    UtcTime,
    /// Sysmon.
    ProcessGuid,
    /// Sysmon: the process; 4688: the creator; 4689: the exiting one;
    /// 4624: the logon process; 5156 as NXLog renames it.
    ProcessId,
    /// Security 5156: the process of the connection.
    ProcessID,
    /// Sysmon.
    Image,
    /// Sysmon, 4688 (when command-line auditing is on).
    CommandLine,
    /// Sysmon.
    User,
    /// Sysmon.
    ParentProcessGuid,
    /// Sysmon.
    ParentProcessId,
    /// Sysmon.
    ParentImage,
    /// Sysmon.
    TerminalSessionId,
    /// Sysmon 1: the logon session (LUID), hex.
    LogonId,
    /// Security 4688.
    NewProcessId,
    /// Security 4688.
    NewProcessName,
    /// Security 4688 (version 2 and later).
    ParentProcessName,
    /// Security 4688/4689: who created it or whose process exited.
    SubjectUserName,
    /// Security.
    SubjectDomainName,
    /// Security 4688: the creator's logon session.
    SubjectLogonId,
    /// Security 4688 v2, 4624, 4634: the account the new process or logon is.
    TargetUserName,
    /// Security 4688 v2, 4624, 4634.
    TargetDomainName,
    /// Security 4688 v2 (`0x0` when it is the creator's), 4624, 4634, 4647.
    TargetLogonId,
    /// Security 4689, 4624.
    ProcessName,
    /// Security 4689: exit status, hex.
    Status,
    /// Security 4624, 4634.
    LogonType,
    /// Security 4624.
    AuthenticationPackageName,
    /// Security 4624: the client's address.
    IpAddress,
    /// Security 4624.
    IpPort,
    /// Security 4624: the client's name.
    WorkstationName,
    /// Sysmon 3 (`tcp`), 5156 (`6`).
    Protocol,
    /// Sysmon 3: `true` when this host made the connection.
    Initiated,
    /// Sysmon 3.
    SourceIp,
    /// Sysmon 3.
    SourceHostname,
    /// Sysmon 3, 5156.
    SourcePort,
    /// Sysmon 3.
    DestinationIp,
    /// Sysmon 3.
    DestinationHostname,
    /// Sysmon 3.
    DestinationPort,
    /// Security 5156: `%%14592` inbound, `%%14593` outbound.
    Direction,
    /// Security 5156: the process image, an NT path.
    Application,
    /// Security 5156.
    SourceAddress,
    /// Security 5156.
    DestAddress,
    /// Security 5156.
    DestPort,
    /// PowerShell 4103: `Key = Value` lines (host, runspace, command, user).
    ContextInfo,
    /// PowerShell 4103: `CommandInvocation(…)`, `ParameterBinding(…)` lines.
    Payload,
    /// PowerShell 4104: this part's number, from 1.
    MessageNumber,
    /// PowerShell 4104: how many parts.
    MessageTotal,
    /// PowerShell 4104: this part of the script block.
    ScriptBlockText,
    /// PowerShell 4104.
    ScriptBlockId,
    /// Windows PowerShell 400/403/800: the unnamed `<Data>` strings, one a
    /// line (`Key=Value` lines among them).
    Data,
    /// Windows PowerShell as Winlogbeat names the unnamed strings.
    param1,
    /// Windows PowerShell (Winlogbeat).
    param2,
    /// Windows PowerShell (Winlogbeat).
    param3,
    /// NXLog keeps the rendered message; some exports carry fields only there.
    Message,
}

impl<'a> Fields<'a> {
    /// True for the field names [`Fields::set`] keeps.
    pub fn reads(name: &str) -> bool {
        Self::NAMES.contains(&name)
    }

    /// Sets the field called `name` (the names every container uses);
    /// unknown names are ignored. For readers that do not go through serde.
    /// Unnamed `<Data>` strings arrive one by one under the same name and
    /// are kept one a line.
    pub fn set(&mut self, name: &str, v: Flex<'a>) {
        let Some(slot) = self.slot(name) else {
            return;
        };
        match (name, slot.take(), v) {
            ("Data", Some(Flex::Str(old)), Flex::Str(new)) => {
                let mut out = Some(old.into_owned());
                join(&mut out, &new);
                *slot = out.map(|s| Flex::Str(Cow::Owned(s)));
            }
            (_, _, v) => *slot = Some(v),
        }
    }
}

//! FILETIME-precision timestamps.
//!
//! Windows reports every process time as a FILETIME (100 ns ticks since
//! 1601-01-01 UTC). Keeping that unit end to end means no precision is lost
//! between the ETW payload, the table's parent/child ordering and the alert.
//! Conversion to and from RFC 3339 is hand-rolled (civil-from-days) so the
//! core needs no date crate and formats without allocation-heavy machinery.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// 100 ns ticks between 1601-01-01 and 1970-01-01.
const UNIX_EPOCH_TICKS: u64 = 116_444_736_000_000_000;
const TICKS_PER_SEC: u64 = Timestamp::TICKS_PER_SEC;
/// 10000-01-01T00:00:00Z: the first instant RFC 3339's four-digit year
/// cannot write. FILETIME goes on to year 60056.
const YEAR_10000_TICKS: u64 = 253_402_300_800 * TICKS_PER_SEC + UNIX_EPOCH_TICKS;

/// A point in time as a Windows FILETIME (100 ns since 1601-01-01 UTC).
///
/// Serialised as RFC 3339 UTC with seven fractional digits
/// (`2020-09-20T21:09:08.7060000Z`); deserialised from that form, from any
/// RFC 3339 offset, or from a bare integer FILETIME.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// 100 ns ticks per second.
    pub const TICKS_PER_SEC: u64 = 10_000_000;

    /// This instant `secs` seconds earlier (later if negative), clamped to
    /// the FILETIME range: how a host-local time is moved to UTC.
    pub fn minus_secs(self, secs: i64) -> Timestamp {
        let t = self.0 as i128 - secs as i128 * TICKS_PER_SEC as i128;
        Timestamp(t.clamp(0, u64::MAX as i128) as u64)
    }

    /// The FILETIME value.
    pub const fn filetime(self) -> u64 {
        self.0
    }

    /// From Unix seconds and nanoseconds. Times before 1601 clamp to zero.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let ticks = (secs as i128) * TICKS_PER_SEC as i128
            + (nanos / 100) as i128
            + UNIX_EPOCH_TICKS as i128;
        Timestamp(ticks.clamp(0, u64::MAX as i128) as u64)
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_unix(d.as_secs() as i64, d.subsec_nanos())
    }

    /// Unix seconds (may be negative for pre-1970 times) and the 100 ns remainder.
    fn unix_parts(self) -> (i64, u32) {
        let t = self.0 as i128 - UNIX_EPOCH_TICKS as i128;
        let secs = t.div_euclid(TICKS_PER_SEC as i128) as i64;
        let frac = t.rem_euclid(TICKS_PER_SEC as i128) as u32;
        (secs, frac)
    }

    /// Whole milliseconds from `earlier` to `self` (saturating at zero).
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0) / 10_000
    }

    /// Absolute distance between two times, in 100 ns ticks.
    pub fn abs_diff(self, other: Timestamp) -> u64 {
        self.0.abs_diff(other.0)
    }

    /// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fffffff](Z|±HH:MM)`); a space may
    /// replace the `T`, and a missing zone means UTC (Sysmon's `UtcTime`).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.trim().as_bytes();
        if b.len() < 19 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let mut v = 0i64;
            for &c in b.get(r)? {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + (c - b'0') as i64;
            }
            Some(v)
        };
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let mut i = 19;
        let mut frac_ticks = 0u64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 7 {
                    frac_ticks = frac_ticks * 10 + (b[i] - b'0') as u64;
                }
                i += 1;
            }
            let digits = i - start;
            if digits == 0 {
                return None;
            }
            for _ in digits..7 {
                frac_ticks *= 10;
            }
        }
        let offset_secs = match b.get(i) {
            None => 0,
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let o = oh * 3600 + om * 60;
                if sign == b'+' {
                    o
                } else {
                    -o
                }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo as u32, d as u32);
        let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
        let ts = Timestamp::from_unix(secs, 0);
        Some(Timestamp(ts.0.saturating_add(frac_ticks)))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, frac) = self.unix_parts();
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:07}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Past year 9999 the text would have a five-digit year, which no RFC
        // 3339 reader (ours included) takes back, so a recording of a hostile
        // payload's time would not replay. The bare FILETIME does (fuzzing
        // found it: etw_payload, native_lines).
        if self.0 >= YEAR_10000_TICKS {
            s.serialize_u64(self.0)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or an integer FILETIME")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                u64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("negative FILETIME"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .ok_or_else(|| E::custom(format!("not an RFC 3339 time: {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_filetime_from_perfview_ground_truth() {
        // GROUND_TRUTH.md: CreateTime 132404548233564008 = 2020-07-29T00:07:03.356400Z
        let t = Timestamp(132_404_548_233_564_008);
        assert_eq!(t.to_string(), "2020-07-29T00:07:03.3564008Z");
    }

    #[test]
    fn parses_what_it_prints_and_offsets() {
        for s in [
            "2020-09-20T21:09:08.7060000Z",
            "1601-01-01T00:00:00.0000000Z",
            "2038-01-19T03:14:08.0000001Z",
            "2000-02-29T23:59:59.9999999Z",
        ] {
            let t = Timestamp::parse_rfc3339(s).unwrap();
            assert_eq!(t.to_string(), s);
        }
        let a = Timestamp::parse_rfc3339("2020-09-20 21:09:08.706").unwrap();
        let b = Timestamp::parse_rfc3339("2020-09-20T17:09:08.706-04:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2020-09-20T21:09:08.7060000Z");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2020-13-01T00:00:00Z",
            "2020-01-01T00:00:00+0400",
            "x020-01-01T00:00:00Z",
            "2020-01-01T00:00:00.Z",
        ] {
            assert!(Timestamp::parse_rfc3339(s).is_none(), "{s}");
        }
    }

    #[test]
    fn serde_round_trip_and_integer_form() {
        let t = Timestamp(132_404_548_233_564_008);
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&j).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("132404548233564008").unwrap(),
            t
        );
        assert!(serde_json::from_str::<Timestamp>("-5").is_err());
    }

    /// Fuzz regression (etw_payload, native_lines): times past 9999-12-31
    /// serialised as five-digit years that did not parse back.
    #[test]
    fn times_past_year_9999_round_trip_as_filetime() {
        let last = Timestamp::parse_rfc3339("9999-12-31T23:59:59.9999999Z").unwrap();
        assert_eq!(last.0 + 1, YEAR_10000_TICKS);
        assert_eq!(
            serde_json::to_string(&last).unwrap(),
            "\"9999-12-31T23:59:59.9999999Z\""
        );
        // The create time of the etw_payload crash, the time of the
        // native_lines one, the largest FILETIME, and the year 10000 an
        // offset pushes "9999-12-31T23:59:60-23:59" into.
        let offset = Timestamp::parse_rfc3339("9999-12-31T23:59:60-23:59").unwrap();
        for t in [
            Timestamp(14_644_081_089_526_246_970),
            Timestamp(13_240_454_823_360_000_000),
            Timestamp(YEAR_10000_TICKS),
            Timestamp(u64::MAX),
            offset,
        ] {
            let j = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Timestamp>(&j).unwrap(), t, "{j}");
        }
        assert_eq!(
            serde_json::to_string(&Timestamp(u64::MAX)).unwrap(),
            u64::MAX.to_string()
        );
    }
}

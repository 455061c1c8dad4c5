//! Stable process identity: `process.entity_id` and `wsmwatch.session.id`.
//!
//! An id must name one process across hosts, runs, and live tracing versus a
//! replay of the same evidence, so it is built only from what the process
//! itself carries, never from counters of this run:
//!
//! * a Sysmon `ProcessGuid` (`ProcessKey::Guid`) is used as it is, braced and
//!   lower case (`{6b166d8a-…}`), so alerts join with the Sysmon records;
//! * otherwise the first 128 bits of SHA-256 over the host, the pid and the
//!   precise creation time (FILETIME ticks), as 32 lower-case hex digits. A
//!   pid and a creation time name one process on one host: this holds for
//!   ETW sequence numbers too (they restart at each boot and no source gives
//!   a boot id, but the creation time already tells boots apart), so a live
//!   Windows process and its replay from a recording get the same id;
//! * with no creation time, the ETW sequence number stands in for it, or
//!   (for a placeholder known only from a child's record) nothing does.
//!
//! The host is compared as joins compare it (`attribution::host_key`: the
//! first label, lower case), because one export names a host `WKS6` in one
//! channel and `WKS6.corp.example` in another.

use sha2::{Digest, Sha256};

use crate::detect::attribution::host_key;
use crate::event::{ProcessKey, Timestamp};

/// The `process.entity_id` of a process.
pub fn entity_id(
    host: &str,
    key: &ProcessKey,
    pid: Option<u32>,
    created: Option<Timestamp>,
) -> String {
    if let ProcessKey::Guid(g) = key {
        return g.to_string();
    }
    let pid = pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
    let when = match (created, key) {
        (Some(t), _) => format!("t{}", t.0),
        (None, ProcessKey::Sequence(s)) => format!("s{s}"),
        (None, ProcessKey::CreateTime(t)) => format!("t{}", t.0),
        (None, ProcessKey::Guid(_)) => "?".to_owned(),
    };
    hashed(&format!(
        "wsmwatch-entity-v1\0{}\0{pid}\0{when}",
        host_key(Some(host))
    ))
}

/// First 128 bits of SHA-256, hex.
fn hashed(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Guid;

    #[test]
    fn a_guid_is_the_id() {
        let g = Guid::parse("{6B166D8A-1F2E-5F1B-0000-00100A1B2C3D}").unwrap();
        let id = entity_id("h", &ProcessKey::Guid(g), Some(4), None);
        assert_eq!(id, "{6b166d8a-1f2e-5f1b-0000-00100a1b2c3d}");
    }

    #[test]
    fn ids_are_fixed_format_and_differ_by_host_pid_and_time() {
        let t = Timestamp(132_000_000_000_000_000);
        let k = ProcessKey::CreateTime(t);
        let a = entity_id("WKS1", &k, Some(960), Some(t));
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        // The same pid and time on two hosts, and another pid or time.
        assert_ne!(a, entity_id("WKS2", &k, Some(960), Some(t)));
        assert_ne!(a, entity_id("WKS1", &k, Some(961), Some(t)));
        assert_ne!(
            a,
            entity_id("WKS1", &k, Some(960), Some(Timestamp(t.0 + 1)))
        );
        // One host named two ways in one export.
        assert_eq!(a, entity_id("wks1.corp.example", &k, Some(960), Some(t)));
        // Live (a sequence key) and replay (a creation-time key) agree.
        assert_eq!(
            a,
            entity_id("WKS1", &ProcessKey::Sequence(10_005), Some(960), Some(t))
        );
        // `seq:10005` and `960@0` no longer collide with anything of the
        // other kind.
        assert_ne!(
            entity_id("", &ProcessKey::Sequence(10_005), Some(960), None),
            entity_id("", &ProcessKey::CreateTime(Timestamp(0)), Some(960), None)
        );
    }
}

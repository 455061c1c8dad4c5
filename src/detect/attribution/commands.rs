//! PowerShell records as session commands: long texts cut with their size
//! and hash, and script blocks split across several 4104 records put back
//! together.

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::facts::{CommandFacts, TextFacts};
use crate::activity::{Command, CommandKind};
use crate::event::Timestamp;

/// Longest text an alert carries, in bytes; the rest is counted and
/// hashed. A script block can be megabytes; a SIEM field should not be.
pub(crate) const MAX_TEXT: usize = 4096;
/// Split script blocks waiting for their other parts, at most.
const MAX_PENDING: usize = 1024;

/// A text cut at `MAX_TEXT` bytes (on a character boundary), with the
/// full length and SHA-256.
pub fn text_facts(s: &str) -> TextFacts {
    let mut cut = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = Sha256::digest(s.as_bytes());
    TextFacts {
        text: s[..cut].to_owned(),
        length: s.len(),
        sha256: hash.iter().map(|b| format!("{b:02x}")).collect(),
        truncated: cut < s.len(),
    }
}

fn event_id(kind: CommandKind) -> u32 {
    match kind {
        CommandKind::Pipeline => 4103,
        CommandKind::ScriptBlock => 4104,
        CommandKind::EngineStart => 400,
        CommandKind::EngineStop => 403,
        CommandKind::PipelineDetails => 800,
    }
}

/// The alert facts of one command record.
pub(crate) fn command_facts(c: &Command, attributed_by: &'static str) -> CommandFacts {
    fn nonempty(s: &Option<String>) -> Option<&str> {
        s.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    CommandFacts {
        event_id: event_id(c.kind),
        name: nonempty(&c.name).map(str::to_owned),
        value: nonempty(&c.value).map(text_facts),
        script_block: nonempty(&c.script_block_text).map(text_facts),
        script_block_id: nonempty(&c.script_block_id).map(str::to_owned),
        parts: None,
        runspace_id: nonempty(&c.runspace_id).map(str::to_owned),
        connected_user: nonempty(&c.connected_user).map(str::to_owned),
        attributed_by,
    }
}

#[derive(Debug)]
struct Pending {
    total: u32,
    parts: FxHashMap<u32, String>,
    first: Command,
    time: Timestamp,
    order: u64,
}

/// Split script blocks (4104 `MessageNumber` of `MessageTotal`) waiting
/// for their other parts, by session and script block id.
#[derive(Debug, Default)]
pub struct ScriptBlocks {
    pending: FxHashMap<(u32, String), Pending>,
    next: u64,
}

/// A script block ready to report: the first record's fields, the whole
/// text, when its first part was logged, and how many parts there were.
pub(crate) struct Assembled {
    pub(crate) command: Command,
    pub(crate) time: Timestamp,
    pub(crate) parts: (u32, u32),
}

impl ScriptBlocks {
    /// Takes one part; returns the whole block once every part is in. A
    /// block in one record comes straight back.
    pub(crate) fn add(&mut self, session: u32, c: &Command, time: Timestamp) -> Option<Assembled> {
        let total = c.parts.unwrap_or(1).max(1);
        let (Some(id), true) = (c.script_block_id.clone(), total > 1) else {
            return Some(Assembled {
                command: c.clone(),
                time,
                parts: (1, 1),
            });
        };
        let key = (session, id);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            // Never unbounded: the oldest waiting block is dropped (it is
            // reported incomplete by `take_session` only while it waits).
            if let Some(old) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.order)
                .map(|(k, _)| k.clone())
            {
                self.pending.remove(&old);
            }
        }
        self.next += 1;
        let order = self.next;
        let p = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            total,
            parts: FxHashMap::default(),
            first: c.clone(),
            time,
            order,
        });
        let n = c.part.unwrap_or(1);
        p.parts
            .entry(n)
            .or_insert_with(|| c.script_block_text.clone().unwrap_or_default());
        if n < p.first.part.unwrap_or(u32::MAX) {
            p.first = c.clone();
            p.time = p.time.min(time);
        }
        if p.parts.len() as u32 >= p.total {
            let p = self.pending.remove(&key)?;
            return Some(Self::join(p));
        }
        None
    }

    fn join(p: Pending) -> Assembled {
        let mut nums: Vec<u32> = p.parts.keys().copied().collect();
        nums.sort_unstable();
        let mut text = String::new();
        for n in &nums {
            text.push_str(&p.parts[n]);
        }
        let mut command = p.first;
        command.script_block_text = Some(text);
        Assembled {
            command,
            time: p.time,
            parts: (nums.len() as u32, p.total),
        }
    }

    /// The blocks of a session that ended with parts still missing,
    /// reported as they are.
    pub(crate) fn take_session(&mut self, session: u32) -> Vec<Assembled> {
        let keys: Vec<_> = self
            .pending
            .keys()
            .filter(|k| k.0 == session)
            .cloned()
            .collect();
        let mut out: Vec<Assembled> = keys
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .map(Self::join)
            .collect();
        out.sort_by_key(|a| a.time);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: &str, n: u32, of: u32, text: &str) -> Command {
        Command {
            kind: CommandKind::ScriptBlock,
            script_block_text: Some(text.into()),
            script_block_id: Some(id.into()),
            part: Some(n),
            parts: Some(of),
            ..Command::default()
        }
    }

    #[test]
    fn text_is_cut_on_a_char_boundary_with_its_hash() {
        let short = text_facts("Get-Process");
        assert!(!short.truncated);
        assert_eq!(short.length, 11);
        // echo -n Get-Process | sha256sum
        assert_eq!(
            short.sha256,
            "b22ffb0a3b141dda48297c9ae0400c863ec75128f519e0458695a3e4ec324f87"
        );
        assert_eq!(short.sha256.len(), 64);
        let long = "é".repeat(MAX_TEXT);
        let f = text_facts(&long);
        assert!(f.truncated);
        assert_eq!(f.length, 2 * MAX_TEXT);
        assert!(f.text.len() <= MAX_TEXT && f.text.len() >= MAX_TEXT - 1);
    }

    #[test]
    fn split_blocks_come_back_whole_in_part_order() {
        let mut b = ScriptBlocks::default();
        let t = Timestamp(1);
        assert!(b.add(7, &part("x", 2, 3, "b"), t).is_none());
        assert!(b.add(7, &part("x", 3, 3, "c"), t).is_none());
        // A repeated part changes nothing.
        assert!(b.add(7, &part("x", 2, 3, "b"), t).is_none());
        let a = b.add(7, &part("x", 1, 3, "a"), Timestamp(0)).unwrap();
        assert_eq!(a.command.script_block_text.as_deref(), Some("abc"));
        assert_eq!(a.parts, (3, 3));
        assert_eq!(a.time, Timestamp(0));
        assert_eq!(a.command.part, Some(1));
        // Single-part blocks pass straight through.
        assert!(b.add(7, &part("y", 1, 1, "z"), t).is_some());
    }

    #[test]
    fn a_block_missing_parts_is_reported_at_session_end() {
        let mut b = ScriptBlocks::default();
        assert!(b.add(9, &part("x", 1, 3, "a"), Timestamp(5)).is_none());
        assert!(b.add(8, &part("q", 1, 2, "other"), Timestamp(5)).is_none());
        let left = b.take_session(9);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].parts, (1, 3));
        assert!(b.take_session(9).is_empty());
        assert_eq!(b.take_session(8).len(), 1);
    }
}

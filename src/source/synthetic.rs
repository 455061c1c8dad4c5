//! A deterministic synthetic process stream for benchmarks and soak tests.
//!
//! It looks like a busy Windows host: a boot snapshot, thousands of live
//! processes, short-lived children, PIDs recycled as soon as they are free
//! (so PID reuse is constant), and now and then a remote session with a few
//! commands. Same seed, same stream.

use crate::event::{Origin, ProcessEvent, ProcessKey, Timestamp};

/// Shape of the stream.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Events to generate.
    pub events: usize,
    /// Live processes the host hovers around.
    pub live: usize,
    /// Give events ETW sequence-number keys (Windows 10 1903+), or only
    /// pids and creation times (older builds, logs).
    pub sequence_keys: bool,
    /// One start in this many opens a remote session.
    pub session_every: u64,
    /// PRNG seed.
    pub seed: u64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            events: 1_000_000,
            live: 5_000,
            sequence_keys: true,
            session_every: 20_000,
            seed: 0x5eed,
        }
    }
}

const IMAGES: &[&str] = &[
    r"C:\Windows\System32\svchost.exe",
    r"C:\Windows\System32\conhost.exe",
    r"C:\Windows\System32\cmd.exe",
    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Windows\System32\RuntimeBroker.exe",
    r"C:\Windows\System32\taskhostw.exe",
    r"C:\Windows\System32\SearchProtocolHost.exe",
    r"C:\Windows\System32\backgroundTaskHost.exe",
    r"C:\Windows\System32\dllhost.exe",
    r"C:\Program Files\Microsoft VS Code\Code.exe",
    r"C:\Windows\System32\WerFault.exe",
    r"C:\Windows\System32\git.exe",
    r"C:\Windows\System32\msiexec.exe",
    r"C:\Windows\System32\whoami.exe",
    r"C:\Windows\System32\net.exe",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy)]
struct Live {
    pid: u32,
    seq: u64,
    created: Timestamp,
}

/// Generates the stream.
pub fn generate(p: Profile) -> Vec<ProcessEvent> {
    let mut rng = Rng(p.seed | 1);
    let mut out = Vec::with_capacity(p.events);
    let mut clock = Timestamp::from_unix(1_700_000_000, 0).filetime();
    let mut seq = 1u64;
    // Free pids, reused LIFO like Windows' handle table tends to.
    let mut free: Vec<u32> = (1..=(p.live as u32 * 4)).rev().map(|i| 8 + i * 4).collect();
    let mut live: Vec<Live> = Vec::with_capacity(p.live * 2);

    let push_start = |out: &mut Vec<ProcessEvent>,
                      live: &mut Vec<Live>,
                      pid: u32,
                      parent: Option<Live>,
                      image: &str,
                      origin: Origin,
                      clock: u64,
                      seq: &mut u64| {
        let t = Timestamp(clock);
        let mut e = ProcessEvent::start(t, pid, parent.map_or(0, |x| x.pid), image);
        e.origin = origin;
        e.creator_pid = parent.map(|x| x.pid);
        if p.sequence_keys {
            e.key = Some(ProcessKey::Sequence(*seq));
            e.parent_key = parent.map(|x| ProcessKey::Sequence(x.seq));
        }
        let l = Live {
            pid,
            seq: *seq,
            created: t,
        };
        *seq += 1;
        live.push(l);
        out.push(e);
        l
    };

    // Boot: System, services, a few svchost instances (WinRM's among them).
    let system = push_start(
        &mut out,
        &mut live,
        4,
        None,
        "System",
        Origin::Snapshot,
        clock,
        &mut seq,
    );
    let services = push_start(
        &mut out,
        &mut live,
        660,
        Some(system),
        r"C:\Windows\System32\services.exe",
        Origin::Snapshot,
        clock,
        &mut seq,
    );
    let winrm = push_start(
        &mut out,
        &mut live,
        1204,
        Some(services),
        IMAGES[0],
        Origin::Snapshot,
        clock,
        &mut seq,
    );
    free.retain(|&x| x != 4 && x != 660 && x != 1204);
    let roots = live.len();
    let mut session: Option<(Live, u32)> = None;

    while out.len() < p.events {
        clock += 1 + rng.below(20_000) as u64; // up to 2 ms apart
        let grow = live.len() < p.live || rng.below(2) == 0;
        if grow && !free.is_empty() {
            let Some(pid) = free.pop() else { break };
            let starts = seq;
            if p.session_every > 0 && starts % p.session_every == 0 && session.is_none() {
                let s = push_start(
                    &mut out,
                    &mut live,
                    pid,
                    Some(winrm),
                    r"C:\Windows\System32\wsmprovhost.exe",
                    Origin::Live,
                    clock,
                    &mut seq,
                );
                session = Some((s, 5));
                continue;
            }
            let parent = match &mut session {
                Some((s, left)) if *left > 0 && rng.below(4) == 0 => {
                    *left -= 1;
                    *s
                }
                _ => live[rng.below(live.len())],
            };
            let image = IMAGES[rng.below(IMAGES.len())];
            push_start(
                &mut out,
                &mut live,
                pid,
                Some(parent),
                image,
                Origin::Live,
                clock,
                &mut seq,
            );
        } else if live.len() > roots {
            let i = roots + rng.below(live.len() - roots);
            let gone = live.swap_remove(i);
            if session.is_some_and(|(s, _)| s.seq == gone.seq) {
                session = None;
            }
            let mut e = ProcessEvent::stop(Timestamp(clock), gone.pid, "");
            e.create_time = Some(gone.created);
            if p.sequence_keys {
                e.key = Some(ProcessKey::Sequence(gone.seq));
            }
            out.push(e);
            free.push(gone.pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn stream_is_deterministic_reuses_pids_and_has_sessions() {
        let p = Profile {
            events: 50_000,
            live: 500,
            session_every: 2_000,
            ..Profile::default()
        };
        let a = generate(p);
        assert_eq!(a, generate(p));
        let mut e = Engine::default();
        let alerts = e.run(&a);
        let s = e.stats();
        assert!(alerts
            .iter()
            .any(|x| x.action.as_str() == "remote_session_started"));
        assert!(alerts
            .iter()
            .any(|x| x.action.as_str() == "remote_session_activity"));
        assert_eq!(s.unresolved_parents, 0, "{s:?}");
        assert_eq!(s.unknown_stops, 0);
        // PIDs were reused: more starts than distinct pids.
        let pids: std::collections::HashSet<_> = a.iter().filter_map(|x| x.pid).collect();
        assert!(
            s.starts as usize > pids.len() * 2,
            "{} {}",
            s.starts,
            pids.len()
        );
    }
}

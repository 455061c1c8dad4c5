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

/// The stream, generated lazily: memory stays flat however long it runs.
pub struct Stream {
    p: Profile,
    rng: Rng,
    clock: u64,
    seq: u64,
    emitted: usize,
    free: Vec<u32>,
    live: Vec<Live>,
    roots: usize,
    winrm: Option<Live>,
    session: Option<(Live, u32)>,
    boot: std::vec::IntoIter<ProcessEvent>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl Stream {
    /// A stream of this shape.
    pub fn new(p: Profile) -> Self {
        let mut s = Stream {
            p,
            rng: Rng(p.seed | 1),
            clock: Timestamp::from_unix(1_700_000_000, 0).filetime(),
            seq: 1,
            emitted: 0,
            // Free pids, reused LIFO like Windows' handle table tends to.
            free: (1..=(p.live as u32 * 4)).rev().map(|i| 8 + i * 4).collect(),
            live: Vec::with_capacity(p.live * 2),
            roots: 0,
            winrm: None,
            session: None,
            boot: Vec::new().into_iter(),
        };
        // Boot: System, services, WinRM's svchost — already running.
        let mut boot = Vec::new();
        let system = s.start(&mut boot, 4, None, "System", Origin::Snapshot);
        let services = s.start(
            &mut boot,
            660,
            Some(system),
            r"C:\Windows\System32\services.exe",
            Origin::Snapshot,
        );
        s.winrm = Some(s.start(&mut boot, 1204, Some(services), IMAGES[0], Origin::Snapshot));
        s.free.retain(|&x| x != 4 && x != 660 && x != 1204);
        s.roots = s.live.len();
        s.boot = boot.into_iter();
        s
    }

    fn start(
        &mut self,
        out: &mut Vec<ProcessEvent>,
        pid: u32,
        parent: Option<Live>,
        image: &str,
        origin: Origin,
    ) -> Live {
        let t = Timestamp(self.clock);
        let mut e = ProcessEvent::start(t, pid, parent.map_or(0, |x| x.pid), image);
        e.origin = origin;
        e.creator_pid = parent.map(|x| x.pid);
        if self.p.sequence_keys {
            e.key = Some(ProcessKey::Sequence(self.seq));
            e.parent_key = parent.map(|x| ProcessKey::Sequence(x.seq));
        }
        let l = Live {
            pid,
            seq: self.seq,
            created: t,
        };
        self.seq += 1;
        self.live.push(l);
        out.push(e);
        l
    }

    fn step(&mut self) -> Option<ProcessEvent> {
        let mut out = Vec::with_capacity(1);
        while out.is_empty() {
            self.clock += 1 + self.rng.below(20_000) as u64; // up to 2 ms apart
                                                             // Above the target, lean towards exits so the live count hovers.
            let grow = self.live.len() < self.p.live || self.rng.below(100) < 45;
            if grow && !self.free.is_empty() {
                let pid = self.free.pop()?;
                if self.p.session_every > 0
                    && self.seq % self.p.session_every == 0
                    && self.session.is_none()
                {
                    let winrm = self.winrm;
                    let s = self.start(
                        &mut out,
                        pid,
                        winrm,
                        r"C:\Windows\System32\wsmprovhost.exe",
                        Origin::Live,
                    );
                    self.session = Some((s, 5));
                    continue;
                }
                let in_session =
                    matches!(self.session, Some((_, left)) if left > 0) && self.rng.below(4) == 0;
                let parent = match (&mut self.session, in_session) {
                    (Some((s, left)), true) => {
                        *left -= 1;
                        *s
                    }
                    _ => self.live[self.rng.below(self.live.len())],
                };
                let image = IMAGES[self.rng.below(IMAGES.len())];
                self.start(&mut out, pid, Some(parent), image, Origin::Live);
            } else if self.live.len() > self.roots {
                let i = self.roots + self.rng.below(self.live.len() - self.roots);
                let gone = self.live.swap_remove(i);
                if self.session.is_some_and(|(s, _)| s.seq == gone.seq) {
                    self.session = None;
                }
                let mut e = ProcessEvent::stop(Timestamp(self.clock), gone.pid, "");
                e.create_time = Some(gone.created);
                if self.p.sequence_keys {
                    e.key = Some(ProcessKey::Sequence(gone.seq));
                }
                out.push(e);
                self.free.push(gone.pid);
            }
        }
        out.pop()
    }
}

impl Iterator for Stream {
    type Item = ProcessEvent;

    fn next(&mut self) -> Option<ProcessEvent> {
        if self.emitted >= self.p.events {
            return None;
        }
        let e = match self.boot.next() {
            Some(e) => Some(e),
            None => self.step(),
        };
        self.emitted += e.is_some() as usize;
        e
    }
}

/// Generates the whole stream at once (benches time the engine, not this).
pub fn generate(p: Profile) -> Vec<ProcessEvent> {
    Stream::new(p).collect()
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

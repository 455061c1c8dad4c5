//! Property tests for the table and the engine (proptest).
//!
//! A simulated host spawns and reaps processes from a tiny PID pool, so PIDs
//! are reused constantly. Its true lineage is the oracle. Delivery is then
//! perturbed the ways real sources perturb it: starts delayed past their
//! parent's stop (ETW per-CPU buffers), records delivered twice (two log
//! channels), starts missing (processes from before the log began). Stops
//! are delivered in order: without sequence keys nothing can tell a late
//! stop of an old incarnation from a live one, which is why ETW v3+ keys
//! exist (the keyed case is tested with arbitrary delays).

use std::collections::HashMap;

use proptest::prelude::*;
use wsmwatch::engine::Engine;
use wsmwatch::event::{ProcessEvent, ProcessKey, Timestamp};
use wsmwatch::table::{ProcessTable, Start, TableConfig};

#[derive(Clone, Debug)]
enum Op {
    /// Spawn a child of the live process at this index (mod live count).
    Spawn {
        parent: usize,
        pid: usize,
        wsm: bool,
    },
    /// Exit the live process at this index.
    Exit { which: usize },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (any::<usize>(), 0usize..12, prop::bool::weighted(0.1))
                .prop_map(|(parent, pid, wsm)| Op::Spawn { parent, pid, wsm }),
            2 => any::<usize>().prop_map(|which| Op::Exit { which }),
        ],
        1..300,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Id {
    pid: u32,
    created: u64,
}

struct World {
    events: Vec<(u64, ProcessEvent)>,
    truth: HashMap<Id, Option<Id>>,
}

const T0: u64 = 130_000_000_000_000_000;
const SVCHOST: u32 = 900;

/// Runs the ops on a simulated host. Roots (pids 4 and 900, svchost) run
/// from before the trace and are announced as a snapshot.
fn simulate(ops: &[Op], keys: bool) -> World {
    let mut live: Vec<(Id, u64)> = Vec::new();
    let mut events = Vec::new();
    let mut truth = HashMap::new();
    let mut seq = 1u64;
    let mut t = T0;
    for (pid, image) in [
        (4u32, "System"),
        (SVCHOST, r"C:\Windows\System32\svchost.exe"),
    ] {
        let id = Id { pid, created: t };
        let mut e = ProcessEvent::start(Timestamp(t), pid, 0, image);
        e.origin = wsmwatch::event::Origin::Snapshot;
        if keys {
            e.key = Some(ProcessKey::Sequence(seq));
        }
        events.push((t, e));
        truth.insert(id, None);
        live.push((id, seq));
        seq += 1;
        t += 10;
    }
    let roots = live.len();
    for op in ops {
        t += 10_000;
        match *op {
            Op::Spawn { parent, pid, wsm } => {
                let pid = 1000 + pid as u32 * 4;
                // A pid can be held by one live process at a time.
                if live.iter().any(|(id, _)| id.pid == pid) {
                    continue;
                }
                let (pid_parent, pseq) = if wsm {
                    live[1]
                } else {
                    live[parent % live.len()]
                };
                let image = if wsm {
                    r"C:\Windows\System32\wsmprovhost.exe"
                } else {
                    "child.exe"
                };
                let id = Id { pid, created: t };
                let mut e = ProcessEvent::start(Timestamp(t), pid, pid_parent.pid, image);
                if keys {
                    e.key = Some(ProcessKey::Sequence(seq));
                    e.parent_key = Some(ProcessKey::Sequence(pseq));
                }
                events.push((t, e));
                truth.insert(id, Some(pid_parent));
                live.push((id, seq));
                seq += 1;
            }
            Op::Exit { which } => {
                if live.len() <= roots {
                    continue;
                }
                let i = roots + which % (live.len() - roots);
                let (id, s) = live.swap_remove(i);
                let mut e = ProcessEvent::stop(Timestamp(t), id.pid, "");
                e.create_time = Some(Timestamp(id.created));
                if keys {
                    e.key = Some(ProcessKey::Sequence(s));
                }
                events.push((t, e));
            }
        }
    }
    World { events, truth }
}

/// Delays starts (never stops, unless keyed), duplicates and drops some.
fn deliver(world: &World, perturb: &[(u8, u8)], keys: bool) -> Vec<ProcessEvent> {
    let mut out: Vec<(u64, usize, ProcessEvent)> = Vec::new();
    for (i, (t, e)) in world.events.iter().enumerate() {
        let (delay, fate) = perturb.get(i).copied().unwrap_or((0, 0));
        let is_start = e.kind == wsmwatch::event::EventKind::Start;
        let movable = is_start || keys;
        let d = if movable { delay as u64 * 7_000 } else { 0 };
        match fate % 10 {
            0 if is_start && i > 1 => continue, // missing start: unknown process
            1 => out.push((t + d + 1, i, e.clone())), // delivered twice
            _ => {}
        }
        out.push((t + d, i, e.clone()));
    }
    out.sort_by_key(|(t, i, _)| (*t, *i));
    out.into_iter().map(|(_, _, e)| e).collect()
}

fn config() -> TableConfig {
    TableConfig {
        tombstone_age: 50_000,
        max_tombstones: 16,
        max_ancestry: 16,
    }
}

fn check_resolution(keys: bool, ops: Vec<Op>, perturb: Vec<(u8, u8)>) -> Result<(), TestCaseError> {
    let world = simulate(&ops, keys);
    let mut table = ProcessTable::new(config());
    for e in deliver(&world, &perturb, keys) {
        match e.kind {
            wsmwatch::event::EventKind::Start => {
                if let Start::New(r) | Start::NewExited(r) = table.start(&e) {
                    let me = Id {
                        pid: e.pid.unwrap(),
                        created: e.created().unwrap().0,
                    };
                    if let Some(p) = table.parent(r) {
                        let p = table.get(p).unwrap();
                        let got = Id {
                            pid: p.pid().unwrap(),
                            created: p.create_time.0,
                        };
                        let want = world.truth[&me];
                        // Never a parent created after the child, never another
                        // incarnation of the parent's pid.
                        prop_assert!(got.created <= me.created, "{me:?} -> {got:?}");
                        prop_assert_eq!(Some(got), want, "child {:?}", me);
                    }
                }
            }
            wsmwatch::event::EventKind::Stop => {
                table.stop(&e);
            }
            wsmwatch::event::EventKind::Activity => {}
        }
        // Bounded: at most one live entry per pid, plus the tombstones.
        let pids = 12 + 2;
        prop_assert!(
            table.len() <= pids + 16 + 1,
            "table {} entries",
            table.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_the_wrong_parent_without_keys(
        ops in ops(),
        perturb in prop::collection::vec((0u8..4, any::<u8>()), 300),
    ) {
        check_resolution(false, ops, perturb)?;
    }

    #[test]
    fn never_the_wrong_parent_with_sequence_keys_and_any_delay(
        ops in ops(),
        perturb in prop::collection::vec((0u8..6, any::<u8>()), 300),
    ) {
        check_resolution(true, ops, perturb)?;
    }

    #[test]
    fn each_session_starts_at_most_once(
        ops in ops(),
        perturb in prop::collection::vec((0u8..4, any::<u8>()), 300),
        keys in any::<bool>(),
    ) {
        let world = simulate(&ops, keys);
        let mut engine = Engine::default();
        let alerts = engine.run(&deliver(&world, &perturb, keys));
        let mut started: HashMap<(u32, String), usize> = HashMap::new();
        for a in alerts.iter().filter(|a| a.action.as_str() == "remote_session_started") {
            let s = a.session.as_ref().unwrap();
            *started.entry((s.pid.unwrap(), s.id.clone())).or_default() += 1;
        }
        prop_assert!(started.values().all(|&n| n == 1), "{started:?}");
        // And each started session is a real wsmprovhost under svchost.
        for a in alerts.iter().filter(|a| a.action.as_str() == "remote_session_started") {
            prop_assert_eq!(a.parent.as_ref().unwrap().pid, Some(SVCHOST));
        }
    }
}

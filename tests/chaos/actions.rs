//! What happens to the servers during a run: the chaos task (kills, restarts, `500`s, stalls)
//! and the discovery churn task, both driven by a seeded generator.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use tower_mesh::discover::Watch;
use tower_mesh::endpoint::Endpoint;

use crate::MAX_BAD;
use crate::server::{Mode, Server};

/// What the chaos or churn task did.
#[derive(Debug, Default)]
pub(crate) struct Actions {
    /// `(when, what)`.
    pub(crate) log: Vec<(Duration, String)>,
    /// Ports of servers that were harmed (killed, answering `500`s, stalling) while in the
    /// balancer's set.
    pub(crate) failed: BTreeSet<u16>,
    pub(crate) removals: u64,
    pub(crate) insertions: u64,
}

impl Actions {
    fn note(&mut self, started: Instant, what: String) {
        self.log.push((started.elapsed(), what));
    }
}

/// What the chaos task may do to a good server.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Harm {
    Kill,
    Errors,
    Stall,
}

/// Half kills, a quarter `500`s, a quarter stalls.
pub(crate) const ANY_HARM: &[Harm] = &[Harm::Kill, Harm::Kill, Harm::Errors, Harm::Stall];

/// One chaos action a second for `duration` (the first after one second): restore a bad
/// server (restart it, or make it answer `200`s again), or do a good one a harm drawn from
/// `menu`, keeping at most [`MAX_BAD`] bad. The first action always harms (none is bad yet).
pub(crate) async fn chaos(
    mut servers: Vec<Server>,
    mut rng: Rng,
    duration: Duration,
    menu: &'static [Harm],
) -> (Vec<Server>, Actions) {
    let started = Instant::now();
    let mut actions = Actions::default();
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        tick.tick().await;
        if started.elapsed() + Duration::from_millis(500) > duration {
            break;
        }
        let bad: Vec<usize> = (0..servers.len())
            .filter(|&i| !servers[i].is_healthy())
            .collect();
        let good: Vec<usize> = (0..servers.len())
            .filter(|&i| servers[i].is_healthy())
            .collect();
        let restore = !bad.is_empty() && (bad.len() >= MAX_BAD || rng.below(3) == 0);
        if restore {
            let server = &mut servers[bad[rng.below(bad.len() as u64) as usize]];
            let port = server.port();
            if server.is_running() {
                let was = server.mode();
                server.set_mode(Mode::Up);
                actions.note(started, format!("{port} answers again (was {was:?})"));
            } else {
                server.restart().await;
                actions.note(started, format!("{port} restarted"));
            }
        } else {
            let server = &mut servers[good[rng.below(good.len() as u64) as usize]];
            let port = server.port();
            match menu[rng.below(menu.len() as u64) as usize] {
                Harm::Kill => {
                    let open = server.counters().open();
                    server.kill().await;
                    actions.failed.insert(port);
                    actions.note(
                        started,
                        format!("{port} killed ({open} connections dropped)"),
                    );
                }
                Harm::Errors => {
                    server.set_mode(Mode::Errors);
                    actions.failed.insert(port);
                    actions.note(started, format!("{port} answers 500s"));
                }
                Harm::Stall => {
                    server.set_mode(Mode::Stall);
                    actions.failed.insert(port);
                    actions.note(started, format!("{port} stalls"));
                }
            }
        }
    }
    (servers, actions)
}

/// Every 200 ms for `duration`: remove an endpoint from discovery (keeping at least two; a
/// removed server is killed half the time) or add one back (restarting it first if killed).
/// Every two seconds, one server in the set answers `500`s until the next such turn.
pub(crate) async fn churn(
    mut servers: Vec<Server>,
    watch: Watch,
    mut rng: Rng,
    duration: Duration,
) -> (Vec<Server>, Actions) {
    const MIN_IN_SET: usize = 2;
    let started = Instant::now();
    let mut actions = Actions::default();
    let mut in_set: Vec<bool> = vec![true; servers.len()];
    let mut erring: Option<usize> = None;
    let period = Duration::from_millis(200);
    let mut tick = tokio::time::interval_at(started + period, period);
    let mut turn = 0u64;
    loop {
        tick.tick().await;
        if started.elapsed() + period / 2 > duration {
            break;
        }
        turn += 1;
        if turn.is_multiple_of(10) {
            if let Some(i) = erring.take() {
                servers[i].set_mode(Mode::Up);
                let port = servers[i].port();
                actions.note(started, format!("{port} answers again"));
            }
            // One member errs; with at least two in the set, another stays good.
            let members: Vec<usize> = (0..servers.len()).filter(|&i| in_set[i]).collect();
            if members.len() >= MIN_IN_SET {
                let i = members[rng.below(members.len() as u64) as usize];
                servers[i].set_mode(Mode::Errors);
                erring = Some(i);
                actions.failed.insert(servers[i].port());
                actions.note(started, format!("{} answers 500s", servers[i].port()));
            }
            continue;
        }
        let members = in_set.iter().filter(|&&m| m).count();
        let remove = members > MIN_IN_SET && (members == servers.len() || rng.below(2) == 0);
        if remove {
            // Never the erring server: the set keeps at least one good endpoint.
            let candidates: Vec<usize> = (0..servers.len())
                .filter(|&i| in_set[i] && Some(i) != erring)
                .collect();
            let i = candidates[rng.below(candidates.len() as u64) as usize];
            let addr = servers[i].addr();
            watch.remove(addr).expect("balancer alive");
            in_set[i] = false;
            actions.removals += 1;
            if rng.below(2) == 0 {
                servers[i].kill().await;
                actions.note(started, format!("{} removed and killed", addr.port()));
            } else {
                actions.note(started, format!("{} removed", addr.port()));
            }
        } else {
            let missing: Vec<usize> = (0..servers.len()).filter(|&i| !in_set[i]).collect();
            let i = missing[rng.below(missing.len() as u64) as usize];
            if !servers[i].is_running() {
                servers[i].restart().await;
            }
            watch
                .insert(Endpoint::new(servers[i].addr()))
                .expect("balancer alive");
            in_set[i] = true;
            actions.insertions += 1;
            actions.note(started, format!("{} added", servers[i].port()));
        }
    }
    if let Some(i) = erring {
        servers[i].set_mode(Mode::Up);
    }
    (servers, actions)
}

/// SplitMix64: a tiny seeded generator.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

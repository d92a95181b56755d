//! The end of a run: the counts printed, and the assertions every scenario makes (nothing
//! lost, the retry budget kept).

use std::fmt::Write as _;
use std::time::Duration;

use tower_mesh::balance::EndpointStats;
use tower_mesh::retry::{Budget, BudgetStats};

use crate::load::Tally;
use crate::monitor::Observed;
use crate::server::Server;
use crate::{LOAD, MAX_BAD};

/// Everything a scenario prints and asserts at the end.
pub(crate) struct Report<'a> {
    pub(crate) name: &'static str,
    pub(crate) seed: u64,
    pub(crate) tally: &'a Tally,
    /// The budget, and its counters at the end.
    pub(crate) budget: &'a Budget,
    pub(crate) stats: &'a BudgetStats,
    pub(crate) elapsed: Duration,
    pub(crate) servers: &'a [Server],
    pub(crate) endpoints: &'a [EndpointStats],
    pub(crate) observed: &'a Observed,
    pub(crate) actions: &'a [(Duration, String)],
}

impl Report<'_> {
    pub(crate) fn print(&self) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "=== {} (seed {}) after {:?}",
            self.name, self.seed, self.elapsed
        );
        let _ = writeln!(
            out,
            "requests: {}; latency p50 {:?} p99 {:?} max {:?}",
            self.tally,
            self.tally.latency(0.5),
            self.tally.latency(0.99),
            self.tally.latency(1.0)
        );
        let (min_per_sec, ratio) = (self.budget.min_per_sec(), self.budget.retry_ratio());
        let whole = f64::from(min_per_sec) * self.elapsed.as_secs_f64()
            + ratio * self.stats.requests as f64;
        let _ = writeln!(
            out,
            "budget: {} requests, {} retries, {} hedges, {} refused; over the whole run \
             {min_per_sec}/s × {:.1}s + {ratio} × requests = {whole:.0}; busiest \
             window: {}",
            self.stats.requests,
            self.stats.retries,
            self.stats.hedges,
            self.stats.refused,
            self.elapsed.as_secs_f64(),
            match self.budget_windows() {
                Ok((got, allowed, from, to)) => format!(
                    "{got} of {allowed} allowed from {:.1}s to {:.1}s",
                    from.as_secs_f64(),
                    to.as_secs_f64()
                ),
                Err(e) => e,
            }
        );
        for server in self.servers {
            let c = server.counters();
            let port = server.port();
            let endpoint = self
                .endpoints
                .iter()
                .find(|s| s.endpoint().addr().port() == port);
            let _ = writeln!(
                out,
                "server {port}: connections {} (open {}), 200s {}, 500s {}, stalled {}, probes {}; \
                 balancer: {}, ejections {}, requests {}, errors {}; seen: {}",
                c.accepted(),
                c.open(),
                c.ok(),
                c.errors(),
                c.stalled(),
                c.probes(),
                endpoint.map_or("not in the set".to_string(), |s| s.state().to_string()),
                endpoint.map_or(0, |s| s.ejections()),
                endpoint.map_or(0, |s| s.requests()),
                endpoint.map_or(0, |s| s.errors()),
                self.observed.describe(port),
            );
        }
        let _ = writeln!(out, "actions ({}):", self.actions.len());
        for (at, what) in self.actions {
            let _ = writeln!(out, "  {:>6.2}s {what}", at.as_secs_f64());
        }
        println!("{out}");
    }

    pub(crate) fn assert_nothing_lost(&self) {
        assert_eq!(
            self.tally.completed(),
            self.tally.sent,
            "every request must be accounted for"
        );
        assert_eq!(
            self.tally.sent,
            LOAD.requests(),
            "the load generator sent them all"
        );
        let lost = &self.tally.lost;
        assert!(
            lost.is_empty(),
            "{}: {} of {} requests lost (seed {}), at most {MAX_BAD} servers bad at a time; the \
             budget refused {} retries or hedges while its busiest window used {:?} (granted, \
             allowed) of its allowance; the first lost: {:#?}",
            self.name,
            lost.len(),
            self.tally.sent,
            self.seed,
            self.stats.refused,
            self.budget_windows()
                .map(|(got, allowed, ..)| (got, allowed)),
            &lost[..lost.len().min(20)]
        );
    }

    /// The budget's contract (see `Budget`): a withdrawal at `t` is checked against the
    /// buckets covering at least `(t − 0.9 × ttl, t]` and at most `[t − ttl, t]`, so the retries
    /// and hedges granted in any `0.9 × ttl` are at most `floor(min_per_sec × ttl)` plus
    /// `floor(ratio × requests started in the ttl before)`. Checked between every pair of
    /// budget samples at most `0.9 × ttl` (less a margin for the sampling race) apart, against
    /// the requests the load generator started (an upper bound on those the budget counted in
    /// the window, since deposits are only ever dated earlier).
    ///
    /// Returns the busiest window: `(spent, allowed, from, to)`.
    fn budget_windows(&self) -> Result<(u64, u64, Duration, Duration), String> {
        let samples = &self.observed.budget;
        let starts = &self.tally.starts;
        let (ttl, ratio) = (self.budget.ttl(), self.budget.retry_ratio());
        let reserve = (f64::from(self.budget.min_per_sec()) * ttl.as_secs_f64()).floor() as u64;
        let span = ttl.mul_f64(0.9) - Duration::from_millis(100);
        let origin = samples
            .first()
            .map(|(t, _)| *t)
            .ok_or("no budget samples")?;
        let spent = |s: &BudgetStats| s.retries + s.hedges;
        let mut busiest = (0, 0, Duration::ZERO, Duration::ZERO);
        let mut from = 0;
        for (j, (to_at, to)) in samples.iter().enumerate() {
            while *to_at - samples[from].0 > span {
                from += 1;
            }
            let window_start = to_at.checked_sub(ttl).unwrap_or(origin);
            let lo = starts.partition_point(|t| *t < window_start);
            let hi = starts.partition_point(|t| t <= to_at);
            let allowed = reserve + (ratio * (hi - lo) as f64).floor() as u64;
            // The earliest sample in range spans the most retries.
            let (from_at, from_stats) = &samples[from.min(j)];
            let got = spent(to) - spent(from_stats);
            let (from_s, to_s) = (*from_at - origin, *to_at - origin);
            if got > allowed {
                return Err(format!(
                    "{got} retries + hedges granted between {from_s:?} and {to_s:?}, but the \
                     budget allows {allowed} ({reserve} + {ratio} × {} requests started in \
                     the {ttl:?} before)",
                    hi - lo
                ));
            }
            if got > busiest.0 {
                busiest = (got, allowed, from_s, to_s);
            }
        }
        Ok(busiest)
    }

    pub(crate) fn assert_within_budget(&self) {
        if let Err(e) = self.budget_windows() {
            panic!(
                "{}: the retry budget was exceeded (seed {}): {e}",
                self.name, self.seed
            );
        }
        // Each request was deposited once: every clone that sent one has been dropped.
        assert_eq!(
            self.stats.requests,
            LOAD.requests(),
            "{}: the budget counted {} requests, the load generator sent {}",
            self.name,
            self.stats.requests,
            LOAD.requests()
        );
        assert!(
            self.stats.retries + self.stats.hedges > 0,
            "{}: chaos caused no retry or hedge at all (seed {}), so the run proves little",
            self.name,
            self.seed
        );
    }
}

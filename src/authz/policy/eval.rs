//! Evaluation: deny rules first, then allow rules, then the default, which is deny.

use std::net::IpAddr;

use crate::authz::{Attributes, HttpAttributes};

use super::decision::{DecidedBy, Decision, Needs, Verdict};
use super::matcher::is_canonical_host;
use super::model::{Action, Mode, Policy, Rule};
use super::path::is_normalized;

impl Policy {
    /// Judges one request (or, with no `http` part, one TCP connection).
    ///
    /// The first DENY rule in file order that matches denies; otherwise the first ALLOW rule
    /// that matches allows; otherwise the request is denied. Never allocates: only the rules
    /// the index picks for the request's path or host are consulted, and the result is the
    /// same as consulting every rule in order.
    pub fn evaluate(&self, attrs: &Attributes<'_>) -> Decision {
        let request = Request::new(attrs);
        let deny = self.index.candidates(Action::Deny, &request);
        let decision = if let Some((i, absent)) = first_match(&self.rules, &deny, &request) {
            self.decision(Verdict::Deny, Some(i), absent)
        } else {
            let allow = self.index.candidates(Action::Allow, &request);
            let mut needs = Needs::default();
            let mut best: Option<usize> = None;
            for list in allow {
                for &i in list {
                    if best.is_some_and(|b| i > b) {
                        break;
                    }
                    match self.rules[i].outcome(&request) {
                        Outcome::Match { .. } => {
                            best = Some(i);
                            break;
                        }
                        Outcome::Unauthenticated { needs: n } => needs = needs.union(n),
                        Outcome::NoMatch => {}
                    }
                }
            }
            match best {
                Some(i) => self.decision(Verdict::Allow, Some(i), Needs::default()),
                None => self.decision(Verdict::Deny, None, needs),
            }
        };
        if self.mode == Mode::Audit && decision.verdict == Verdict::Deny {
            audit(&decision, attrs);
        }
        decision
    }

    /// The specification `evaluate` is tested against: every rule, in order, no index.
    #[cfg(test)]
    pub(super) fn evaluate_linear(&self, attrs: &Attributes<'_>) -> Decision {
        let request = Request::new(attrs);
        let outcomes: Vec<Outcome> = self.rules.iter().map(|r| r.outcome(&request)).collect();
        let first = |action| {
            self.rules
                .iter()
                .zip(&outcomes)
                .position(|(r, o)| r.action == action && matches!(o, Outcome::Match { .. }))
        };
        if let Some(i) = first(Action::Deny) {
            let Outcome::Match { absent } = outcomes[i] else {
                unreachable!()
            };
            return self.decision(Verdict::Deny, Some(i), absent);
        }
        if let Some(i) = first(Action::Allow) {
            return self.decision(Verdict::Allow, Some(i), Needs::default());
        }
        let needs = self
            .rules
            .iter()
            .zip(&outcomes)
            .filter(|(r, _)| r.action == Action::Allow)
            .fold(Needs::default(), |acc, (_, o)| match o {
                Outcome::Unauthenticated { needs } => acc.union(*needs),
                _ => acc,
            });
        self.decision(Verdict::Deny, None, needs)
    }

    fn decision(&self, verdict: Verdict, rule: Option<usize>, needs: Needs) -> Decision {
        Decision {
            verdict,
            decided_by: match rule {
                Some(i) => DecidedBy::Rule(self.rules[i].name.clone()),
                None => DecidedBy::Default,
            },
            mode: self.mode,
            needs,
        }
    }
}

/// The attributes as rules read them, cleaned once per request.
#[derive(Debug)]
pub(super) struct Request<'a> {
    pub(super) attrs: &'a Attributes<'a>,
    /// The source address, an IPv4-mapped IPv6 address read as IPv4 (a dual-stack listener
    /// reports IPv4 peers so, and IPv4 blocks must still match them).
    source: Option<IpAddr>,
    /// The path, if it has the normalizer's output form. Any other path (a layer that forgot
    /// to normalize, `*` of `OPTIONS *`) is a missing attribute: matched byte for byte it
    /// could reach a rule by `/public/../admin`, so it fails closed instead.
    pub(super) path: Option<&'a str>,
    /// The host without a trailing dot, if it has the shape of a canonical host. Any other
    /// (`api.example.com:443`: a layer that did not canonicalize) is a missing attribute, so
    /// it cannot slip past a DENY rule's `hosts`.
    pub(super) host: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub(super) fn new(attrs: &'a Attributes<'a>) -> Self {
        let host = attrs
            .http
            .as_ref()
            .and_then(|h| h.host)
            .map(|h| h.strip_suffix('.').unwrap_or(h))
            .filter(|h| is_canonical_host(h));
        let path = attrs
            .http
            .as_ref()
            .map(|h| h.path)
            .filter(|p| is_normalized(p));
        Request {
            attrs,
            source: attrs.source.map(|ip| ip.to_canonical()),
            path,
            host,
        }
    }

    pub(super) fn http(&self) -> Option<&HttpAttributes<'a>> {
        self.attrs.http.as_ref()
    }
}

/// How one rule judges one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Some field does not match.
    NoMatch,
    /// Every field matches. `absent`: the principals whose absence a negative field
    /// (`not_principals`, `not_request_principals`) matched on.
    Match { absent: Needs },
    /// Every field matches but positive principal fields, which need principals the request
    /// lacks.
    Unauthenticated { needs: Needs },
}

impl Rule {
    /// Fields are ANDed (the cheapest first), the values of a field ORed. An attribute the
    /// request lacks (no HTTP part, no host, no source address, no local port) makes its
    /// fields match in a DENY rule and fail in an ALLOW rule: a policy never allows on what it
    /// could not see, and never lets it escape a denial (Istio's TCP rule, SECURITY.md C8).
    /// An absent peer identity or request principal is the anonymous caller instead: positive
    /// fields fail, negative fields hold.
    pub(super) fn outcome(&self, request: &Request<'_>) -> Outcome {
        let c = &self.when;
        let deny = self.action == Action::Deny;
        let attrs = request.attrs;

        if !(c.ports.is_empty() && c.not_ports.is_empty()) {
            match attrs.port {
                Some(port) => {
                    if !c.ports.is_empty() && !c.ports.contains(&port)
                        || c.not_ports.contains(&port)
                    {
                        return Outcome::NoMatch;
                    }
                }
                None if deny => {}
                None => return Outcome::NoMatch,
            }
        }

        let http = request.http();
        match http {
            None if self.http_fields && !deny => return Outcome::NoMatch,
            None => {}
            Some(http) => {
                if !c.methods.is_empty() && !c.methods.contains(http.method)
                    || c.not_methods.contains(http.method)
                {
                    return Outcome::NoMatch;
                }
                if !(c.paths.is_empty() && c.not_paths.is_empty()) {
                    match request.path {
                        Some(path) => {
                            if !c.paths.is_empty() && !c.paths.iter().any(|p| p.matches(path))
                                || c.not_paths.iter().any(|p| p.matches(path))
                            {
                                return Outcome::NoMatch;
                            }
                        }
                        None if deny => {}
                        None => return Outcome::NoMatch,
                    }
                }
                if !(c.hosts.is_empty() && c.not_hosts.is_empty()) {
                    match request.host {
                        Some(host) => {
                            if !c.hosts.is_empty() && !c.hosts.iter().any(|p| p.matches(host))
                                || c.not_hosts.iter().any(|p| p.matches(host))
                            {
                                return Outcome::NoMatch;
                            }
                        }
                        None if deny => {}
                        None => return Outcome::NoMatch,
                    }
                }
                if !c.headers.iter().all(|h| h.matches(http.headers, deny)) {
                    return Outcome::NoMatch;
                }
            }
        }

        if !(c.source_blocks.is_empty() && c.not_source_blocks.is_empty()) {
            match request.source {
                Some(ip) => {
                    if !c.source_blocks.is_empty()
                        && !c.source_blocks.iter().any(|net| net.contains(&ip))
                        || c.not_source_blocks.iter().any(|net| net.contains(&ip))
                    {
                        return Outcome::NoMatch;
                    }
                }
                None if deny => {}
                None => return Outcome::NoMatch,
            }
        }

        let mut needs = Needs::default();
        let mut absent = Needs::default();
        match attrs.peer {
            Some(peer) => {
                if !c.principals.is_empty() && !c.principals.iter().any(|p| p.matches(peer))
                    || c.not_principals.iter().any(|p| p.matches(peer))
                {
                    return Outcome::NoMatch;
                }
            }
            None => {
                needs.peer = !c.principals.is_empty();
                absent.peer = !c.not_principals.is_empty();
            }
        }

        // On TCP these are HTTP fields, settled above.
        if http.is_some() {
            match attrs.request_principal {
                Some(rp) => {
                    if !c.request_principals.is_empty()
                        && !c.request_principals.iter().any(|p| p.matches(rp))
                        || c.not_request_principals.iter().any(|p| p.matches(rp))
                        || !c.claims.iter().all(|claim| claim.matches(rp))
                    {
                        return Outcome::NoMatch;
                    }
                }
                None => {
                    needs.request = !(c.request_principals.is_empty() && c.claims.is_empty());
                    absent.request = !c.not_request_principals.is_empty();
                }
            }
        }

        if needs.any() {
            Outcome::Unauthenticated { needs }
        } else {
            Outcome::Match { absent }
        }
    }
}

/// The first rule (lowest index) of the candidate lists that matches, each list ascending.
fn first_match(
    rules: &[Rule],
    lists: &[&[usize]; 3],
    request: &Request<'_>,
) -> Option<(usize, Needs)> {
    let mut best: Option<(usize, Needs)> = None;
    for list in lists {
        for &i in *list {
            if best.is_some_and(|(b, _)| i > b) {
                break;
            }
            if let Outcome::Match { absent } = rules[i].outcome(request) {
                best = Some((i, absent));
                break;
            }
        }
    }
    best
}

fn audit(decision: &Decision, attrs: &Attributes<'_>) {
    let rule = decision.rule().map_or("(default)", |r| r.as_str());
    let http = attrs.http.as_ref();
    tracing::info!(
        target: "tower_mesh::authz::audit",
        rule,
        peer = attrs.peer.map(|p| p.as_str()),
        source = ?attrs.source,
        port = attrs.port,
        method = http.map(|h| h.method.as_str()),
        path = http.map(|h| h.path),
        "policy in audit mode would deny this request",
    );
}

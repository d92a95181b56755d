//! The decision a policy reaches on one request: what to enforce, and why.

use super::model::{Mode, RuleName};

/// What a policy decided about one request, and why.
///
/// [`is_allowed`](Decision::is_allowed) is what to enforce; the rest says why, for the
/// response and the logs. A denial that [`needs_authentication`](Decision::needs_authentication)
/// is one an authenticated caller might not have got: a layer may answer it with 401 (and a
/// `WWW-Authenticate` challenge) where it answers other denials with 403.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    pub(super) verdict: Verdict,
    pub(super) decided_by: DecidedBy,
    pub(super) mode: Mode,
    pub(super) needs: Needs,
}

impl Decision {
    /// Whether to let the request through: the policy allowed it, or the policy is in
    /// [`Mode::Audit`].
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow || self.mode == Mode::Audit
    }

    /// What the policy judged, whether or not it is enforced.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The rule that decided, or the default.
    pub fn decided_by(&self) -> &DecidedBy {
        &self.decided_by
    }

    /// The name of the rule that decided, if a rule did (not the default).
    pub fn rule(&self) -> Option<&RuleName> {
        match &self.decided_by {
            DecidedBy::Rule(name) => Some(name),
            DecidedBy::Default => None,
        }
    }

    /// The mode of the policy that decided.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The request is refused (never in audit mode) and has no verified peer identity, while the decision turned on
    /// one: an ALLOW rule required a peer principal (its other conditions held), or the DENY
    /// rule that decided matched because `not_principals` holds for an anonymous peer.
    pub fn needs_peer_identity(&self) -> bool {
        !self.is_allowed() && self.needs.peer
    }

    /// As [`needs_peer_identity`](Decision::needs_peer_identity), for the JWT request
    /// principal (`request_principals`, `not_request_principals`, `claims`).
    pub fn needs_request_principal(&self) -> bool {
        !self.is_allowed() && self.needs.request
    }

    /// Either of the above: authenticating might change the answer.
    pub fn needs_authentication(&self) -> bool {
        self.needs_peer_identity() || self.needs_request_principal()
    }
}

/// The judgement of a [`Decision`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the request through.
    Allow,
    /// Refuse it.
    Deny,
}

/// What reached a [`Decision`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecidedBy {
    /// A rule matched: the first matching DENY rule in file order, or, when none matched, the
    /// first matching ALLOW rule.
    Rule(RuleName),
    /// No rule matched: the default, which is to deny.
    Default,
}

/// The principals a denied request lacked, as far as the decision turned on them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Needs {
    pub(super) peer: bool,
    pub(super) request: bool,
}

impl Needs {
    pub(super) fn any(self) -> bool {
        self.peer || self.request
    }

    pub(super) fn union(self, other: Needs) -> Needs {
        Needs {
            peer: self.peer || other.peer,
            request: self.request || other.request,
        }
    }
}

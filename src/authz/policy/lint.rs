//! Lints: legal but risky constructs, found at load and warned about (or refused).
//!
//! Istio's security best practices: "use ALLOW-with-positive-matching and
//! DENY-with-negative-matching patterns", because a request spelled in a way the policy did
//! not foresee then fails closed.

use std::ops::Range;

use toml::Spanned;

use super::error::shown;
use super::file::{RawRule, Strings};
use super::model::Action;

/// How the loaders treat lints.
///
/// # Defaults
///
/// [`LintLevel::Warn`], as Istio's analyzers: a risky but legal policy is accepted and each
/// lint is logged (and kept in [`Policy::lints`](super::Policy::lints)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LintLevel {
    /// Accept the policy; log each lint at `warn`.
    #[default]
    Warn,
    /// Refuse a policy with any lint, as an error at the lint's place.
    Deny,
}

/// A legal but risky construct in a policy, found at load, with its place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct Lint {
    pub(super) line: usize,
    pub(super) column: usize,
    pub(super) kind: LintKind,
}

impl Lint {
    /// The line of the construct, from 1.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column of the construct, from 1, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is risky.
    pub fn kind(&self) -> &LintKind {
        &self.kind
    }
}

/// What is risky about a construct (Istio's security best practices: "use ALLOW-with-positive-
/// matching and DENY-with-negative-matching patterns").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LintKind {
    /// An ALLOW rule with a negative field (`not_paths`, `not_principals`, ...): it allows
    /// everything the list does not name, including spellings of a path nobody thought of,
    /// and `not_principals` also allows anonymous peers.
    #[error(
        "rule {rule:?}: ALLOW with `{field}` allows everything not listed (prefer positive \
         matching in ALLOW rules)"
    )]
    AllowWithNegative {
        /// The rule.
        rule: String,
        /// The negative field.
        field: &'static str,
    },
    /// A DENY rule with `paths` or `hosts`: a request spelled another way (case, encoding)
    /// escapes it, as in ISTIO-SECURITY-2021-005. Prefer an ALLOW rule naming what is
    /// allowed, or `not_paths` in a DENY rule.
    #[error(
        "rule {rule:?}: DENY with `{field}` is escaped by any other spelling of the value \
         (prefer ALLOW with `{field}`, or DENY with `not_{field}`)"
    )]
    DenyWithPositive {
        /// The rule.
        rule: String,
        /// The positive field.
        field: &'static str,
    },
    /// A set no rule references: perhaps a rule names the wrong set.
    #[error("{kind} {name:?} is not referenced by any rule")]
    UnusedSet {
        /// The kind of set (`principal set` or `network set`).
        kind: &'static str,
        /// The set.
        name: String,
    },
}

/// The risky fields of a rule, with the span of each: negative fields in an ALLOW rule,
/// `paths` and `hosts` in a DENY rule.
pub(super) fn rule_lints(
    name: &str,
    action: Action,
    raw: &RawRule,
) -> Vec<(Range<usize>, LintKind)> {
    let (from, to) = (&raw.from, &raw.to);
    let span = |v: &Option<Spanned<Strings>>| v.as_ref().map(Spanned::span);
    let fields = match action {
        Action::Allow => vec![
            ("not_principals", span(&from.not_principals)),
            ("not_principals", span(&from.not_principal_sets)),
            ("not_request_principals", span(&from.not_request_principals)),
            ("not_source_blocks", span(&from.not_source_blocks)),
            ("not_source_blocks", span(&from.not_network_sets)),
            ("not_methods", span(&to.not_methods)),
            ("not_paths", span(&to.not_paths)),
            ("not_hosts", span(&to.not_hosts)),
            ("not_ports", to.not_ports.as_ref().map(Spanned::span)),
        ],
        Action::Deny => vec![("paths", span(&to.paths)), ("hosts", span(&to.hosts))],
    };
    fields
        .into_iter()
        .filter_map(|(field, span)| {
            let rule = shown(name);
            let kind = match action {
                Action::Allow => LintKind::AllowWithNegative { rule, field },
                Action::Deny => LintKind::DenyWithPositive { rule, field },
            };
            Some((span?, kind))
        })
        .collect()
}

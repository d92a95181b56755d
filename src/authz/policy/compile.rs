//! From the file's shape to a [`Policy`]: every value parsed into its matcher, every reference
//! resolved, names checked unique, lints found. The first problem refuses the whole text.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::error::{PolicyError, PolicyErrorKind, shown};
use super::file::{
    NamedStrings, Ports, RawAction, RawMode, RawPolicy, RawRule, Strings, line_column,
};
use super::lint::{Lint, LintKind, LintLevel, rule_lints};
use super::matcher::{
    HeaderCondition, HostPattern, ValuePattern, parse_method, parse_port, parse_source_block,
};
use super::model::{Action, Conditions, LoadOptions, Mode, Policy, Rule, RuleName};
use super::path::PathPattern;
use super::principal::{ClaimCondition, PrincipalPattern, RequestPrincipalPattern};

/// A problem and the byte range it is about.
type Located = (Range<usize>, PolicyErrorKind);

pub(super) fn compile(
    text: &str,
    raw: RawPolicy,
    options: &LoadOptions,
) -> Result<Policy, PolicyError> {
    let at = |(span, kind): Located| {
        let (line, column) = line_column(text, span.start);
        PolicyError::new(line, column, kind)
    };
    let mut compiler = Compiler {
        principal_sets: sets(
            &raw.principal_sets,
            "principal_sets",
            PrincipalPattern::parse,
        )
        .map_err(at)?,
        network_sets: sets(&raw.network_sets, "network_sets", parse_source_block).map_err(at)?,
        lints: Vec::new(),
    };
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.rules.len());
    for raw_rule in &raw.rules {
        let name = raw_rule.name.get_ref().as_str();
        let span = raw_rule.name.span();
        if let Some(&first_line) = names.get(name) {
            return Err(at((
                span,
                PolicyErrorKind::DuplicateRule {
                    name: shown(name),
                    first_line,
                },
            )));
        }
        names.insert(name, line_column(text, span.start).0);
        rules.push(compiler.rule(raw_rule).map_err(at)?);
    }
    for (kind, sets) in [
        ("principal set", compiler.principal_sets.unused()),
        ("network set", compiler.network_sets.unused()),
    ] {
        for (name, span) in sets {
            compiler.lints.push((
                span,
                LintKind::UnusedSet {
                    kind,
                    name: shown(name),
                },
            ));
        }
    }
    let mut lints: Vec<Lint> = compiler
        .lints
        .into_iter()
        .map(|(span, kind)| {
            let (line, column) = line_column(text, span.start);
            Lint { line, column, kind }
        })
        .collect();
    lints.sort_by_key(|l| (l.line, l.column));
    match options.lints {
        LintLevel::Deny => {
            if let Some(lint) = lints.first() {
                return Err(PolicyError::new(
                    lint.line,
                    lint.column,
                    PolicyErrorKind::Lint(lint.clone()),
                ));
            }
        }
        LintLevel::Warn => {
            for lint in &lints {
                tracing::warn!(target: "tower_mesh::authz::policy", %lint, "policy lint");
            }
        }
    }
    let mode = match raw.mode {
        RawMode::Enforce => Mode::Enforce,
        RawMode::Audit => Mode::Audit,
    };
    Ok(Policy::new(mode, rules, lints))
}

struct Compiler<'r> {
    principal_sets: Sets<'r, PrincipalPattern>,
    network_sets: Sets<'r, ipnet::IpNet>,
    lints: Vec<(Range<usize>, LintKind)>,
}

impl Compiler<'_> {
    fn rule(&mut self, raw: &RawRule) -> Result<Rule, Located> {
        let name = raw.name.get_ref();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err((
                raw.name.span(),
                PolicyErrorKind::InvalidValue {
                    field: "name",
                    value: shown(name),
                    reason: "a rule name is non-empty, without control characters".to_owned(),
                },
            ));
        }
        let action = match raw.action {
            RawAction::Allow => Action::Allow,
            RawAction::Deny => Action::Deny,
        };
        self.lints.extend(rule_lints(name, action, raw));

        let (from, to, when) = (&raw.from, &raw.to, &raw.when);
        let principal = PrincipalPattern::parse;
        let request_principal = RequestPrincipalPattern::parse;
        let mut c = Conditions {
            principals: list("principals", from.principals.as_ref(), principal)?,
            not_principals: list("not_principals", from.not_principals.as_ref(), principal)?,
            request_principals: list(
                "request_principals",
                from.request_principals.as_ref(),
                request_principal,
            )?,
            not_request_principals: list(
                "not_request_principals",
                from.not_request_principals.as_ref(),
                request_principal,
            )?,
            source_blocks: list(
                "source_blocks",
                from.source_blocks.as_ref(),
                parse_source_block,
            )?,
            not_source_blocks: list(
                "not_source_blocks",
                from.not_source_blocks.as_ref(),
                parse_source_block,
            )?,
            methods: list("methods", to.methods.as_ref(), parse_method)?,
            not_methods: list("not_methods", to.not_methods.as_ref(), parse_method)?,
            paths: list("paths", to.paths.as_ref(), PathPattern::parse)?,
            not_paths: list("not_paths", to.not_paths.as_ref(), PathPattern::parse)?,
            hosts: list("hosts", to.hosts.as_ref(), HostPattern::parse)?,
            not_hosts: list("not_hosts", to.not_hosts.as_ref(), HostPattern::parse)?,
            ports: ports("ports", &to.ports)?,
            not_ports: ports("not_ports", &to.not_ports)?,
            headers: headers(&when.headers)?,
            claims: claims(&when.claims)?,
        };
        self.principal_sets
            .resolve("principal_sets", &from.principal_sets, &mut c.principals)?;
        self.principal_sets.resolve(
            "not_principal_sets",
            &from.not_principal_sets,
            &mut c.not_principals,
        )?;
        self.network_sets
            .resolve("network_sets", &from.network_sets, &mut c.source_blocks)?;
        self.network_sets.resolve(
            "not_network_sets",
            &from.not_network_sets,
            &mut c.not_source_blocks,
        )?;
        Ok(Rule::new(RuleName::new(name), action, c))
    }
}

/// The named sets of one kind, and which of them rules used.
struct Sets<'r, T> {
    by_name: HashMap<&'r str, Set<'r, T>>,
    kind: &'static str,
}

struct Set<'r, T> {
    values: Vec<T>,
    key: &'r Spanned<String>,
    used: bool,
}

fn sets<'r, T>(
    raw: &'r NamedStrings,
    field: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Sets<'r, T>, Located> {
    let mut entries: Vec<_> = raw.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut by_name = HashMap::with_capacity(entries.len());
    for (key, values) in entries {
        if key.get_ref().is_empty() {
            return Err((
                key.span(),
                PolicyErrorKind::InvalidValue {
                    field,
                    value: String::new(),
                    reason: "a set name is non-empty".to_owned(),
                },
            ));
        }
        let values = list(field, Some(values), parse)?;
        by_name.insert(
            key.get_ref().as_str(),
            Set {
                values,
                key,
                used: false,
            },
        );
    }
    let kind = if field == "principal_sets" {
        "principal set"
    } else {
        "network set"
    };
    Ok(Sets { by_name, kind })
}

impl<T: Clone> Sets<'_, T> {
    /// Appends the values of the sets `refs` names to `out`; a name that is not defined
    /// refuses the policy.
    fn resolve(
        &mut self,
        field: &'static str,
        refs: &Option<Spanned<Strings>>,
        out: &mut Vec<T>,
    ) -> Result<(), Located> {
        let Some(refs) = refs else { return Ok(()) };
        let items = Strings::items(refs);
        if items.is_empty() {
            return Err((refs.span(), PolicyErrorKind::EmptyList { field }));
        }
        for (name, span) in items {
            let Some(set) = self.by_name.get_mut(name) else {
                return Err((
                    span,
                    PolicyErrorKind::UnknownSet {
                        field,
                        kind: self.kind,
                        name: shown(name),
                    },
                ));
            };
            set.used = true;
            out.extend(set.values.iter().cloned());
        }
        Ok(())
    }

    fn unused(&self) -> Vec<(&str, Range<usize>)> {
        let mut unused: Vec<_> = self
            .by_name
            .iter()
            .filter(|(_, set)| !set.used)
            .map(|(name, set)| (*name, set.key.span()))
            .collect();
        unused.sort_by_key(|(_, span)| span.start);
        unused
    }
}

/// Parses each value of a list field; an empty list is refused.
fn list<T>(
    field: &'static str,
    raw: Option<&Spanned<Strings>>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Located> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items = Strings::items(raw);
    if items.is_empty() {
        return Err((raw.span(), PolicyErrorKind::EmptyList { field }));
    }
    items
        .into_iter()
        .map(|(value, span)| {
            parse(value).map_err(|reason| {
                (
                    span,
                    PolicyErrorKind::InvalidValue {
                        field,
                        value: shown(value),
                        reason,
                    },
                )
            })
        })
        .collect()
}

fn ports(field: &'static str, raw: &Option<Spanned<Ports>>) -> Result<Vec<u16>, Located> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items = Ports::items(raw);
    if items.is_empty() {
        return Err((raw.span(), PolicyErrorKind::EmptyList { field }));
    }
    items
        .into_iter()
        .map(|(n, span)| {
            parse_port(n).map_err(|reason| {
                (
                    span,
                    PolicyErrorKind::InvalidValue {
                        field,
                        value: n.to_string(),
                        reason,
                    },
                )
            })
        })
        .collect()
}

fn headers(raw: &Option<Spanned<NamedStrings>>) -> Result<Vec<HeaderCondition>, Located> {
    named("headers", raw, |name, span| {
        HeaderCondition::parse_name(name).map_err(|reason| invalid("headers", name, span, reason))
    })?
    .into_iter()
    .map(|(name, values)| {
        Ok(HeaderCondition {
            name,
            values: list("headers", Some(values), ValuePattern::parse)?.into(),
        })
    })
    .collect()
}

fn claims(raw: &Option<Spanned<NamedStrings>>) -> Result<Vec<ClaimCondition>, Located> {
    named("claims", raw, |name, span| {
        ClaimCondition::parse_name(name).map_err(|reason| invalid("claims", name, span, reason))
    })?
    .into_iter()
    .map(|(name, values)| {
        let values = list("claims", Some(values), |s| Ok(Box::<str>::from(s)))?;
        Ok(ClaimCondition {
            name,
            values: values.into(),
        })
    })
    .collect()
}

/// The entries of a `headers` or `claims` table in file order, their names parsed.
fn named<'r, K>(
    field: &'static str,
    raw: &'r Option<Spanned<NamedStrings>>,
    parse_name: impl Fn(&str, Range<usize>) -> Result<K, Located>,
) -> Result<Vec<(K, &'r Spanned<Strings>)>, Located> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.get_ref().is_empty() {
        return Err((raw.span(), PolicyErrorKind::EmptyList { field }));
    }
    let mut entries: Vec<_> = raw.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
        .into_iter()
        .map(|(key, values)| Ok((parse_name(key.get_ref(), key.span())?, values)))
        .collect()
}

fn invalid(field: &'static str, value: &str, span: Range<usize>, reason: String) -> Located {
    (
        span,
        PolicyErrorKind::InvalidValue {
            field,
            value: shown(value),
            reason,
        },
    )
}

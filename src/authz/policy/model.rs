//! The policy: its rules, its mode and its lints; and the decision it reaches on a request.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use http::Method;
use ipnet::IpNet;

use super::error::{PolicyError, PolicyFileError};
use super::index::Index;
use super::lint::{Lint, LintLevel};
use super::matcher::{HeaderCondition, HostPattern};
use super::path::PathPattern;
use super::principal::{ClaimCondition, PrincipalPattern, RequestPrincipalPattern};

/// An authorization policy: rules that allow or deny, judged deny first, then allow, then
/// deny by default.
///
/// Only ever built valid: from a TOML text or file ([`Policy::from_toml_str`],
/// [`Policy::from_toml_file`]), which is refused whole on any error, or empty
/// ([`Policy::empty`]). Immutable; share it behind an `Arc`, or hot-swap it with
/// [`SharedPolicy`](super::SharedPolicy). See the [module docs](super) for the semantics and
/// the file format.
///
/// # Defaults
///
/// [`Policy::empty`] (also `Policy::default()`) has no rules and so allows nothing: deny by
/// default, fail closed (SECURITY.md principle 2).
#[derive(Debug)]
pub struct Policy {
    pub(super) mode: Mode,
    /// In file order: the first matching rule of an action is the one a decision names.
    pub(super) rules: Box<[Rule]>,
    pub(super) index: Index,
    pub(super) lints: Box<[Lint]>,
}

impl Policy {
    /// A policy with no rules, in enforce mode: it denies every request.
    pub fn empty() -> Policy {
        Policy::new(Mode::Enforce, Vec::new(), Vec::new())
    }

    /// Parses a policy from TOML text, with the default [`LoadOptions`].
    ///
    /// # Errors
    ///
    /// The first problem of the text, with its line and column.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_toml_str_with(text, &LoadOptions::default())
    }

    /// Parses a policy from TOML text.
    ///
    /// Lints are logged at `warn` with [`LintLevel::Warn`], and refused as errors with
    /// [`LintLevel::Deny`].
    ///
    /// # Errors
    ///
    /// The first problem of the text, with its line and column.
    pub fn from_toml_str_with(text: &str, options: &LoadOptions) -> Result<Policy, PolicyError> {
        super::file::parse(text, options)
    }

    /// Reads and parses a policy file, with the default [`LoadOptions`].
    ///
    /// # Errors
    ///
    /// The file cannot be read, is too large, or is not a valid policy; the error names the
    /// file (and the line and column of an invalid text).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Policy, PolicyFileError> {
        Policy::from_toml_file_with(path, &LoadOptions::default())
    }

    /// Reads and parses a policy file. Blocking: from async code, prefer
    /// [`SharedPolicy::watch_file`](super::SharedPolicy::watch_file), or call it on
    /// `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// As [`Policy::from_toml_file`].
    pub fn from_toml_file_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Policy, PolicyFileError> {
        let path = path.as_ref();
        let bytes = super::file::read(path, options.max_file_len)?;
        super::file::parse_bytes(&bytes, options).map_err(|error| PolicyFileError::Invalid {
            path: path.to_path_buf(),
            error,
        })
    }

    pub(super) fn new(mode: Mode, rules: Vec<Rule>, lints: Vec<Lint>) -> Policy {
        let index = Index::new(&rules);
        Policy {
            mode,
            rules: rules.into(),
            index,
            lints: lints.into(),
        }
    }

    /// Whether decisions are enforced or only logged.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The rules, in file order.
    pub fn rules(&self) -> impl ExactSizeIterator<Item = &Rule> + '_ {
        self.rules.iter()
    }

    /// The risky constructs found at load (see [`LintKind`](super::LintKind)); empty for a clean policy.
    pub fn lints(&self) -> &[Lint] {
        &self.lints
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::empty()
    }
}

/// One rule of a [`Policy`]: an action, and conditions that must all hold for it to match.
///
/// Only its name and action are public; its conditions are those of the file it came from.
#[derive(Debug)]
pub struct Rule {
    pub(super) name: RuleName,
    pub(super) action: Action,
    pub(super) when: Conditions,
    /// `when.has_http_fields()`, computed once.
    pub(super) http_fields: bool,
}

impl Rule {
    pub(super) fn new(name: RuleName, action: Action, when: Conditions) -> Self {
        let http_fields = when.has_http_fields();
        Rule {
            name,
            action,
            when,
            http_fields,
        }
    }

    /// The rule's name, unique within its policy.
    pub fn name(&self) -> &RuleName {
        &self.name
    }

    /// What a match does.
    pub fn action(&self) -> Action {
        self.action
    }
}

/// What a rule's match does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Allow the request, unless a DENY rule matches it.
    Allow,
    /// Deny the request, whatever the ALLOW rules say.
    Deny,
}

/// Whether a policy's decisions are enforced.
///
/// # Defaults
///
/// [`Mode::Enforce`]: a policy file without `mode` enforces, so a forgotten line never opens
/// the service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Decisions are enforced.
    #[default]
    Enforce,
    /// Dry run: decisions are computed and a denial is logged (target
    /// `tower_mesh::authz::audit`), but every request is let through
    /// ([`Decision::is_allowed`](super::Decision::is_allowed) is `true`). For trying a policy on live traffic before
    /// enforcing it.
    Audit,
}

/// The name of a rule: a cheap clone (a reference count) of the name in the policy file.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleName(Arc<str>);

impl RuleName {
    pub(super) fn new(name: &str) -> Self {
        RuleName(Arc::from(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// How policies are loaded.
///
/// # Defaults
///
/// Lints [`LintLevel::Warn`]; files up to 1 MiB (a policy of thousands of rules is far
/// smaller; the limit bounds the memory a corrupted or hostile file can take).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    pub(super) lints: LintLevel,
    pub(super) max_file_len: u64,
}

impl LoadOptions {
    /// The defaults.
    pub fn new() -> Self {
        LoadOptions {
            lints: LintLevel::Warn,
            max_file_len: DEFAULT_MAX_FILE_LEN,
        }
    }

    /// How lints are treated.
    pub fn lint_level(mut self, level: LintLevel) -> Self {
        self.lints = level;
        self
    }

    /// The largest policy file read, in bytes.
    pub fn max_file_len(mut self, len: u64) -> Self {
        self.max_file_len = len;
        self
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions::new()
    }
}

/// The conditions of a rule: fields are ANDed, the values of a field ORed. An empty list is a
/// field that is not set (the loader refuses empty lists, so it never reads one from a file).
#[derive(Debug, Default)]
pub(super) struct Conditions {
    pub(super) principals: Vec<PrincipalPattern>,
    pub(super) not_principals: Vec<PrincipalPattern>,
    pub(super) request_principals: Vec<RequestPrincipalPattern>,
    pub(super) not_request_principals: Vec<RequestPrincipalPattern>,
    pub(super) source_blocks: Vec<IpNet>,
    pub(super) not_source_blocks: Vec<IpNet>,
    pub(super) methods: Vec<Method>,
    pub(super) not_methods: Vec<Method>,
    pub(super) paths: Vec<PathPattern>,
    pub(super) not_paths: Vec<PathPattern>,
    pub(super) hosts: Vec<HostPattern>,
    pub(super) not_hosts: Vec<HostPattern>,
    pub(super) ports: Vec<u16>,
    pub(super) not_ports: Vec<u16>,
    pub(super) headers: Vec<HeaderCondition>,
    pub(super) claims: Vec<ClaimCondition>,
}

impl Conditions {
    /// Whether any field needs the HTTP part of a request (Istio's "HTTP-only fields"),
    /// request principals and claims included.
    pub(super) fn has_http_fields(&self) -> bool {
        !(self.methods.is_empty()
            && self.not_methods.is_empty()
            && self.paths.is_empty()
            && self.not_paths.is_empty()
            && self.hosts.is_empty()
            && self.not_hosts.is_empty()
            && self.headers.is_empty()
            && self.request_principals.is_empty()
            && self.not_request_principals.is_empty()
            && self.claims.is_empty())
    }
}

const DEFAULT_MAX_FILE_LEN: u64 = 1024 * 1024;

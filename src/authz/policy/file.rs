//! The policy file: its TOML shape (every table refuses unknown keys), reading it, and placing
//! errors at a line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use super::error::{PolicyError, PolicyErrorKind, PolicyFileError};
use super::model::{LoadOptions, Policy};

/// Parses a policy text.
pub(super) fn parse(text: &str, options: &LoadOptions) -> Result<Policy, PolicyError> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        // Errors about the document as a whole carry no span: they are placed at its start.
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = line_column(text, offset);
        PolicyError::new(
            line,
            column,
            PolicyErrorKind::Malformed(e.message().to_owned()),
        )
    })?;
    super::compile::compile(text, raw, options)
}

/// Parses a policy from bytes that should be UTF-8 text.
pub(super) fn parse_bytes(bytes: &[u8], options: &LoadOptions) -> Result<Policy, PolicyError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, options),
        Err(e) => {
            // `valid_up_to` ends a valid prefix by definition.
            let text = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let (line, column) = line_column(text, text.len());
            Err(PolicyError::new(line, column, PolicyErrorKind::NotUtf8))
        }
    }
}

/// Reads a policy file, refusing non-files and files over `max_len` bytes.
pub(super) fn read(path: &Path, max_len: u64) -> Result<Vec<u8>, PolicyFileError> {
    let read_error = |source| PolicyFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Stat before opening: opening a FIFO would block until a writer appears.
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(PolicyFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let too_large = |len| PolicyFileError::TooLarge {
        path: path.to_path_buf(),
        len,
        limit: max_len,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    if len > max_len {
        return Err(too_large(len));
    }
    let mut content = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max_len.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(read_error)?;
    let len = u64::try_from(content.len()).unwrap_or(u64::MAX);
    if len > max_len {
        return Err(too_large(len));
    }
    Ok(content)
}

/// Line and column (both from 1, the column in characters) of byte `offset` in `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// The document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub(super) mode: RawMode,
    #[serde(default)]
    pub(super) principal_sets: BTreeMap<Spanned<String>, Spanned<Strings>>,
    #[serde(default)]
    pub(super) network_sets: BTreeMap<Spanned<String>, Spanned<Strings>>,
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawMode {
    #[default]
    Enforce,
    Audit,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawAction {
    Allow,
    Deny,
}

/// One `[[rules]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: Spanned<String>,
    pub(super) action: RawAction,
    #[serde(default)]
    pub(super) from: RawFrom,
    #[serde(default)]
    pub(super) to: RawTo,
    #[serde(default)]
    pub(super) when: RawWhen,
}

/// `[rules.from]`: who is calling.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFrom {
    pub(super) principals: Option<Spanned<Strings>>,
    pub(super) not_principals: Option<Spanned<Strings>>,
    pub(super) principal_sets: Option<Spanned<Strings>>,
    pub(super) not_principal_sets: Option<Spanned<Strings>>,
    pub(super) request_principals: Option<Spanned<Strings>>,
    pub(super) not_request_principals: Option<Spanned<Strings>>,
    pub(super) source_blocks: Option<Spanned<Strings>>,
    pub(super) not_source_blocks: Option<Spanned<Strings>>,
    pub(super) network_sets: Option<Spanned<Strings>>,
    pub(super) not_network_sets: Option<Spanned<Strings>>,
}

/// `[rules.to]`: what is called.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTo {
    pub(super) methods: Option<Spanned<Strings>>,
    pub(super) not_methods: Option<Spanned<Strings>>,
    pub(super) paths: Option<Spanned<Strings>>,
    pub(super) not_paths: Option<Spanned<Strings>>,
    pub(super) hosts: Option<Spanned<Strings>>,
    pub(super) not_hosts: Option<Spanned<Strings>>,
    pub(super) ports: Option<Spanned<Ports>>,
    pub(super) not_ports: Option<Spanned<Ports>>,
}

/// `[rules.when]`: conditions on headers and JWT claims, each table keyed by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWhen {
    pub(super) headers: Option<Spanned<NamedStrings>>,
    pub(super) claims: Option<Spanned<NamedStrings>>,
}

pub(super) type NamedStrings = BTreeMap<Spanned<String>, Spanned<Strings>>;

/// A string or an array of strings.
#[derive(Debug)]
pub(super) enum Strings {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl Strings {
    /// The strings with their spans; a lone string has the span of the whole value.
    pub(super) fn items(this: &Spanned<Strings>) -> Vec<(&str, Range<usize>)> {
        match this.get_ref() {
            Strings::One(s) => vec![(s.as_str(), this.span())],
            Strings::Many(items) => items
                .iter()
                .map(|s| (s.get_ref().as_str(), s.span()))
                .collect(),
        }
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StringsVisitor;

        impl<'de> Visitor<'de> for StringsVisitor {
            type Value = Strings;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Strings, E> {
                Ok(Strings::One(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Strings, E> {
                Ok(Strings::One(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(Strings::Many(items))
            }
        }

        d.deserialize_any(StringsVisitor)
    }
}

/// An integer or an array of integers.
#[derive(Debug)]
pub(super) enum Ports {
    One(i64),
    Many(Vec<Spanned<i64>>),
}

impl Ports {
    /// The integers with their spans; a lone integer has the span of the whole value.
    pub(super) fn items(this: &Spanned<Ports>) -> Vec<(i64, Range<usize>)> {
        match this.get_ref() {
            Ports::One(n) => vec![(*n, this.span())],
            Ports::Many(items) => items.iter().map(|n| (*n.get_ref(), n.span())).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PortsVisitor;

        impl<'de> Visitor<'de> for PortsVisitor {
            type Value = Ports;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or an array of port numbers")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ports, E> {
                Ok(Ports::One(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ports, E> {
                Ok(Ports::One(i64::try_from(v).unwrap_or(i64::MAX)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ports, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<i64>>()? {
                    items.push(item);
                }
                Ok(Ports::Many(items))
            }
        }

        d.deserialize_any(PortsVisitor)
    }
}

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{ParseError, ParseErrorKind};
use crate::endpoint::{Endpoint, Weight};

/// The syntax of an endpoint file. Both describe the same shape (see the
/// [module docs](super#the-file-format)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// JSON ([RFC 8259](https://www.rfc-editor.org/rfc/rfc8259)).
    Json,
    /// TOML ([v1.0.0](https://toml.io/en/v1.0.0)).
    Toml,
}

impl Format {
    /// The format a path's extension names: `.json` or `.toml`, in any letter case.
    ///
    /// ```
    /// use std::path::Path;
    /// use tower_mesh::discover::file::Format;
    ///
    /// assert_eq!(Format::from_path(Path::new("/etc/mesh/api.TOML")), Some(Format::Toml));
    /// assert_eq!(Format::from_path(Path::new("/etc/mesh/api.yaml")), None);
    /// ```
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("json") {
            Some(Format::Json)
        } else if ext.eq_ignore_ascii_case("toml") {
            Some(Format::Toml)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Toml => "TOML",
        })
    }
}

/// Parses an endpoint list in the [documented format](super#the-file-format), in file order.
///
/// This is the parser [`File`](super::File) uses; it is public so that tools can check a file
/// before installing it. It never panics, whatever the input.
///
/// # Errors
///
/// A [`ParseError`] with the 1-based line and column of the first problem: bad syntax, an
/// unknown field, a missing `endpoints` key or `addr`, an address that is not `IP:port`, a
/// weight of zero, or an address listed twice.
///
/// # Examples
///
/// ```
/// use tower_mesh::discover::file::{Format, ParseErrorKind, parse_endpoints};
///
/// let endpoints = parse_endpoints(
///     r#"{"endpoints": [{"addr": "10.0.0.1:8080", "weight": 3, "zone": "eu-west-1a"}]}"#,
///     Format::Json,
/// )?;
/// assert_eq!(endpoints[0].weight().get(), 3);
///
/// let err = parse_endpoints("[[endpoints]]\naddr = \"10.0.0.1\"\n", Format::Toml).unwrap_err();
/// assert_eq!((err.line(), err.column()), (2, 8));
/// assert!(matches!(err.kind(), ParseErrorKind::InvalidAddr { index: 0, .. }));
/// # Ok::<(), tower_mesh::discover::file::ParseError>(())
/// ```
pub fn parse_endpoints(text: &str, format: Format) -> Result<Vec<Endpoint>, ParseError> {
    let failure = RefCell::new(None);
    let seed = FileSeed { failure: &failure };
    let result = match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            seed.deserialize(&mut de)
                .and_then(|endpoints| de.end().map(|()| endpoints))
                .map_err(|e| json_error(text, &e))
        }
        Format::Toml => toml::de::Deserializer::parse(text)
            .and_then(|de| seed.deserialize(de))
            .map_err(|e| toml_error(text, &e)),
    };
    result.map_err(|(line, column, message)| {
        let kind = failure
            .into_inner()
            .unwrap_or(ParseErrorKind::Malformed(message));
        ParseError::new(line, column, kind)
    })
}

/// The error for bytes that are not UTF-8, placed at the first invalid byte.
pub(super) fn not_utf8(bytes: &[u8], valid_up_to: usize) -> ParseError {
    // `valid_up_to` is a char boundary of the valid prefix by definition.
    let text = std::str::from_utf8(&bytes[..valid_up_to]).unwrap_or_default();
    let (line, column) = line_column(text, text.len());
    ParseError::new(line, column, ParseErrorKind::NotUtf8)
}

/// Line and column (both from 1, the column in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

fn json_error(text: &str, e: &serde_json::Error) -> (usize, usize, String) {
    let message = e.to_string();
    if e.line() == 0 {
        return (1, 1, message);
    }
    // serde_json appends the position to its message, and counts columns in bytes from 1 at the
    // byte where it stopped.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
    let line_offset = text
        .split_inclusive('\n')
        .take(e.line() - 1)
        .map(str::len)
        .sum::<usize>();
    let offset = line_offset + e.column().saturating_sub(1);
    let (line, column) = line_column(text, offset);
    (line, column, message)
}

fn toml_error(text: &str, e: &toml::de::Error) -> (usize, usize, String) {
    // Errors about the document as a whole (a missing top-level key) carry no span: they are
    // placed at its start.
    let offset = e.span().map_or(0, |s| s.start);
    let (line, column) = line_column(text, offset);
    (line, column, e.message().to_owned())
}

/// Records a typed failure, and returns the deserializer's error carrying its message (and, from
/// the deserializer, its position).
fn fail<E: de::Error>(failure: &RefCell<Option<ParseErrorKind>>, kind: ParseErrorKind) -> E {
    let e = E::custom(&kind);
    *failure.borrow_mut() = Some(kind);
    e
}

#[derive(Clone, Copy)]
struct FileSeed<'a> {
    failure: &'a RefCell<Option<ParseErrorKind>>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum FileField {
    Endpoints,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = Vec<Endpoint>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct("EndpointFile", &["endpoints"], self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = Vec<Endpoint>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table with an `endpoints` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut endpoints = None;
        while let Some(FileField::Endpoints) = map.next_key()? {
            if endpoints.is_some() {
                return Err(de::Error::duplicate_field("endpoints"));
            }
            endpoints = Some(map.next_value_seed(ListSeed(self))?);
        }
        endpoints.ok_or_else(|| de::Error::missing_field("endpoints"))
    }
}

struct ListSeed<'a>(FileSeed<'a>);

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Vec<Endpoint>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = Vec<Endpoint>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of endpoint tables")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashMap::new();
        let mut endpoints = Vec::new();
        loop {
            let entry = EntrySeed {
                failure: self.0.failure,
                index: endpoints.len(),
                seen: &mut seen,
            };
            match seq.next_element_seed(entry)? {
                Some(endpoint) => endpoints.push(endpoint),
                None => return Ok(endpoints),
            }
        }
    }
}

struct EntrySeed<'a> {
    failure: &'a RefCell<Option<ParseErrorKind>>,
    index: usize,
    /// Every address so far, with the index of its entry.
    seen: &'a mut HashMap<SocketAddr, usize>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EntryField {
    Addr,
    Weight,
    Zone,
    Region,
    Labels,
    Identity,
}

const ENTRY_FIELDS: &[&str] = &["addr", "weight", "zone", "region", "labels", "identity"];

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Endpoint;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct("Endpoint", ENTRY_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Endpoint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an endpoint table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let index = self.index;
        let mut addr = None;
        let mut weight = None;
        let mut zone = None;
        let mut region = None;
        let mut labels = None;
        let mut identity = None;
        while let Some(field) = map.next_key()? {
            match field {
                EntryField::Addr => {
                    if addr.is_some() {
                        return Err(de::Error::duplicate_field("addr"));
                    }
                    let a = map.next_value_seed(AddrSeed {
                        failure: self.failure,
                        index,
                        seen: self.seen,
                    })?;
                    addr = Some(a);
                }
                EntryField::Weight => {
                    if weight.is_some() {
                        return Err(de::Error::duplicate_field("weight"));
                    }
                    let w = map.next_value_seed(WeightSeed {
                        failure: self.failure,
                        index,
                    })?;
                    weight = Some(w);
                }
                EntryField::Zone => {
                    if zone.is_some() {
                        return Err(de::Error::duplicate_field("zone"));
                    }
                    zone = Some(map.next_value::<String>()?);
                }
                EntryField::Region => {
                    if region.is_some() {
                        return Err(de::Error::duplicate_field("region"));
                    }
                    region = Some(map.next_value::<String>()?);
                }
                EntryField::Labels => {
                    if labels.is_some() {
                        return Err(de::Error::duplicate_field("labels"));
                    }
                    labels = Some(map.next_value_seed(LabelsSeed)?);
                }
                EntryField::Identity => {
                    if identity.is_some() {
                        return Err(de::Error::duplicate_field("identity"));
                    }
                    identity = Some(map.next_value::<String>()?);
                }
            }
        }
        let addr = addr.ok_or_else(|| de::Error::missing_field("addr"))?;
        let mut endpoint = Endpoint::new(addr).with_weight(weight.unwrap_or_default());
        if let Some(zone) = zone {
            endpoint = endpoint.with_zone(zone);
        }
        if let Some(region) = region {
            endpoint = endpoint.with_region(region);
        }
        for (name, value) in labels.unwrap_or_default() {
            endpoint = endpoint.with_label(name, value);
        }
        if let Some(identity) = identity {
            endpoint = endpoint.with_identity(identity);
        }
        Ok(endpoint)
    }
}

/// An `addr` value, checked where it is read so that errors point at it: an IP address and port,
/// not listed by an earlier entry.
struct AddrSeed<'a, 'b> {
    failure: &'a RefCell<Option<ParseErrorKind>>,
    index: usize,
    seen: &'b mut HashMap<SocketAddr, usize>,
}

impl<'de> DeserializeSeed<'de> for AddrSeed<'_, '_> {
    type Value = SocketAddr;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AddrSeed<'_, '_> {
    type Value = SocketAddr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IP address and port as a string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        let index = self.index;
        let Ok(addr) = value.parse::<SocketAddr>() else {
            let value = value.to_owned();
            return Err(fail(
                self.failure,
                ParseErrorKind::InvalidAddr { index, value },
            ));
        };
        if let Some(&first) = self.seen.get(&addr) {
            let kind = ParseErrorKind::DuplicateAddr { index, first, addr };
            return Err(fail(self.failure, kind));
        }
        self.seen.insert(addr, index);
        Ok(addr)
    }
}

/// A `weight` value, checked where it is read: an integer from 1 to `u32::MAX`.
struct WeightSeed<'a> {
    failure: &'a RefCell<Option<ParseErrorKind>>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for WeightSeed<'_> {
    type Value = Weight;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_u32(self)
    }
}

impl<'de> Visitor<'de> for WeightSeed<'_> {
    type Value = Weight;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer from 1 to 4294967295")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let raw =
            u32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))?;
        let index = self.index;
        Weight::new(raw).map_err(|weight| {
            fail(
                self.failure,
                ParseErrorKind::InvalidWeight { index, weight },
            )
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }
}

/// A string-to-string table that refuses a repeated name (JSON allows one; TOML does not).
struct LabelsSeed;

impl<'de> DeserializeSeed<'de> for LabelsSeed {
    type Value = BTreeMap<String, String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LabelsSeed {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of label names to string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut labels = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value::<String>()?;
            if labels.contains_key(&name) {
                return Err(de::Error::custom(format_args!("duplicate label {name:?}")));
            }
            labels.insert(name, value);
        }
        Ok(labels)
    }
}

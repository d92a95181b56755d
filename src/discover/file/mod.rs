//! File discovery: endpoints listed in a JSON or TOML file, reloaded when it changes.
//!
//! [`File`] is a discovery source for the endpoints a deployment tool, a configuration manager
//! or an operator writes to disk: a Kubernetes ConfigMap mounted as a volume, a file rendered
//! by consul-template or Ansible, a hand-edited list on a developer's machine. It reads the
//! file, yields its endpoints as an [`Update::Reset`](super::Update::Reset), and yields the new
//! set whenever the file's endpoints change. A file that cannot be read or does not parse is
//! reported once, with its path (and for a parse error the line and column), and the balancer
//! keeps its last good set until a valid version appears.
//!
//! # The file format
//!
//! One top-level key, `endpoints`, an array of tables with these fields:
//!
//! | field | type | required | meaning |
//! |---|---|---|---|
//! | `addr` | string | yes | IP address and port: `10.0.0.1:8080`, `[2001:db8::1]:8080` (no host names: resolve those with DNS discovery) |
//! | `weight` | integer, 1 to 4294967295 | no, default 1 | relative share for weighted pickers |
//! | `zone` | string | no | locality, such as an availability zone |
//! | `region` | string | no | the group of zones it belongs to, for failover order |
//! | `labels` | table of strings | no | free-form metadata |
//! | `identity` | string | no | the identity (SPIFFE ID or DNS name) the peer must prove over TLS |
//!
//! JSON ([RFC 8259](https://www.rfc-editor.org/rfc/rfc8259)), chosen by a `.json` extension:
//!
//! ```json
//! {
//!   "endpoints": [
//!     {"addr": "10.0.0.1:8080", "weight": 3, "zone": "eu-west-1a",
//!      "labels": {"version": "canary"}, "identity": "spiffe://example.org/api"},
//!     {"addr": "10.0.0.2:8080"}
//!   ]
//! }
//! ```
//!
//! TOML ([v1.0.0](https://toml.io/en/v1.0.0)), chosen by a `.toml` extension, the same shape as
//! an array of tables:
//!
//! ```toml
//! [[endpoints]]
//! addr = "10.0.0.1:8080"
//! weight = 3
//! zone = "eu-west-1a"
//! labels = { version = "canary" }
//! identity = "spiffe://example.org/api"
//!
//! [[endpoints]]
//! addr = "10.0.0.2:8080"
//! ```
//!
//! The format is strict, because a typo in a routing file should stop the rollout of that file,
//! not route traffic by a guess: an unknown field (`wieght`), a missing `endpoints` key (which
//! also catches an empty or truncated TOML file, a valid empty document), a repeated field or
//! label, a weight of zero, an address that is not `IP:port`, and an address listed twice are
//! all errors naming the value, the entry (`endpoints[i]`, from 0) and the line and column. An
//! empty set is written `"endpoints": []` (JSON) or `endpoints = []` (TOML).
//! [`parse_endpoints`] is the parser on its own, for tools that check a file before installing
//! it.
//!
//! # Reloading
//!
//! The source polls: every interval (1 s by default, see [`FileBuilder`]) it reads the file's
//! metadata: size, modification time and, on Unix, device, inode and inode change time. When the
//! metadata is as it was at the last read, and the file had last changed at least 3 s before that
//! read started, the content is trusted to be unchanged and the file is not read: an unchanged
//! file costs one `stat` call per interval. Otherwise the file is read, compared byte for byte
//! with the last content, and parsed only if it differs. The 3 s margin (git's "racily clean"
//! rule, above FAT's 2 s timestamp granularity) means that a second write landing within the same
//! timestamp tick as a read is not missed; the inode change time, which no tool can set back,
//! means that a same-size rewrite that restores the old modification time (`cp -p`, `rsync -t`)
//! is not missed either. On other platforms such a rewrite is seen once its size or modification
//! time changes.
//!
//! A new set is yielded only when it differs from the last yielded set regardless of order, so
//! rewriting a file with the same endpoints, or the same endpoints reordered, yields nothing.
//!
//! Polling rather than inotify, kqueue or FSEvents: polling works the same on every platform and
//! every file system, including NFS and other network file systems that send no change events,
//! and it follows the symlink swaps Kubernetes uses to update a mounted ConfigMap (which watchers
//! on the file itself miss). It needs no extra dependency, no background thread and no watch
//! descriptors (a limited resource on Linux). The price is a delay of up to one interval before a
//! change is seen, short next to the time a deployment takes to start or drain an instance.
//!
//! Files are read on Tokio's blocking pool, so the runtime's workers never wait on the disk.
//!
//! # Writing the file safely
//!
//! A reader may see a file while it is being written. A half-written JSON file does not parse,
//! so it is reported and the last good set kept until the write completes; so does an empty TOML
//! file (no `endpoints` key). But a TOML file cut between two `[[endpoints]]` tables is valid
//! and lists fewer endpoints, and no reader can tell.
//! Write the new version to a temporary file in the same directory and rename it over the old
//! one (an atomic replace), as configuration managers and Kubernetes do.
//!
//! # Examples
//!
//! ```
//! use futures_util::StreamExt;
//! use tower_mesh::discover::Update;
//! use tower_mesh::discover::file::File;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! let path = std::env::temp_dir().join(format!("tower-mesh-doc-{}.toml", std::process::id()));
//! std::fs::write(&path, "[[endpoints]]\naddr = \"10.0.0.1:8080\"\nweight = 2\n")?;
//!
//! let mut file = File::new(&path)?;
//! let Some(Ok(Update::Reset(endpoints))) = file.next().await else { panic!("no set") };
//! assert_eq!(endpoints[0].addr(), "10.0.0.1:8080".parse()?);
//! assert_eq!(endpoints[0].weight().get(), 2);
//! # std::fs::remove_file(&path)?;
//! # Ok(())
//! # }
//! ```
//!
//! Giving it to a balancer is the same as any other source:
//! `Balance::builder(picker).build(File::new("/etc/mesh/api.json")?, make_client)`.

mod builder;
mod error;
mod parse;
mod stream;

pub use self::builder::FileBuilder;
pub use self::error::{FileConfigError, FileError, ParseError, ParseErrorKind};
pub use self::parse::{Format, parse_endpoints};
pub use self::stream::File;

#[cfg(test)]
mod tests;

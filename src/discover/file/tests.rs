use std::net::SocketAddr;
use std::path::Path;

use super::*;
use crate::endpoint::{Endpoint, Weight};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn err(text: &str, format: Format) -> ParseError {
    parse_endpoints(text, format).expect_err(text)
}

#[test]
fn parses_every_field_in_both_formats() {
    let json = r#"{"endpoints": [
        {"addr": "10.0.0.1:8080", "weight": 3, "zone": "eu-west-1a",
         "labels": {"version": "canary", "shard": "7"}, "identity": "spiffe://example.org/api"},
        {"addr": "[2001:db8::1]:9090"}
    ]}"#;
    let toml = r#"
[[endpoints]]
addr = "10.0.0.1:8080"
weight = 3
zone = "eu-west-1a"
identity = "spiffe://example.org/api"
[endpoints.labels]
version = "canary"
shard = "7"

[[endpoints]]
addr = "[2001:db8::1]:9090"
"#;
    let expected = vec![
        Endpoint::new(addr("10.0.0.1:8080"))
            .with_weight(Weight::new(3).unwrap())
            .with_zone("eu-west-1a")
            .with_label("version", "canary")
            .with_label("shard", "7")
            .with_identity("spiffe://example.org/api"),
        Endpoint::new(addr("[2001:db8::1]:9090")),
    ];
    assert_eq!(parse_endpoints(json, Format::Json).unwrap(), expected);
    assert_eq!(parse_endpoints(toml, Format::Toml).unwrap(), expected);
}

#[test]
fn empty_lists_are_valid_but_a_missing_key_is_not() {
    assert_eq!(
        parse_endpoints(r#"{"endpoints": []}"#, Format::Json).unwrap(),
        vec![]
    );
    assert_eq!(
        parse_endpoints("endpoints = []", Format::Toml).unwrap(),
        vec![]
    );
    for (text, format) in [
        ("{}", Format::Json),
        ("", Format::Toml),
        ("# nothing\n", Format::Toml),
    ] {
        let e = err(text, format);
        assert_eq!(
            *e.kind(),
            ParseErrorKind::Malformed("missing field `endpoints`".into()),
            "{text:?}"
        );
        assert_eq!(
            (e.line(), e.column()),
            (1, if format == Format::Json { 2 } else { 1 })
        );
    }
    let e = err("", Format::Json);
    assert_eq!((e.line(), e.column()), (1, 1));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    // JSON: the `:` is missing after "addr" on line 3; serde_json stops at the string after it.
    let e = err(
        "{\"endpoints\": [\n  {\n    \"addr\" \"10.0.0.1:80\"}\n]}",
        Format::Json,
    );
    assert_eq!((e.line(), e.column()), (3, 12), "{e}");
    assert!(
        e.to_string().starts_with("line 3, column 12: expected `:`"),
        "{e}"
    );
    // TOML: an unterminated string on line 2.
    let e = err("[[endpoints]]\naddr = \"10.0.0.1:80\n", Format::Toml);
    assert_eq!(e.line(), 2, "{e}");
    assert!(matches!(e.kind(), ParseErrorKind::Malformed(_)));
    // Columns count characters, not bytes.
    let e = err(
        "{\"endpoints\": [{\"zone\": \"é\", \"x\": 1}]}",
        Format::Json,
    );
    assert_eq!((e.line(), e.column()), (1, 32), "{e}");
}

#[test]
fn unknown_and_repeated_fields_are_refused() {
    let e = err(
        r#"{"endpoints": [{"addr": "10.0.0.1:80", "wieght": 2}]}"#,
        Format::Json,
    );
    let ParseErrorKind::Malformed(m) = e.kind() else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("unknown field `wieght`, expected one of `addr`"),
        "{m}"
    );
    let e = err(
        "[[endpoints]]\naddr = \"10.0.0.1:80\"\nwieght = 2\n",
        Format::Toml,
    );
    assert_eq!(e.line(), 3, "{e}");
    assert!(e.to_string().contains("unknown field `wieght`"), "{e}");
    let e = err(r#"{"endpoints": [], "extra": 1}"#, Format::Json);
    assert!(e.to_string().contains("unknown field `extra`"), "{e}");
    let e = err(
        r#"{"endpoints": [{"addr": "10.0.0.1:80", "addr": "10.0.0.2:80"}]}"#,
        Format::Json,
    );
    assert!(e.to_string().contains("duplicate field `addr`"), "{e}");
    let e = err(
        r#"{"endpoints": [{"addr": "10.0.0.1:80", "labels": {"a": "1", "a": "2"}}]}"#,
        Format::Json,
    );
    assert!(e.to_string().contains("duplicate label \"a\""), "{e}");
    let e = err(r#"{"endpoints": [{"weight": 2}]}"#, Format::Json);
    assert!(e.to_string().contains("missing field `addr`"), "{e}");
    let e = err(
        r#"{"endpoints": [{"addr": "10.0.0.1:80", "zone": null}]}"#,
        Format::Json,
    );
    assert!(e.to_string().contains("invalid type: null"), "{e}");
}

#[test]
fn bad_addresses_are_named_with_their_entry_and_place() {
    let e = err(
        "{\"endpoints\": [\n {\"addr\": \"10.0.0.1:80\"},\n {\"addr\": \"api.internal:80\"}\n]}",
        Format::Json,
    );
    assert_eq!(
        *e.kind(),
        ParseErrorKind::InvalidAddr {
            index: 1,
            value: "api.internal:80".into()
        }
    );
    assert_eq!((e.line(), e.column()), (3, 27), "{e}");
    let e = err(
        "[[endpoints]]\naddr = \"10.0.0.1:80\"\n[[endpoints]]\naddr = \"10.0.0.1\"\n",
        Format::Toml,
    );
    assert_eq!(
        *e.kind(),
        ParseErrorKind::InvalidAddr {
            index: 1,
            value: "10.0.0.1".into()
        }
    );
    assert_eq!((e.line(), e.column()), (4, 8), "{e}");
    assert!(
        e.to_string()
            .contains("endpoints[1]: invalid address \"10.0.0.1\""),
        "{e}"
    );
}

#[test]
fn zero_weights_are_refused_with_the_weight_error() {
    let e = err(
        "[[endpoints]]\naddr = \"10.0.0.1:80\"\nweight = 0\n",
        Format::Toml,
    );
    let ParseErrorKind::InvalidWeight { index: 0, weight } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(weight.value(), "0");
    assert_eq!((e.line(), e.column()), (3, 10), "{e}");
    let e = err(
        r#"{"endpoints": [{"addr": "10.0.0.1:80", "weight": 0}]}"#,
        Format::Json,
    );
    assert!(
        matches!(e.kind(), ParseErrorKind::InvalidWeight { index: 0, .. }),
        "{e:?}"
    );
    for bad in ["-1", "4294967296", "1.5", "\"3\""] {
        let text = format!(r#"{{"endpoints": [{{"addr": "10.0.0.1:80", "weight": {bad}}}]}}"#);
        assert!(
            matches!(
                err(&text, Format::Json).kind(),
                ParseErrorKind::Malformed(_)
            ),
            "{bad}"
        );
    }
}

#[test]
fn duplicate_addresses_are_refused_naming_both_entries() {
    let e = err(
        r#"{"endpoints": [{"addr": "10.0.0.1:80"}, {"addr": "10.0.0.2:80"}, {"addr": "10.0.0.1:80"}]}"#,
        Format::Json,
    );
    assert_eq!(
        *e.kind(),
        ParseErrorKind::DuplicateAddr {
            index: 2,
            first: 0,
            addr: addr("10.0.0.1:80")
        }
    );
    let e = err(
        "[[endpoints]]\naddr = \"[::1]:80\"\n[[endpoints]]\naddr = \"[::1]:80\"\n",
        Format::Toml,
    );
    assert!(matches!(
        e.kind(),
        ParseErrorKind::DuplicateAddr {
            index: 1,
            first: 0,
            ..
        }
    ));
    assert_eq!(e.line(), 4, "{e}");
}

#[test]
fn trailing_garbage_and_non_utf8_are_errors() {
    let e = err("{\"endpoints\": []} x", Format::Json);
    assert!(e.to_string().contains("trailing characters"), "{e}");
    let e = super::parse::not_utf8(b"ab\ncd\xffe", 5);
    assert_eq!(
        (e.line(), e.column(), e.kind()),
        (2, 3, &ParseErrorKind::NotUtf8)
    );
}

#[test]
fn format_follows_the_extension() {
    assert_eq!(Format::from_path(Path::new("a.json")), Some(Format::Json));
    assert_eq!(Format::from_path(Path::new("a.Json")), Some(Format::Json));
    assert_eq!(Format::from_path(Path::new("a.toml")), Some(Format::Toml));
    assert_eq!(Format::from_path(Path::new("a.yaml")), None);
    assert_eq!(Format::from_path(Path::new("json")), None);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<File>();
    check::<FileBuilder>();
    check::<FileError>();
    check::<FileConfigError>();
    check::<ParseError>();
}

mod observe {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::super::stream::{Config, LastRead, Observation, observe};
    use super::*;

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn setup(name: &str, settle: Duration) -> (Dir, Config) {
        let dir = std::env::temp_dir().join(format!(
            "tower-mesh-file-unit-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config {
            path: Arc::from(dir.join("e.json")),
            format: Format::Json,
            interval: Duration::from_secs(1),
            jitter: Duration::ZERO,
            max_len: 1 << 20,
            settle,
            runtime: tokio::runtime::Handle::current(),
        };
        (Dir(dir), config)
    }

    fn write(config: &Config, text: &str, modified: SystemTime) {
        std::fs::write(&config.path, text).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(&config.path)
            .unwrap();
        f.set_modified(modified).unwrap();
    }

    fn changed(o: Observation) -> (LastRead, Vec<Endpoint>) {
        match o {
            Observation::Changed(read, Ok(endpoints)) => (read, endpoints),
            other => panic!("expected a changed, valid file, got {other:?}"),
        }
    }

    const A: &str = r#"{"endpoints": [{"addr": "10.0.0.1:80"}]}"#;
    const B: &str = r#"{"endpoints": [{"addr": "10.0.0.2:80"}]}"#;

    #[tokio::test]
    async fn settled_metadata_skips_the_read_and_fresh_metadata_does_not() {
        // Settled at once: a fresh file's change time (which tests cannot set back) is trusted as
        // soon as a read starts after it.
        let (_dir, config) = setup("settled", Duration::ZERO);
        let old = SystemTime::now() - Duration::from_secs(3600);
        write(&config, A, old);
        let (first, endpoints) = changed(observe(&config, None).unwrap());
        assert_eq!(endpoints[0].addr(), addr("10.0.0.1:80"));

        // Untouched since: trusted, not read (the very same content buffer comes back).
        match observe(&config, Some(first.clone())).unwrap() {
            Observation::Unchanged(read) => assert!(Arc::ptr_eq(&read.content, &first.content)),
            other => panic!("{other:?}"),
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_recently_changed_file_is_read_and_compared() {
        let (_dir, config) = setup("fresh", super::super::stream::SETTLE);
        write(&config, A, SystemTime::now() - Duration::from_secs(3600));
        let (first, _) = changed(observe(&config, None).unwrap());
        // Same metadata, but changed (its inode change time) within the settle time of the
        // read: read again, and found equal byte for byte.
        match observe(&config, Some(first.clone())).unwrap() {
            Observation::Unchanged(read) => {
                assert!(!Arc::ptr_eq(&read.content, &first.content));
                assert_eq!(read.content, first.content);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A rewrite that keeps both the size and the (restored) modification time, as `cp -p` or
    /// `rsync -t` can produce, is still seen: the inode change time is recent, so the file is
    /// read and compared (even if the change time did not move within the clock's tick).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_same_size_rewrite_with_a_restored_mtime_is_seen() {
        let (_dir, config) = setup("restored", super::super::stream::SETTLE);
        let old = SystemTime::now() - Duration::from_secs(3600);
        write(&config, A, old);
        let (first, _) = changed(observe(&config, None).unwrap());
        write(&config, B, old);
        let (_, endpoints) = changed(observe(&config, Some(first)).unwrap());
        assert_eq!(endpoints[0].addr(), addr("10.0.0.2:80"));
    }
}

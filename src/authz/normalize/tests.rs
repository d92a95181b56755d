use super::normalizer::MAX_LEN;
use super::*;
use PathRejectReason as R;

fn strict(input: &str) -> Result<String, PathRejectReason> {
    Normalizer::new()
        .normalize(input)
        .map(|p| p.path_and_query().to_owned())
        .map_err(|e| e.reason())
}

#[test]
fn canonical_paths_are_copied_unchanged() {
    for p in [
        "/",
        "/a",
        "/a/",
        "/api/v1/users/42",
        "/pkg.Service/Method",
        "/a.b/..c/.d/e..",
        "/~user/!$&'()*+,=:@",
        "/a?",
        "/a?x=1&y=/../%2F?;",
    ] {
        assert_eq!(strict(p).as_deref(), Ok(p), "{p}");
    }
    // A raw `;` in the path is refused by default (servlet path parameters), kept on request.
    let p = "/~user/!$&'()*+,;=:@";
    assert_eq!(strict(p), Err(R::PathParameters));
    let keep = Normalizer::new().path_parameters(super::PathParameters::Keep);
    assert_eq!(
        keep.normalize(p).map(|n| n.as_str().to_owned()).as_deref(),
        Ok(p)
    );
    assert_eq!(strict("/admin;x/secret"), Err(R::PathParameters));
}

/// The fast path and the rewriting path agree: a canonical path forced through `rewrite` (by
/// adding a harmless escape of an unreserved character) comes out the same.
#[test]
fn fast_and_slow_paths_agree() {
    for p in ["/", "/a", "/a/", "/api/v1/users/42", "/a.b/..c/.d/e.."] {
        let forced = format!("{p}%7E");
        assert_eq!(strict(&forced), Ok(format!("{p}~")), "{forced}");
    }
}

#[test]
fn dot_segments() {
    let cases = [
        ("/a/./b", "/a/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/../../c", "/c"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("/./", "/"),
        ("/a/...", "/a/..."),
        ("/a/%2E", "/a/"),
        ("/a/%2e./b", "/b"),
        ("/a/.%2E/b", "/b"),
    ];
    for (input, want) in cases {
        assert_eq!(strict(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn above_root_is_refused() {
    for p in [
        "/..",
        "/../",
        "/a/../..",
        "/%2e%2e",
        "/a/./../../b",
        "/..?x",
    ] {
        assert_eq!(strict(p), Err(R::AboveRoot), "{p}");
    }
}

#[test]
fn dot_segments_with_parameters_are_refused() {
    for p in [
        "/public/..;/admin",
        "/public/..;x=1/admin",
        "/a/.;/b",
        "/a/%2e%2e;x",
        "/..;",
    ] {
        assert_eq!(strict(p), Err(R::DotSegmentParameters), "{p}");
    }
    for p in [
        "/a;x",
        "/a/...;x",
        "/a/;x",
        "/a/.b;",
        "/a/..%3B/b",
        "/a/x;..;",
    ] {
        // Not dot segments: kept as they are when path parameters are allowed, and refused
        // by default for holding a raw `;` (except `%3B`, which is not a separator).
        let keep = Normalizer::new().path_parameters(super::PathParameters::Keep);
        assert_eq!(
            keep.normalize(p).map(|n| n.as_str().to_owned()).as_deref(),
            Ok(p),
            "{p}"
        );
        let want = if p.contains(';') {
            Err(R::PathParameters)
        } else {
            Ok(p.to_owned())
        };
        assert_eq!(strict(p), want, "{p}");
    }
}

#[test]
fn slashes_merge_before_dots_resolve() {
    assert_eq!(strict("//a///b//").as_deref(), Ok("/a/b/"));
    assert_eq!(strict("/a//..").as_deref(), Ok("/"));
    assert_eq!(strict("/a/..//b").as_deref(), Ok("/b"));
    let reject = Normalizer::new().duplicate_slashes(DuplicateSlashes::Reject);
    assert_eq!(
        reject.normalize("/a//b").unwrap_err().reason(),
        R::DuplicateSlash
    );
    assert_eq!(
        reject.normalize("//a").unwrap_err().reason(),
        R::DuplicateSlash
    );
    assert_eq!(reject.normalize("/a/").unwrap().as_str(), "/a/");
    assert_eq!(reject.normalize("/").unwrap().as_str(), "/");
}

#[test]
fn escapes_decode_once_and_uppercase_the_rest() {
    let cases = [
        ("/%61%62%63", "/abc"),
        ("/%41%7e%2D%5f%30", "/A~-_0"),
        ("/%c3%a9", "/%C3%A9"),
        ("/%252e%252E", "/%252e%252E"),
        ("/%3b%3F%23%25%20", "/%3B%3F%23%25%20"),
    ];
    for (input, want) in cases {
        assert_eq!(strict(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn each_reason() {
    let cases = [
        ("", R::NotAbsolute),
        ("*", R::NotAbsolute),
        ("?x", R::NotAbsolute),
        ("a/b", R::NotAbsolute),
        ("http://h/a", R::NotAbsolute),
        ("%2Fa", R::NotAbsolute),
        ("/a%2Fb", R::EscapedSlash),
        ("/a%2fb", R::EscapedSlash),
        ("/a%5Cb", R::EscapedSlash),
        ("/a%5cb", R::EscapedSlash),
        ("/a\\b", R::Backslash),
        ("\\a", R::Backslash),
        ("/a\0", R::NulByte),
        ("/a%00", R::NulByte),
        ("/a\tb", R::ControlCharacter),
        ("/a%0Ab", R::ControlCharacter),
        ("/a%7f", R::ControlCharacter),
        ("/a\x7f", R::ControlCharacter),
        ("/a#f", R::Fragment),
        ("/a%zz", R::InvalidEscape),
        ("/a%4", R::InvalidEscape),
        ("/a%", R::InvalidEscape),
        ("/a%%41", R::InvalidEscape),
        ("/é", R::NonAscii),
        ("/a b", R::InvalidCharacter),
        ("/a\"b", R::InvalidCharacter),
        ("/{a}", R::InvalidCharacter),
        ("/a|b", R::InvalidCharacter),
        ("/a[0]", R::InvalidCharacter),
        ("/a^", R::InvalidCharacter),
        ("/a`", R::InvalidCharacter),
        ("/<a>", R::InvalidCharacter),
    ];
    for (input, want) in cases {
        assert_eq!(strict(input), Err(want), "{input:?}");
    }
}

#[test]
fn query_is_checked_and_kept_verbatim() {
    let n = Normalizer::new();
    let p = n.normalize("/a/../b?%2e%2e/..//%zz&x=|{}").unwrap();
    assert_eq!(p.as_str(), "/b");
    assert_eq!(p.query(), Some("%2e%2e/..//%zz&x=|{}"));
    assert_eq!(n.normalize("/a").unwrap().query(), None);
    assert_eq!(n.normalize("/a?").unwrap().query(), Some(""));
    for (input, want) in [
        ("/a?x#f", R::Fragment),
        ("/a?x y", R::InvalidCharacter),
        ("/a?\"", R::InvalidCharacter),
        ("/a?<", R::InvalidCharacter),
        ("/a?\0", R::NulByte),
        ("/a?\r\n", R::ControlCharacter),
        ("/a?é", R::NonAscii),
    ] {
        let err = n.normalize(input).unwrap_err();
        assert_eq!(err.reason(), want, "{input:?}");
        assert!(err.in_query(), "{input:?}");
        assert_eq!(err.path(), "/a");
    }
    // A fault in the path is reported before one in the query.
    let err = n.normalize("/a%2F?#").unwrap_err();
    assert_eq!((err.reason(), err.in_query()), (R::EscapedSlash, false));
}

#[test]
fn options() {
    let decode = Normalizer::new().escaped_slashes(EscapedSlashes::Decode);
    assert_eq!(decode.normalize("/a%2Fb%5cc").unwrap().as_str(), "/a/b/c");
    assert_eq!(decode.normalize("/a%2F%2F..%2fb").unwrap().as_str(), "/b");
    assert_eq!(
        decode.normalize("/a\\b").unwrap_err().reason(),
        R::Backslash
    );

    let backslash = Normalizer::new().backslashes(Backslashes::TreatAsSlash);
    assert_eq!(backslash.normalize("\\a\\..\\b\\").unwrap().as_str(), "/b/");
    assert_eq!(
        backslash.normalize("/a%5Cb").unwrap_err().reason(),
        R::EscapedSlash
    );

    let lower = Normalizer::new().case(PathCase::Lowercase);
    let p = lower.normalize("/ADMIN/%41b%c3%a9?Q=X").unwrap();
    assert_eq!(p.path_and_query(), "/admin/ab%C3%A9?Q=X");
    assert_eq!(lower.normalize("/admin").unwrap().as_str(), "/admin");
    assert_eq!(
        lower.normalize("/Pkg.Service/Method").unwrap().as_str(),
        "/pkg.service/method"
    );
}

#[test]
fn output_never_grows_and_fits_http() {
    let long = format!("/{}", "a".repeat(MAX_LEN - 1));
    let p = Normalizer::new().normalize(&long).unwrap();
    assert_eq!(http::uri::PathAndQuery::from(p).as_str(), long);
    let too_long = format!("/{}", "a".repeat(MAX_LEN));
    assert_eq!(strict(&too_long), Err(R::TooLong));
}

#[test]
fn error_names_the_path_without_query_and_bounded() {
    let err = Normalizer::new()
        .normalize("/a%2Fb?token=secret")
        .unwrap_err();
    assert_eq!(err.path(), "/a%2Fb");
    assert_eq!(
        err.to_string(),
        r#"rejected path "/a%2Fb": escaped slash or backslash"#
    );
    assert!(!err.to_string().contains("secret"));

    let err = Normalizer::new().normalize("/a?x#").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"rejected path "/a": fragment in the query"#
    );

    // Control characters are escaped in Display.
    let err = Normalizer::new().normalize("/a\r\nX-Admin: 1").unwrap_err();
    assert!(
        err.to_string()
            .starts_with(r#"rejected path "/a\r\nX-Admin: 1""#)
    );

    // A 64 KiB path is cut on a char boundary (`é` straddles byte 256).
    let hostile = format!("/{}{}", "a".repeat(254), "é".repeat(30_000));
    let err = Normalizer::new().normalize(&hostile).unwrap_err();
    assert_eq!(err.reason(), R::NonAscii);
    assert_eq!(err.path(), format!("/{}…", "a".repeat(254)));
    assert!(err.path().len() <= 256 + '…'.len_utf8());
}

#[test]
fn reason_display_is_lowercase() {
    for r in [
        R::NotAbsolute,
        R::TooLong,
        R::EscapedSlash,
        R::Backslash,
        R::DuplicateSlash,
        R::NulByte,
        R::ControlCharacter,
        R::Fragment,
        R::InvalidEscape,
        R::NonAscii,
        R::InvalidCharacter,
        R::AboveRoot,
        R::DotSegmentParameters,
    ] {
        let s = r.to_string();
        assert!(!s.is_empty() && !s.ends_with('.'), "{s}");
        assert!(s.starts_with(|c: char| c.is_ascii_lowercase()), "{s}");
    }
}

#[test]
fn public_types_are_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Normalizer>();
    check::<NormalizedPath>();
    check::<PathRejected>();
    check::<PathRejectReason>();
}

#[test]
fn hosts() {
    let cases = [
        ("example.com", Some("example.com")),
        ("API.Example.COM", Some("api.example.com")),
        ("api.example.com.", Some("api.example.com")),
        ("api.example.com.:8443", Some("api.example.com")),
        ("api:80", Some("api")),
        ("my_svc.ns", Some("my_svc.ns")),
        ("xn--bcher-kva.example", Some("xn--bcher-kva.example")),
        ("10.0.0.1", Some("10.0.0.1")),
        ("10.0.0.1.:80", Some("10.0.0.1")),
        ("[::1]", Some("[::1]")),
        ("[0:0::1]:8080", Some("[::1]")),
        ("[2001:DB8::A]", Some("[2001:db8::a]")),
        ("[::ffff:1.2.3.4]", Some("[::ffff:1.2.3.4]")),
        ("", None),
        (".", None),
        (":80", None),
        ("a..b", None),
        ("a.b..", None),
        ("api:", None),
        ("api:65536", None),
        ("api:+80", None),
        ("api:080080", None),
        ("user@api", None),
        ("-a.b", None),
        ("a-.b", None),
        ("bücher.example", None),
        ("a b", None),
        ("127.1", None),
        ("0x7f.0.0.1", None),
        ("010.0.0.1", None),
        ("256.0.0.1", None),
        ("a.123", None),
        ("::1", None),
        ("[::1", None),
        ("[::1]x", None),
        ("[::1]:", None),
        ("[fe80::1%25eth0]", None),
        ("[v1.x]", None),
        ("[1.2.3.4]", None),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_host(input).as_deref(), want, "{input:?}");
    }
    let label = "a".repeat(63);
    assert!(normalize_host(&label).is_some());
    assert!(normalize_host(&format!("{label}a")).is_none());
    let name = [label.as_str(); 4].join(".");
    assert_eq!(name.len(), 255);
    assert!(normalize_host(&name).is_none());
    assert!(normalize_host(&name[2..]).is_some());
}

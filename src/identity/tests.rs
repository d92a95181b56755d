use super::*;

#[test]
fn parses_spiffe_ids() {
    let id = SpiffeId::parse("spiffe://td-a/ns/x/sa/a").unwrap();
    assert_eq!(id.trust_domain_str(), "td-a");
    assert_eq!(id.trust_domain(), TrustDomain::parse("td-a").unwrap());
    assert_eq!(id.path(), "/ns/x/sa/a");
    assert_eq!(id.to_string(), "spiffe://td-a/ns/x/sa/a");
    // Path characters are case-sensitive and compared byte for byte.
    assert_ne!(
        SpiffeId::parse("spiffe://td/A").unwrap(),
        SpiffeId::parse("spiffe://td/a").unwrap()
    );
    assert!(SpiffeId::parse("spiffe://a.b_c-d/A.b_c-9").is_ok());
}

#[test]
fn refuses_bad_spiffe_forms() {
    use IdentityErrorKind::*;
    let cases = [
        ("", Empty),
        ("https://td-a/ns/x", WrongScheme),
        ("SPIFFE://td-a/a", WrongScheme),
        ("spiffe://td-a", RootPath),
        ("spiffe://td-a/", RootPath),
        ("spiffe:///a", EmptyTrustDomain),
        ("spiffe://td-a/a/../admin", DotSegment),
        ("spiffe://td-a/./a", DotSegment),
        ("spiffe://td-a/..", DotSegment),
        ("spiffe://td-a//a", EmptySegment),
        ("spiffe://td-a/a/", EmptySegment),
        ("spiffe://td-a/a%2Fb", BadPathChar),
        ("spiffe://td-a/a?x=1", BadPathChar),
        ("spiffe://td-a/a#f", BadPathChar),
        ("spiffe://u@td-a/a", BadTrustDomainChar),
        ("spiffe://td-a:443/a", BadTrustDomainChar),
        ("spiffe://TD-A/a", BadTrustDomainChar),
        ("spiffe://td-a/a b", BadPathChar),
        ("spiffe://td-a/a*", BadPathChar),
        ("spiffe://td-a/a\0", BadPathChar),
        ("spiffe://td-a/é", BadPathChar),
    ];
    for (input, kind) in cases {
        let err = Identity::parse(input).unwrap_err();
        assert_eq!(err.kind(), kind, "{input:?}");
        assert_eq!(err.value(), input);
    }
}

#[test]
fn caps_length_at_2048_bytes() {
    let prefix = "spiffe://td-a/";
    let exact = format!("{prefix}{}", "a".repeat(2048 - prefix.len()));
    assert_eq!(exact.len(), 2048);
    assert!(SpiffeId::parse(&exact).is_ok());
    let over = format!("{exact}a");
    assert_eq!(
        SpiffeId::parse(&over).unwrap_err().kind(),
        IdentityErrorKind::TooLong
    );
    let huge = format!("{prefix}{}", "a".repeat(64 * 1024));
    let err = SpiffeId::parse(&huge).unwrap_err();
    assert_eq!(err.kind(), IdentityErrorKind::TooLong);
    assert!(err.value().len() < 300, "the error keeps a bounded prefix");
}

#[test]
fn parses_dns_names() {
    let id = Identity::parse("A.ns.SVC.").unwrap();
    assert_eq!(id.as_dns().unwrap().as_str(), "a.ns.svc");
    assert_eq!(id, Identity::parse("a.ns.svc").unwrap());
    use IdentityErrorKind::*;
    for (input, kind) in [
        ("*.ns.svc", Wildcard),
        ("a*.ns.svc", Wildcard),
        ("10.0.0.1", IpAddress),
        ("a..b", BadDnsLabel),
        ("-a.b", BadDnsLabel),
        ("a_b.c", BadDnsLabel),
        ("a.b:443", WrongScheme),
        ("::1", WrongScheme),
        (".", Empty),
        // Multi-byte text where the scheme would end (a regression: this once panicked).
        ("ééééé", BadDnsLabel),
        ("spiffe:/é", WrongScheme),
        ("spiffe:é", WrongScheme),
    ] {
        assert_eq!(
            Identity::parse(input).unwrap_err().kind(),
            kind,
            "{input:?}"
        );
    }
}

#[test]
fn identity_types_are_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Identity>();
    check::<PeerIdentity>();
    check::<InvalidIdentity>();
}

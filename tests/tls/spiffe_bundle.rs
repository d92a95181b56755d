//! B15: SPIFFE bundles (JWK Sets) as trust bundles, end to end.

use base64::Engine as _;
use tower_mesh::identity::TrustDomain;
use tower_mesh::tls::{TlsConfigError, TrustBundle, TrustStore};

use crate::pki::Ca;
use crate::support::*;

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[tokio::test]
async fn b15_only_x509_svid_keys_are_trusted() {
    let (td_a, other, jwt_only) = (Ca::root("td-a"), Ca::root("other"), Ca::root("jwt"));
    // A jwt-svid key (even one carrying a certificate), an x509-svid key with no x5c, one
    // with an empty x5c, one with two certificates (only the first counts), and one with a
    // kid (accepted with a warning).
    let bundle = format!(
        r#"{{
          "spiffe_sequence": 7,
          "keys": [
            {{"use": "jwt-svid", "kty": "EC", "kid": "k1", "crv": "P-256", "x": "AA", "y": "AA",
              "x5c": ["{jwt}"]}},
            {{"use": "x509-svid", "kty": "EC"}},
            {{"use": "x509-svid", "kty": "EC", "x5c": []}},
            {{"use": "x509-svid", "kty": "EC", "x5c": ["{a}", "{other}"]}},
            {{"use": "x509-svid", "kty": "EC", "kid": "should-not-be-here", "x5c": ["{a}"]}}
          ]
        }}"#,
        jwt = b64(&jwt_only.cert),
        a = b64(&td_a.cert),
        other = b64(&other.cert),
    );
    let parsed = TrustBundle::from_spiffe_bundle(bundle.as_bytes()).unwrap();
    assert_eq!(parsed.len(), 1, "td-a's root, once: {parsed:?}");

    let client = builder(&td_a.spiffe_leaf(CLIENT), &[])
        .trust(TrustStore::new().with_spiffe(TrustDomain::parse("td-a").unwrap(), parsed.clone()))
        .build()
        .unwrap();
    let good = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let stream = connect(&client, good.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);

    // Certificates from the second x5c entry and from the jwt-svid key vouch for nothing.
    for ca in [&other, &jwt_only] {
        let server = Server::start(config(&ca.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
        let err = connect(&client, server.addr, SERVER).await.unwrap_err();
        assert_eq!(cert_error(&err), rustls::CertificateError::UnknownIssuer);
        assert_eq!(server.calls(), 0);
    }
}

#[test]
fn b15_bad_bundles_are_typed_errors() {
    // No usable certificate at all.
    let jwt_only = r#"{"keys": [{"use": "jwt-svid", "kty": "EC"}]}"#;
    assert!(matches!(
        TrustBundle::from_spiffe_bundle(jwt_only.as_bytes()),
        Err(TlsConfigError::EmptyBundle { .. })
    ));
    // Malformed JSON names the line and column.
    match TrustBundle::from_spiffe_bundle(b"{\n  \"keys\": [\n    {\"use\": }\n  ]\n}") {
        Err(e @ TlsConfigError::SpiffeBundle { .. }) => {
            assert!(e.to_string().contains("line 3"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // No keys array; x5c not base64.
    for bad in [
        r#"{"spiffe_sequence": 1}"#,
        r#"{"keys": [{"use": "x509-svid", "x5c": ["%%%"]}]}"#,
    ] {
        assert!(
            matches!(
                TrustBundle::from_spiffe_bundle(bad.as_bytes()),
                Err(TlsConfigError::SpiffeBundle { .. })
            ),
            "{bad}"
        );
    }
    // Not a certificate inside valid base64.
    let junk = format!(
        r#"{{"keys": [{{"use": "x509-svid", "x5c": ["{}"]}}]}}"#,
        b64(b"definitely not DER")
    );
    assert!(matches!(
        TrustBundle::from_spiffe_bundle(junk.as_bytes()),
        Err(TlsConfigError::InvalidTrustAnchor { .. })
    ));
}

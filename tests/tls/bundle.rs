//! G4's parsing half: a garbage trust bundle is refused with a typed error naming where it came
//! from, never read as "trust nothing" or as a partial bundle. (The reload half, keeping the
//! previous bundle, is in `rotation.rs`.)

use std::path::PathBuf;

use tower_mesh::tls::{Origin, TlsConfigError, TrustBundle};

use crate::pki::{Ca, pem};

/// A bundle case: a name, the bundle's bytes, and what reads the origin out of the error
/// expected for it (`None` for any other error).
type Case = (
    &'static str,
    Vec<u8>,
    fn(&TlsConfigError) -> Option<&Origin>,
);

fn cases(root: &Ca) -> Vec<Case> {
    fn empty(e: &TlsConfigError) -> Option<&Origin> {
        match e {
            TlsConfigError::EmptyBundle { origin } => Some(origin),
            _ => None,
        }
    }
    fn anchor(e: &TlsConfigError) -> Option<&Origin> {
        match e {
            TlsConfigError::InvalidTrustAnchor { origin, .. } => Some(origin),
            _ => None,
        }
    }
    fn malformed(e: &TlsConfigError) -> Option<&Origin> {
        match e {
            TlsConfigError::Pem { origin, .. } => Some(origin),
            _ => None,
        }
    }
    let junk_block = pem(
        "CERTIFICATE",
        b"\x30\x03\x02\x01\x00 this is not a certificate",
    );
    vec![
        // No PEM at all: no certificate, refused as empty.
        ("garbage", b"\x00\xffnot pem at all\n".to_vec(), empty),
        // A PEM block that is not a certificate (a key): no certificate either.
        (
            "key-only",
            pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00").into_bytes(),
            empty,
        ),
        // A CERTIFICATE block whose contents are not a certificate.
        ("junk-block", junk_block.clone().into_bytes(), anchor),
        // A good root followed by a junk block: the whole bundle is refused, not the good part
        // kept.
        (
            "good-then-junk",
            format!("{}{junk_block}", root.pem()).into_bytes(),
            anchor,
        ),
        // Broken base64 inside a CERTIFICATE block.
        (
            "bad-base64",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
            malformed,
        ),
    ]
}

#[test]
fn garbage_bundles_are_refused_naming_their_origin() {
    let root = Ca::root("td-a");
    let dir = std::env::temp_dir().join(format!("tower-mesh-tls-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes, expected) in cases(&root) {
        let err = TrustBundle::from_pem(&bytes).unwrap_err();
        assert_eq!(expected(&err), Some(&Origin::Memory), "{name}: {err:?}");
        let path: PathBuf = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &bytes).unwrap();
        let err = TrustBundle::from_pem_file(&path).unwrap_err();
        assert_eq!(
            expected(&err),
            Some(&Origin::File(path.clone())),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains(&format!("{name}.pem")),
            "{name}: {err}"
        );
    }
    // Control: the good root alone is a bundle of one.
    assert_eq!(
        TrustBundle::from_pem(root.pem().as_bytes()).unwrap().len(),
        1
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

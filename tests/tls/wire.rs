//! Byte-level helpers for attacks no TLS or X.509 library will produce: hand-built legacy
//! ClientHellos, a TLS record splitter, a ClientHello rewriter for a downgrade man in the
//! middle, and DER surgery on certificates.

/// Content type of a TLS alert record.
pub(crate) const ALERT: u8 = 0x15;
/// Content type of a TLS handshake record.
pub(crate) const HANDSHAKE: u8 = 0x16;
/// Content type of a TLS application data record (every encrypted TLS 1.3 record).
pub(crate) const APPLICATION_DATA: u8 = 0x17;
/// Content type of a TLS change_cipher_spec record (TLS 1.3 middlebox compatibility).
pub(crate) const CHANGE_CIPHER_SPEC: u8 = 0x14;

/// `bytes` split into TLS records: `(content type, payload)`. Panics on a truncated record.
pub(crate) fn records(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 5, "truncated record header: {bytes:?}");
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        assert!(bytes.len() >= 5 + len, "truncated record");
        out.push((bytes[0], bytes[5..5 + len].to_vec()));
        bytes = &bytes[5 + len..];
    }
    out
}

/// A minimal ClientHello record as a TLS 1.0 (`[3, 1]`) or TLS 1.1 (`[3, 2]`) client sends it:
/// legacy version only, no `supported_versions`, CBC suites. With `signature_algorithms`, the
/// hello carries that extension too (TLS 1.0/1.1 clients do not send it), so that a server
/// gets as far as judging the version.
pub(crate) fn legacy_client_hello(version: [u8; 2], signature_algorithms: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // no session id
    // TLS_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_256_CBC_SHA,
    // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
    body.extend_from_slice(&[0x00, 0x06, 0x00, 0x2f, 0x00, 0x35, 0xc0, 0x09]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    if signature_algorithms {
        // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pkcs1_sha256
        let ext = [0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01];
        body.extend_from_slice(&u16_len(ext.len()));
        body.extend_from_slice(&ext);
    }
    let handshake = handshake(1, &body);
    let mut record = vec![HANDSHAKE, version[0], version[1]];
    record.extend_from_slice(&u16_len(handshake.len()));
    record.extend_from_slice(&handshake);
    record
}

/// The downgrade attack of SECURITY.md A20, on one ClientHello record: removes the
/// `supported_versions` extension (so a server sees a TLS 1.2 client) and, since a TLS 1.3-only
/// client offers no TLS 1.2 cipher suite, adds TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256.
pub(crate) fn strip_supported_versions(record: Vec<u8>) -> Vec<u8> {
    assert_eq!(record[0], HANDSHAKE, "not a handshake record");
    assert_eq!(record[5], 1, "not a ClientHello");
    let body = &record[9..];
    let mut at = 2 + 32; // legacy version, random
    let session = 1 + usize::from(body[at]);
    let mut out = body[..at + session].to_vec();
    at += session;
    let suites_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    let mut suites = body[at + 2..at + 2 + suites_len].to_vec();
    at += 2 + suites_len;
    if !suites.chunks(2).any(|s| s == [0xc0, 0x2b]) {
        suites.extend_from_slice(&[0xc0, 0x2b]);
    }
    out.extend_from_slice(&u16_len(suites.len()));
    out.extend_from_slice(&suites);
    let compression = 1 + usize::from(body[at]);
    out.extend_from_slice(&body[at..at + compression]);
    at += compression;
    let ext_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    let mut exts = &body[at + 2..at + 2 + ext_len];
    let mut kept = Vec::new();
    let mut stripped = false;
    while !exts.is_empty() {
        let len = 4 + usize::from(u16::from_be_bytes([exts[2], exts[3]]));
        if exts[..2] == [0x00, 0x2b] {
            stripped = true;
        } else {
            kept.extend_from_slice(&exts[..len]);
        }
        exts = &exts[len..];
    }
    assert!(
        stripped,
        "the ClientHello had no supported_versions extension"
    );
    out.extend_from_slice(&u16_len(kept.len()));
    out.extend_from_slice(&kept);
    let handshake = handshake(1, &out);
    let mut rewritten = record[..3].to_vec();
    rewritten.extend_from_slice(&u16_len(handshake.len()));
    rewritten.extend_from_slice(&handshake);
    rewritten
}

/// The random of the ServerHello at the start of a server's byte stream.
pub(crate) fn server_hello_random(server_bytes: &[u8]) -> [u8; 32] {
    let records = records_prefix(server_bytes);
    let (kind, payload) = &records[0];
    assert_eq!((*kind, payload[0]), (HANDSHAKE, 2), "not a ServerHello");
    payload[6..38].try_into().unwrap()
}

/// Like [`records`], but stops at a truncated tail instead of panicking.
fn records_prefix(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        if bytes.len() < 5 + len {
            break;
        }
        out.push((bytes[0], bytes[5..5 + len].to_vec()));
        bytes = &bytes[5 + len..];
    }
    out
}

/// The DER of `cert` with its signature algorithm (both `tbsCertificate.signature` and
/// `signatureAlgorithm`, which webpki requires to be equal) replaced by `algorithm`, a whole
/// AlgorithmIdentifier. The signature value is kept: webpki refuses an unsupported algorithm
/// before it looks at the signature.
pub(crate) fn with_signature_algorithm(cert: &[u8], algorithm: &[u8]) -> Vec<u8> {
    let (tag, content, rest) = tlv(cert);
    assert!(tag == 0x30 && rest.is_empty());
    let (tbs, content) = element(content);
    let (_old, content) = element(content);
    let (signature, rest) = element(content);
    assert!(rest.is_empty());
    let (tag, tbs_content, _) = tlv(tbs);
    assert_eq!(tag, 0x30);
    // tbsCertificate: [0] version, serialNumber, signature, then the rest as is.
    let (version, after) = element(tbs_content);
    let (serial, after) = element(after);
    let (_old, after) = element(after);
    let new_tbs = der(0x30, &[version, serial, algorithm, after].concat());
    der(0x30, &[&new_tbs[..], algorithm, signature].concat())
}

/// One DER element: `(tag, content, rest)`. Definite lengths only.
pub(crate) fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let (header, len) = header(input);
    (
        input[0],
        &input[header..header + len],
        &input[header + len..],
    )
}

/// One whole DER element (header included) and the rest.
fn element(input: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = header(input);
    input.split_at(header + len)
}

fn header(input: &[u8]) -> (usize, usize) {
    match input[1] {
        n @ 0..=0x7f => (2, usize::from(n)),
        0x81 => (3, usize::from(input[2])),
        0x82 => (4, usize::from(u16::from_be_bytes([input[2], input[3]]))),
        0x83 => (
            5,
            usize::from(input[2]) << 16 | usize::from(input[3]) << 8 | usize::from(input[4]),
        ),
        n => panic!("unsupported DER length form {n:#x}"),
    }
}

/// A DER element.
pub(crate) fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n @ 0..=0x7f => out.push(n as u8),
        n @ 0x80..=0xff => out.extend_from_slice(&[0x81, n as u8]),
        n @ 0x100..=0xffff => {
            out.push(0x82);
            out.extend_from_slice(&u16_len(n));
        }
        n => {
            let n = u32::try_from(n).unwrap().to_be_bytes();
            assert_eq!(n[0], 0, "DER element under 16 MiB");
            out.extend_from_slice(&[0x83, n[1], n[2], n[3]]);
        }
    }
    out.extend_from_slice(content);
    out
}

fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut out = vec![kind, len[1], len[2], len[3]];
    out.extend_from_slice(body);
    out
}

fn u16_len(len: usize) -> [u8; 2] {
    u16::try_from(len).unwrap().to_be_bytes()
}

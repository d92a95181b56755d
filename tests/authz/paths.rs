//! Group D, path normalization and the request line, as raw HTTP/1 bytes over mTLS (hyper's
//! client would normalize or refuse most of these). Each attack runs against two servers: the
//! recommended "ALLOW only `/public/**`" policy, and the deliberately vulnerable "DENY
//! `/admin/**`, allow the rest". For each, the test asserts the status and **the exact
//! request-target the application received**, or that it was never called.

use crate::support::*;
use tower_mesh::authz::AuthzLayer;

/// What a request must come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Refused with this status; the application never called.
    Refused(u16),
    /// 200, and the application received exactly this request-target.
    Forwarded(&'static str),
}

use Outcome::{Forwarded, Refused};

struct Fixture {
    allow: (Server, Client),
    deny: (Server, Client),
}

impl Fixture {
    async fn new() -> Fixture {
        let mesh = Mesh::new();
        let allow = AuthzLayer::new(policy(&format!(
            r#"
            [[rules]]
            name = "a-reads-public"
            action = "allow"
            from.principals = ["{A}"]
            to.paths = ["/public/**"]
            "#
        )));
        let deny = AuthzLayer::new(policy(
            r#"
            [[rules]]
            name = "deny-admin"
            action = "deny"
            to.paths = ["/admin/**"]

            [[rules]]
            name = "allow-the-rest"
            action = "allow"
            "#,
        ));
        let allow = Server::start(mesh.tls(SERVER), allow).await;
        let deny = Server::start(mesh.tls(SERVER), deny).await;
        let (ca, cd) = (Client::new(&mesh, A, &allow), Client::new(&mesh, A, &deny));
        Fixture {
            allow: (allow, ca),
            deny: (deny, cd),
        }
    }

    /// Sends `request` (raw bytes) to both servers and checks both outcomes.
    async fn check(&self, request: &str, allow: Outcome, deny: Outcome) {
        for ((server, client), want, name) in [
            (&self.allow, allow, "ALLOW /public/**"),
            (&self.deny, deny, "DENY /admin/**"),
        ] {
            let before = server.calls();
            let raw = client.raw(request.as_bytes()).await;
            let called = server.calls() - before;
            let got = match called {
                0 => Refused(raw.status()),
                1 if raw.status() == 200 => {
                    let uri = server.last().unwrap().uri;
                    Forwarded(Box::leak(uri.into_boxed_str()))
                }
                _ => panic!(
                    "{name}: {request:?} called {called} times, status {}",
                    raw.status()
                ),
            };
            assert_eq!(got, want, "{name}: {request:?}\n{}", raw.text);
        }
    }

    /// `GET target` with `Host: api`, then as [`check`](Fixture::check).
    async fn get(&self, target: &str, allow: Outcome, deny: Outcome) {
        let request = format!("GET {target} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
        self.check(&request, allow, deny).await;
    }
}

#[tokio::test]
async fn control_public_path_is_forwarded_as_is() {
    let f = Fixture::new().await;
    f.get("/public/x", Forwarded("/public/x"), Forwarded("/public/x"))
        .await;
    f.get("/admin/x", Refused(403), Refused(403)).await;
}

#[tokio::test]
async fn d1_slashes_are_merged_before_judging() {
    let f = Fixture::new().await;
    for target in ["//admin", "///admin", "/public//../admin", "//admin//x"] {
        f.get(target, Refused(403), Refused(403)).await;
    }
    f.get("/public//x", Forwarded("/public/x"), Forwarded("/public/x"))
        .await;
}

#[tokio::test]
async fn d2_dot_segments_are_removed() {
    let f = Fixture::new().await;
    for target in [
        "/public/../admin",
        "/public/./../admin",
        "/public/x/../../admin/y",
    ] {
        f.get(target, Refused(403), Refused(403)).await;
    }
    f.get(
        "/public/./a/../b",
        Forwarded("/public/b"),
        Forwarded("/public/b"),
    )
    .await;
}

#[tokio::test]
async fn d3_encoded_dots_are_decoded_then_removed() {
    let f = Fixture::new().await;
    for target in [
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/%2e./admin",
    ] {
        f.get(target, Refused(403), Refused(403)).await;
    }
    // Unreserved escapes are decoded in what is forwarded, too.
    f.get(
        "/%70ublic/%78",
        Forwarded("/public/x"),
        Forwarded("/public/x"),
    )
    .await;
}

#[tokio::test]
async fn d4_paths_above_the_root_are_400() {
    let f = Fixture::new().await;
    for target in [
        "/..",
        "/../../admin",
        "/public/../../admin",
        "/%2e%2e/admin",
    ] {
        f.get(target, Refused(400), Refused(400)).await;
    }
}

#[tokio::test]
async fn d5_escaped_slashes_are_400() {
    let f = Fixture::new().await;
    for target in [
        "/admin%2Fsecret",
        "/public%2F..%2Fadmin",
        "/public%2f..%2fadmin",
        "/public/x%2F",
    ] {
        f.get(target, Refused(400), Refused(400)).await;
    }
}

#[tokio::test]
async fn d6_backslashes_are_400() {
    let f = Fixture::new().await;
    for target in [
        "/admin%5Csecret",
        "/admin%5csecret",
        "/public\\..\\admin",
        "\\admin",
    ] {
        f.get(target, Refused(400), Refused(400)).await;
    }
}

/// D7: paths are case-sensitive. The vulnerable DENY policy lets `/ADMIN` through, and the
/// application receives `/ADMIN` (so only a case-insensitive backend is exposed); the
/// ALLOW-positive policy refuses it.
#[tokio::test]
async fn d7_case_is_preserved() {
    let f = Fixture::new().await;
    f.get("/ADMIN", Refused(403), Forwarded("/ADMIN")).await;
    f.get("/Admin/x", Refused(403), Forwarded("/Admin/x")).await;
    f.get("/PUBLIC/x", Refused(403), Forwarded("/PUBLIC/x"))
        .await;
}

/// D8: the `http` crate drops a raw `#fragment` while parsing the request-target, so the
/// request is judged, and forwarded, without it: never as `/admin%23frag`.
#[tokio::test]
async fn d8_fragments_are_dropped_before_judging() {
    let f = Fixture::new().await;
    f.get("/admin#frag", Refused(403), Refused(403)).await;
    f.get("/admin/x#/../../public", Refused(403), Refused(403))
        .await;
    f.get(
        "/public/x#/../../admin",
        Forwarded("/public/x"),
        Forwarded("/public/x"),
    )
    .await;
}

#[tokio::test]
async fn d9_the_query_is_not_matched_and_passes_unchanged() {
    let f = Fixture::new().await;
    for target in ["/admin?x=1", "/admin?/public", "/admin?/public/../x"] {
        f.get(target, Refused(403), Refused(403)).await;
    }
    f.get(
        "/public/x?/admin&y=%2e%2e/..//",
        Forwarded("/public/x?/admin&y=%2e%2e/..//"),
        Forwarded("/public/x?/admin&y=%2e%2e/..//"),
    )
    .await;
}

/// D11: `%00` in the path is always 400. In the query it is forwarded verbatim: the query is
/// never matched, so it cannot change a decision (the normalizer refuses only a raw NUL there).
#[tokio::test]
async fn d11_nul_in_the_path_is_400() {
    let f = Fixture::new().await;
    for target in ["/admin%00.json", "/public/x%00", "/public/%00/../x"] {
        f.get(target, Refused(400), Refused(400)).await;
    }
    let query = Forwarded("/public/x?a=%00");
    f.get("/public/x?a=%00", query, query).await;
}

/// D14: raw control characters, spaces and tabs in the request-target: hyper's parser answers
/// 400 before any service runs.
#[tokio::test]
async fn d14_raw_control_characters_are_400_from_hyper() {
    let f = Fixture::new().await;
    for target in [
        "/public/a\x01b",
        "/public/a\tb",
        "/public/a b",
        "/public/a\x7fb",
        "/public/a\x00b",
        "/public/a\rb",
    ] {
        f.get(target, Refused(400), Refused(400)).await;
    }
    // Characters hyper lets through that the normalizer refuses.
    for target in ["/public/a\"b", "/public/{a}", "/public/a|b", "/public/a^b"] {
        f.get(target, Refused(400), Refused(400)).await;
    }
}

#[tokio::test]
async fn d15_absolute_form_must_agree_with_host() {
    let f = Fixture::new().await;
    let conflict = "GET http://other/admin HTTP/1.1\r\nHost: public\r\nConnection: close\r\n\r\n";
    f.check(conflict, Refused(400), Refused(400)).await;
    let port = "GET http://api:8443/public/x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    f.check(port, Refused(400), Refused(400)).await;
    let two = "GET /public/x HTTP/1.1\r\nHost: api\r\nHost: admin\r\nConnection: close\r\n\r\n";
    f.check(two, Refused(400), Refused(400)).await;
    // One authority: judged (canonically, `API` is `api`) and forwarded in absolute form with
    // the normalized path; only the path is rewritten, the authority stays as sent.
    let agree = "GET http://API/public//x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    f.check(
        agree,
        Forwarded("http://API/public/x"),
        Forwarded("http://API/public/x"),
    )
    .await;
}

#[tokio::test]
async fn d16_asterisk_form_and_connect_are_400() {
    let f = Fixture::new().await;
    let options = "OPTIONS * HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    f.check(options, Refused(400), Refused(400)).await;
    let connect = "CONNECT api:443 HTTP/1.1\r\nHost: api:443\r\n\r\n";
    f.check(connect, Refused(400), Refused(400)).await;
    // Authority-form on another method.
    let authority = "GET api:443 HTTP/1.1\r\nHost: api:443\r\nConnection: close\r\n\r\n";
    f.check(authority, Refused(400), Refused(400)).await;
}

#[tokio::test]
async fn d18_lowercase_method_is_400() {
    let f = Fixture::new().await;
    for method in ["get", "Get", "delete", "pOST"] {
        let request =
            format!("{method} /public/x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
        f.check(&request, Refused(400), Refused(400)).await;
    }
}

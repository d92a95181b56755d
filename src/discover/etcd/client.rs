//! A small client for etcd's v3 JSON gateway: unary POSTs and the streaming watch.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::de::DeserializeOwned;

use super::error::{ConfigError, EtcdError};
use super::member::{Member, parse};

/// The etcd cluster to talk to: one or more member URLs and a request timeout.
///
/// Requests go to one member; when it cannot be reached (connection refused, reset, timeout)
/// the next URL is tried, and the member that last answered is tried first next time. Only
/// plain `http://host:port` URLs are supported (etcd's `--listen-client-urls` without TLS):
/// the client speaks etcd's v3 JSON gateway over HTTP/1.1.
///
/// Cheap to clone; clones share which member is tried first.
///
/// # Defaults
///
/// - request timeout: 5 s, for connecting and for each unary request (the watch stream itself
///   has no timeout: a quiet prefix is normal; [`Builder::watch_liveness`](super::Builder::watch_liveness)
///   checks it instead). Long enough for an etcd under load, short enough that a dead member is
///   left for the next one while a lease of a few seconds survives.
/// - TCP keepalive on every connection: first probe after 30 s without traffic, then every
///   10 s, and the connection fails after 3 unanswered probes, so the kernel notices a peer that
///   vanished without a FIN or RST (a powered-off host, a NAT or load balancer that dropped the
///   flow) within about a minute instead of the system default of over two hours.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tower_mesh::discover::etcd::Cluster;
///
/// let cluster = Cluster::new(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])?
///     .request_timeout(Duration::from_secs(2))?;
/// # Ok::<(), tower_mesh::discover::etcd::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Cluster {
    members: Arc<[Member]>,
    first: Arc<AtomicUsize>,
    timeout: Duration,
    connector: HttpConnector,
}

impl Cluster {
    /// The default request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

    /// A cluster reached at these URLs (`http://host:port`, host a name or an IP address).
    pub fn new<I>(urls: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let members = urls
            .into_iter()
            .map(|u| Member::parse(u.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if members.is_empty() {
            return Err(ConfigError::NoUrls);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(KEEPALIVE_IDLE));
        connector.set_keepalive_interval(Some(KEEPALIVE_INTERVAL));
        connector.set_keepalive_retries(Some(KEEPALIVE_RETRIES));
        Ok(Cluster {
            members: members.into(),
            first: Arc::default(),
            timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            connector,
        })
    }

    /// Sets the timeout for connecting and for each unary request; zero is refused.
    pub fn request_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::ZeroRequestTimeout(timeout));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The member URLs, as given.
    pub fn urls(&self) -> impl ExactSizeIterator<Item = &str> {
        self.members.iter().map(|m| m.url.as_str())
    }

    /// One unary gateway call: POST `body` as JSON to `path`, parse the JSON answer. Tries each
    /// member in turn while they cannot be reached; an answer from etcd, even an error, ends it.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        path: &'static str,
        body: &serde_json::Value,
    ) -> Result<T, EtcdError> {
        self.call_from(path, body)
            .await
            .map(|(answer, _url)| answer)
    }

    /// [`call`](Self::call), also naming the member that answered.
    pub(crate) async fn call_from<T: DeserializeOwned>(
        &self,
        path: &'static str,
        body: &serde_json::Value,
    ) -> Result<(T, &str), EtcdError> {
        let body = Bytes::from(body.to_string());
        let mut last = None;
        for member in self.in_order() {
            match self.exchange(member, path, body.clone()).await {
                Ok((status, bytes)) if status == StatusCode::OK => {
                    self.answered(member);
                    return parse(member, path, &bytes).map(|answer| (answer, member.url.as_str()));
                }
                Ok((status, bytes)) if status != StatusCode::SERVICE_UNAVAILABLE => {
                    self.answered(member);
                    return Err(member.server_error(path, status, &bytes));
                }
                Ok((status, bytes)) => last = Some(member.server_error(path, status, &bytes)),
                Err(e) => last = Some(e),
            }
        }
        // `in_order` yields at least one member: `new` refuses an empty list.
        Err(last.unwrap_or(EtcdError::Config(ConfigError::NoUrls)))
    }

    /// One unary call to the member at `url` only, on a new connection, within the request
    /// timeout: the watch's liveness check, which must ask the member the watch is on, not
    /// whichever answers.
    pub(crate) async fn probe(
        &self,
        url: &str,
        path: &'static str,
        body: &serde_json::Value,
    ) -> Result<(), EtcdError> {
        let Some(member) = self.members.iter().find(|m| m.url == url) else {
            return Err(EtcdError::Config(ConfigError::InvalidUrl {
                url: url.to_owned(),
                reason: "not a member of this cluster",
            }));
        };
        let body = Bytes::from(body.to_string());
        match self.exchange(member, path, body).await? {
            (StatusCode::OK, bytes) => {
                parse::<super::proto::Ignored>(member, path, &bytes).map(drop)
            }
            (status, bytes) => Err(member.server_error(path, status, &bytes)),
        }
    }

    /// POSTs `body` to one member and reads the whole answer, within the request timeout.
    async fn exchange(
        &self,
        member: &Member,
        path: &'static str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), EtcdError> {
        let attempt = async {
            let (status, incoming) = member.post(&self.connector, path, body).await?;
            let bytes = Limited::new(incoming, MAX_BODY)
                .collect()
                .await
                .map_err(|e| member.transport(e))?
                .to_bytes();
            Ok::<_, EtcdError>((status, bytes))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(member.timeout(path, self.timeout)),
        }
    }

    /// Opens a watch stream with this `create_request`, trying each member in turn.
    pub(crate) async fn watch(&self, body: &serde_json::Value) -> Result<Lines, EtcdError> {
        const PATH: &str = "/v3/watch";
        let body = Bytes::from(body.to_string());
        let mut last = None;
        for member in self.in_order() {
            let post = member.post(&self.connector, PATH, body.clone());
            let result = match tokio::time::timeout(self.timeout, post).await {
                Ok(r) => r,
                Err(_) => Err(member.timeout(PATH, self.timeout)),
            };
            match result {
                Ok((StatusCode::OK, body)) => {
                    self.answered(member);
                    return Ok(Lines {
                        url: member.url.clone(),
                        body,
                        buf: Vec::new(),
                    });
                }
                Ok((status, body)) => {
                    let bytes =
                        tokio::time::timeout(self.timeout, Limited::new(body, MAX_BODY).collect())
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                    last = Some(member.server_error(PATH, status, &bytes));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(EtcdError::Config(ConfigError::NoUrls)))
    }

    fn in_order(&self) -> impl Iterator<Item = &Member> {
        let n = self.members.len();
        let first = self.first.load(Ordering::Relaxed) % n;
        (0..n).map(move |i| &self.members[(first + i) % n])
    }

    fn answered(&self, member: &Member) {
        if let Some(i) = self.members.iter().position(|m| std::ptr::eq(m, member)) {
            self.first.store(i, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("urls", &self.urls().collect::<Vec<_>>())
            .field("request_timeout", &self.timeout)
            .finish()
    }
}

/// A streaming answer read one newline-delimited JSON object at a time, as the gateway writes
/// server streams (`{"result":{...}}` or `{"error":{...}}` per line).
pub(crate) struct Lines {
    url: String,
    body: Incoming,
    buf: Vec<u8>,
}

impl Lines {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The next line, without its newline; `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, EtcdError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(EtcdError::Transport {
                        url: self.url.clone(),
                        source: e.into(),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        if self.buf.len() + data.remaining() > MAX_BODY {
                            return Err(EtcdError::Response {
                                url: self.url.clone(),
                                path: "/v3/watch",
                                reason: format!("a watch response exceeds {MAX_BODY} bytes"),
                            });
                        }
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines").field("url", &self.url).finish()
    }
}

/// Base64 of a key or value, as the gateway's JSON carries `bytes` fields.
pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes a base64 `bytes` field.
pub(crate) fn unb64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    B64.decode(text)
}

/// How long a connection may be quiet before the kernel sends a keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// The time between unanswered keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How many unanswered keepalive probes fail the connection.
const KEEPALIVE_RETRIES: u32 = 3;

/// The largest answer read: far above etcd's own 1.5 MiB request limit times a prefix of
/// thousands of keys, low enough that a wrong server cannot exhaust memory.
const MAX_BODY: usize = 64 << 20;

//! One cluster member: its URL, and one HTTP/1.1 exchange with it on a new connection.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use super::error::{ConfigError, EtcdError, shown};

/// One member's URL, parsed.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) url: String,
    /// The URL as the connector takes it.
    uri: Uri,
    authority: String,
}

impl Member {
    pub(super) fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported; use http://host:port")),
            _ => return Err(bad("scheme must be http")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not supported"));
        }
        if authority.port_u16().is_none() {
            return Err(bad("no port"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("must not have a path or query"));
        }
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        Ok(Member {
            url: url.to_owned(),
            authority: authority.as_str().to_owned(),
            uri,
        })
    }

    /// Connects, sends one POST, and returns the status and the body still to be read. A new
    /// connection per request: these are rare (a range, a watch, a lease renewal every few
    /// seconds), and a fresh connection never finds a stale pooled one after etcd restarts.
    ///
    /// The connector sets TCP keepalive and `TCP_NODELAY` on the socket; see [`Cluster`]'s
    /// defaults.
    pub(super) async fn post(
        &self,
        connector: &HttpConnector,
        path: &'static str,
        body: Bytes,
    ) -> Result<(StatusCode, Incoming), EtcdError> {
        let io = connector
            .clone()
            .oneshot(self.uri.clone())
            .await
            .map_err(|e| EtcdError::Connect {
                url: self.url.clone(),
                source: io_error(e),
            })?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.transport(e))?;
        // The connection task ends when the response body and `send` are dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "etcd connection closed");
            }
        });
        let request = Request::post(path)
            .header(hyper::header::HOST, self.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| self.transport(e))?;
        let response = send
            .send_request(request)
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        Ok((status, response.into_body()))
    }

    pub(super) fn transport(&self, e: impl Into<crate::BoxError>) -> EtcdError {
        EtcdError::Transport {
            url: self.url.clone(),
            source: e.into(),
        }
    }

    pub(super) fn timeout(&self, path: &'static str, timeout: Duration) -> EtcdError {
        EtcdError::Timeout {
            url: self.url.clone(),
            path,
            timeout,
        }
    }

    pub(super) fn server_error(
        &self,
        path: &'static str,
        status: StatusCode,
        body: &[u8],
    ) -> EtcdError {
        #[derive(Deserialize)]
        struct GatewayError {
            #[serde(default)]
            code: i32,
            #[serde(default)]
            message: String,
        }
        let (code, message) = match serde_json::from_slice::<GatewayError>(body) {
            Ok(e) if !e.message.is_empty() => (e.code, e.message),
            _ => (0, shown(body)),
        };
        EtcdError::Server {
            url: self.url.clone(),
            path,
            status: status.as_u16(),
            code,
            message,
        }
    }
}

/// Parses a 200 answer's JSON.
pub(super) fn parse<T: DeserializeOwned>(
    member: &Member,
    path: &'static str,
    bytes: &[u8],
) -> Result<T, EtcdError> {
    serde_json::from_slice(bytes).map_err(|e| EtcdError::Response {
        url: member.url.clone(),
        path,
        reason: format!("{e} in {:?}", shown(bytes)),
    })
}

/// The connector's error as an I/O error of the kind of the I/O error under it (connection
/// refused, timed out, ...), keeping the connector's message and cause.
fn io_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> std::io::Error {
    let mut kind = std::io::ErrorKind::Other;
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            kind = io.kind();
            break;
        }
        source = cause.source();
    }
    std::io::Error::new(kind, e)
}

//! A client of the local API, for the CLI and for tests: one HTTP/1.1 request per connection,
//! over the node's Unix socket or loopback TCP with its bearer token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::config::NodeConfig;

/// Largest response read.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node is not reachable (not running, wrong socket path, permissions).
    #[error(
        "cannot reach the node's local API at {target}: {source} (is `estafette node run` running?)"
    )]
    Connect {
        /// Where we tried.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The token file could not be read.
    #[error(transparent)]
    Token(#[from] crate::files::FileError),
    /// HTTP failed.
    #[error("local API: {0}")]
    Http(String),
    /// The node answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Message.
        message: String,
    },
}

/// Where the API is.
#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    Tcp(SocketAddr, String),
}

/// A local API client.
#[derive(Debug, Clone)]
pub struct ApiClient {
    target: Target,
}

impl ApiClient {
    /// The API of the node configured by `config`.
    pub fn from_config(config: &NodeConfig) -> Result<Self, ClientError> {
        let target = match (config.api.tcp, &config.api.token_file) {
            (Some(addr), Some(token)) => {
                let t = crate::files::read_secret(token, 4096)?;
                Target::Tcp(addr, String::from_utf8_lossy(&t).trim().to_owned())
            }
            _ => Target::Unix(config.api.socket.clone()),
        };
        Ok(Self { target })
    }

    /// `GET path`; returns the JSON body of a 2xx answer.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request("GET", path, None).await
    }

    /// Every message of the inbox, oldest first, read a page of 1,000 at a time.
    pub async fn inbox(&self) -> Result<Vec<Value>, ClientError> {
        let mut all = Vec::new();
        let mut path = "/v1/inbox?limit=1000".to_owned();
        loop {
            let page = self.get(&path).await?;
            if let Some(messages) = page["messages"].as_array() {
                all.extend(messages.iter().cloned());
            }
            match page["next"].as_u64() {
                Some(next) => path = format!("/v1/inbox?limit=1000&after={next}"),
                None => return Ok(all),
            }
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let body = Bytes::from(body.to_string());
        self.request("POST", path, Some(("application/json", body)))
            .await
    }

    /// Sends a letter whose content is `content` as is (no base64): `POST /v1/messages` with
    /// the metadata in the query string and `content_type` as the body's type.
    pub async fn send_raw(
        &self,
        meta: &crate::api::RawSendQuery,
        content_type: &str,
        content: Vec<u8>,
    ) -> Result<Value, ClientError> {
        let query =
            serde_urlencoded::to_string(meta).map_err(|e| ClientError::Http(e.to_string()))?;
        let path = format!("/v1/messages?{query}");
        self.request("POST", &path, Some((content_type, Bytes::from(content))))
            .await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Value, ClientError> {
        tokio::time::timeout(TIMEOUT, self.request_inner(method, path, body))
            .await
            .map_err(|_| ClientError::Http(format!("no answer within {TIMEOUT:?}")))?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Value, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header("content-type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let (status, bytes) = match &self.target {
            Target::Unix(p) => {
                let stream = tokio::net::UnixStream::connect(p).await.map_err(|source| {
                    ClientError::Connect {
                        target: p.display().to_string(),
                        source,
                    }
                })?;
                send(stream, req, body).await?
            }
            Target::Tcp(addr, token) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|source| ClientError::Connect {
                        target: addr.to_string(),
                        source,
                    })?;
                send(
                    stream,
                    req.header("authorization", format!("Bearer {token}")),
                    body,
                )
                .await?
            }
        };
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let field = |k: &str| {
            value
                .pointer(&format!("/error/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Err(ClientError::Api {
            status,
            code: field("code"),
            message: field("message"),
        })
    }
}

async fn send<S>(
    stream: S,
    req: hyper::http::request::Builder,
    body: Bytes,
) -> Result<(u16, Bytes), ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(&e))?;
    let driver = tokio::spawn(conn);
    let req = req.body(Full::new(body)).map_err(|e| http(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| http(&e))?;
    let status = resp.status().as_u16();
    let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| http(&e))?
        .to_bytes();
    driver.abort();
    Ok((status, bytes))
}

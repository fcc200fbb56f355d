//! The local API: HTTP/1.1 with JSON, on a Unix socket (default, mode 0660) or on loopback TCP
//! with a bearer token. Used by the `estafette` CLI and by bureaus' case-management systems.
//! `docs/API.md` documents every route.
//!
//! Errors are JSON `{"error": {"code": "...", "message": "..."}}` with a stable `code`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequest as _;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use estafette_packet::{Body, Handling, PacketId, Precedence};
use estafette_store::{Progress, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::node::{NodeError, Shared, Submission, now_ms, open_stored};

/// Default lifetime of a message when the submitter gives none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 86_400);

/// An API error: HTTP status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Submit(m) => Self::bad_request(m),
            NodeError::Seal(e) => Self::bad_request(e.to_string()),
            NodeError::Store(ref s) if s.is_out_of_room() => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                e.to_string(),
            ),
            NodeError::Store(StoreError::Unavailable { .. }) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            NodeError::Audit(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                e.to_string(),
            ),
            NodeError::Store(StoreError::TooLarge { .. }) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            e => {
                tracing::error!(error = %e, "local API request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

/// `POST /v1/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Bureau codes and group names.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Case reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_ref: Option<String>,
    /// Packet id (hex) this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// `flash`, `immediate`, `priority` or `routine` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<Precedence>,
    /// Lifetime, e.g. `90s`, `12h`, `7d` (default 7d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// MIME type (default `text/plain; charset=utf-8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Text content (exclusive with `content_base64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Binary content, base64 (exclusive with `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// Classification label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
}

/// `POST /v1/messages` with the content as the raw body: the fields of [`SendRequest`] but the
/// content, in the query string (`to` comma-separated), the body's `Content-Type` as the
/// letter's. No base64: a 60 MiB file goes as 60 MiB, not as 80 MiB of JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSendQuery {
    /// Bureau codes and group names, comma-separated.
    #[serde(default)]
    pub to: String,
    /// Subject line.
    #[serde(default)]
    pub subject: String,
    /// Case reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_ref: Option<String>,
    /// Packet id (hex) this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// `flash`, `immediate`, `priority` or `routine` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<Precedence>,
    /// Lifetime, e.g. `90s`, `12h`, `7d` (default 7d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Classification label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
}

/// Parses a message lifetime: `90s`, `15m`, `12h`, `7d`, between 1 s and 366 days.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s).map_err(|e| format!("ttl {e}"))
}

async fn send(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<RawSendQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request("the Content-Type header is not text"))
        })
        .transpose()?;
    let is_json = content_type
        .as_deref()
        .is_none_or(|t| t.to_ascii_lowercase().starts_with("application/json"));
    if is_json {
        let req: Result<Json<SendRequest>, JsonRejection> = Json::from_request(request, &()).await;
        let Json(req) = req.map_err(|e| ApiError::bad_request(e.body_text()))?;
        return send_json(&shared, req).await;
    }
    // Any other type is the content itself, its metadata in the query string.
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if q.to.trim().is_empty() || q.subject.is_empty() {
        return Err(ApiError::bad_request(
            "a raw upload needs ?to=…&subject=… in the query string (to: codes and groups, comma-separated)",
        ));
    }
    let body = axum::body::Bytes::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let req = SendRequest {
        to: q
            .to
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        subject: q.subject,
        case_ref: q.case_ref,
        in_reply_to: q.in_reply_to,
        precedence: q.precedence,
        ttl: q.ttl,
        content_type,
        text: None,
        content_base64: None,
        classification: q.classification,
    };
    submit(&shared, req, body.into()).await
}

/// `POST /v1/messages` with a JSON body.
async fn send_json(shared: &Shared, req: SendRequest) -> Result<Response, ApiError> {
    let content = match (req.text.clone(), req.content_base64.as_deref()) {
        (Some(t), None) => t.into_bytes(),
        (None, Some(b)) => B64
            .decode(b)
            .map_err(|e| ApiError::bad_request(format!("content_base64: {e}")))?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of text and content_base64",
            ));
        }
    };
    submit(shared, req, content).await
}

/// Seals and stores one letter; answers 201 with its id once it is durable.
async fn submit(shared: &Shared, req: SendRequest, content: Vec<u8>) -> Result<Response, ApiError> {
    let ttl = req
        .ttl
        .as_deref()
        .map(parse_ttl)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or(DEFAULT_TTL);
    let in_reply_to = req
        .in_reply_to
        .as_deref()
        .map(str::parse::<PacketId>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("in_reply_to: {e}")))?;
    let id = shared
        .submit(Submission {
            to: req.to,
            subject: req.subject,
            case_ref: req.case_ref,
            in_reply_to,
            precedence: req.precedence.unwrap_or(Precedence::Routine),
            ttl,
            content_type: req
                .content_type
                .unwrap_or_else(|| "text/plain; charset=utf-8".into()),
            content,
            handling: Handling {
                classification: req.classification.unwrap_or_default(),
                ..Handling::default()
            },
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id.to_string()}))).into_response())
}

fn parse_id(id: &str) -> Result<PacketId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a packet id (32 hex digits)")))
}

async fn message_status(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let status = shared.with_store(move |s| s.status(&id)).await?;
    let Some(st) = status else {
        return Err(ApiError::not_found(format!(
            "no message {id} was sent from this node"
        )));
    };
    let recipients: Vec<_> = st
        .recipients
        .iter()
        .map(|(code, p)| match p {
            Progress::Queued => json!({"bureau": code.as_str(), "state": "queued"}),
            Progress::Forwarded { at_ms } => {
                json!({"bureau": code.as_str(), "state": "forwarded", "at_ms": at_ms})
            }
            Progress::Delivered { at_ms } => {
                json!({"bureau": code.as_str(), "state": "delivered", "at_ms": at_ms})
            }
            Progress::Failed { reason } => {
                json!({"bureau": code.as_str(), "state": "failed", "reason": reason})
            }
        })
        .collect();
    let delivered = st
        .recipients
        .iter()
        .all(|(_, p)| matches!(p, Progress::Delivered { .. }));
    Ok(Json(json!({
        "id": id.to_string(),
        "submitted_at_ms": st.submitted_at_ms,
        "expires_at_ms": st.expires_at_ms,
        "delivered": delivered,
        "recipients": recipients,
    }))
    .into_response())
}

/// `GET /v1/inbox?limit=N&after=C`: at most `N` messages, oldest first, after cursor `C`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    limit: Option<usize>,
    after: Option<u64>,
}

/// Messages listed when the request names no limit; each is decrypted to show its subject.
const INBOX_DEFAULT_LIMIT: usize = 100;
/// The most messages one request lists.
const INBOX_MAX_LIMIT: usize = 1_000;

async fn inbox(
    State(shared): State<Arc<Shared>>,
    q: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(INBOX_DEFAULT_LIMIT);
    if limit == 0 || limit > INBOX_MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {INBOX_MAX_LIMIT}, not {limit}"
        )));
    }
    let after = q.after.unwrap_or(0);
    let items = shared.with_store(move |s| s.inbox(after, limit)).await?;
    // A full page may have more behind it: its last cursor continues the listing.
    let next = (items.len() == limit)
        .then(|| items.last().map(|i| i.seq))
        .flatten();
    let mut out = Vec::new();
    for item in items {
        let (packet, opened) = open_stored(&shared, &item.bytes)?;
        if let Body::Letter(l) = opened.body {
            let h = packet.header();
            out.push(json!({
                "id": h.id.to_string(),
                "origin": h.origin.as_str(),
                "subject": l.subject,
                "case_ref": l.case_ref,
                "precedence": h.precedence,
                "created_at_ms": h.created_at_ms,
                "received_at_ms": item.entry.received_at_ms,
                "size": l.content.len(),
            }));
        }
    }
    Ok(Json(json!({"messages": out, "next": next})).into_response())
}

async fn find_in_inbox(
    shared: &Arc<Shared>,
    id: PacketId,
) -> Result<(u64, Body, estafette_packet::Packet), ApiError> {
    if let Some(item) = shared.with_store(move |s| s.find_in_inbox(&id)).await? {
        let (packet, opened) = open_stored(shared, &item.bytes)?;
        return Ok((item.seq, opened.body, packet));
    }
    Err(ApiError::not_found(format!(
        "message {id} is not in the inbox"
    )))
}

async fn inbox_read(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (_, body, packet) = find_in_inbox(&shared, id).await?;
    let Body::Letter(l) = body else {
        return Err(ApiError::not_found(format!("message {id} is not a letter")));
    };
    let h = packet.header();
    let content = match std::str::from_utf8(&l.content) {
        Ok(t) if l.content_type.starts_with("text/") => json!({"text": t}),
        _ => json!({"content_base64": B64.encode(&l.content)}),
    };
    let mut v = json!({
        "id": h.id.to_string(),
        "origin": h.origin.as_str(),
        "recipients": h.recipients.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "subject": l.subject,
        "case_ref": l.case_ref,
        "in_reply_to": l.in_reply_to.map(|i| i.to_string()),
        "precedence": h.precedence,
        "classification": h.handling.classification,
        "created_at_ms": h.created_at_ms,
        "content_type": l.content_type,
    });
    if let (Some(o), Some(c)) = (v.as_object_mut(), content.as_object()) {
        o.extend(c.clone());
    }
    Ok(Json(v).into_response())
}

async fn inbox_ack(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (seq, _, _) = find_in_inbox(&shared, id).await?;
    shared.with_store(move |s| s.ack_inbox(seq)).await?;
    Ok(Json(json!({"id": id.to_string(), "acked": true})).into_response())
}

/// `GET /metrics`: Prometheus / OpenMetrics text.
async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let counts = shared.with_store(|s| s.counts()).await?;
    let peers_state = shared
        .peers
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let roster = shared.roster();
    let peers = roster
        .bureaus
        .iter()
        .filter(|b| b.code != shared.me)
        .map(|b| {
            let depth = counts
                .outbox
                .iter()
                .find(|(p, _)| p == b.code.as_str())
                .map_or(0, |(_, n)| *n);
            let connected = peers_state.get(&b.code).is_some_and(|p| p.connected);
            (b.code.to_string(), depth, connected)
        })
        .collect();
    let audit = {
        let a = shared.audit.clone();
        tokio::task::spawn_blocking(move || a.state())
            .await
            .map_err(|e| ApiError::from(NodeError::Internal(e.to_string())))?
    };
    let snapshot = crate::metrics::Snapshot {
        packets: counts.packets,
        inbox: counts.inbox,
        store_bytes: counts.bytes,
        peers,
        audit_appends: audit.appends,
        audit_failures: audit.failures,
        audit_alarm: audit.alarm,
    };
    let text = shared
        .metrics
        .render(&snapshot)
        .map_err(|e| ApiError::from(NodeError::Internal(format!("encoding metrics: {e}"))))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn status(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let counts = shared.with_store(|s| s.counts()).await?;
    let roster = shared.roster();
    let peers_state = shared
        .peers
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut peers = Vec::new();
    for b in roster.bureaus.iter().filter(|b| b.code != shared.me) {
        let st = peers_state.get(&b.code).cloned().unwrap_or_default();
        let depth = counts
            .outbox
            .iter()
            .find(|(p, _)| p == b.code.as_str())
            .map_or(0, |(_, n)| *n);
        let oldest = if depth > 0 {
            let code = b.code.clone();
            shared.with_store(move |s| s.oldest_queued(&code)).await?
        } else {
            None
        };
        peers.push(json!({
            "bureau": b.code.as_str(),
            "address": b.address,
            "connected": st.connected,
            "last_seen_ms": st.last_seen_ms,
            "failures": st.failures,
            "last_error": st.last_error,
            "outbox": depth,
            "oldest_queued_ms": oldest,
        }));
    }
    let audit = {
        let a = shared.audit.clone();
        tokio::task::spawn_blocking(move || a.state())
            .await
            .map_err(|e| ApiError::from(NodeError::Internal(e.to_string())))?
    };
    Ok(Json(json!({
        "bureau": shared.me.as_str(),
        "network": roster.network.as_str(),
        "roster_version": roster.version,
        "now_ms": now_ms(),
        "packets_stored": counts.packets,
        "inbox": counts.inbox,
        "peers": peers,
        "refusals": shared
            .metrics
            .refusals()
            .into_iter()
            .map(|((by, reason), n)| json!({"by": by, "reason": reason, "count": n}))
            .collect::<Vec<_>>(),
        "audit": {
            "entries": audit.entries,
            "appends": audit.appends,
            "failures": audit.failures,
            "alarm": audit.alarm,
            "last_error": audit.last_error,
            "policy": audit.policy,
        },
    }))
    .into_response())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such route; see docs/API.md")
}

/// The API's routes over a node's shared state.
pub(crate) fn router(shared: Arc<Shared>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/messages", post(send))
        .route("/v1/messages/{id}", get(message_status))
        .route("/v1/inbox", get(inbox))
        .route("/v1/inbox/{id}", get(inbox_read))
        .route("/v1/inbox/{id}/ack", post(inbox_ack))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(fallback)
        // JSON with base64 content is 4/3 of the content, plus the other fields.
        .layer(DefaultBodyLimit::max(max_body / 3 * 4 + 64 * 1024))
        .with_state(shared)
}

async fn require_token(
    State(token): State<Arc<Vec<u8>>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes)
        .unwrap_or_default();
    // Compare in time independent of where the first difference is.
    let same = given.len() == token.len()
        && given
            .iter()
            .zip(token.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
        .into_response()
    }
}

/// The API's bound listener.
pub(crate) enum Listener {
    /// A Unix socket (removed at shutdown).
    Unix(tokio::net::UnixListener, std::path::PathBuf),
    /// Loopback TCP, with the bearer token clients must present.
    Tcp(tokio::net::TcpListener, Vec<u8>),
}

/// Binds the API as configured (so a node that cannot serve its API does not start).
pub(crate) async fn bind(config: &crate::config::NodeConfig) -> Result<Listener, NodeError> {
    if let Some(addr) = config.api.tcp {
        let token_path = config
            .api
            .token_file
            .clone()
            .ok_or_else(|| NodeError::Internal("api.token_file unset".into()))?;
        let token = crate::files::read_secret(&token_path, 4096)
            .map_err(crate::network::NetworkError::from)?;
        let token: Vec<u8> = String::from_utf8_lossy(&token).trim().as_bytes().to_vec();
        if token.len() < 16 {
            return Err(NodeError::Internal(format!(
                "{}: the token must be at least 16 characters",
                token_path.display()
            )));
        }
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            NodeError::Internal(format!("cannot listen on {addr} for the local API: {e}"))
        })?;
        tracing::info!(%addr, "local API listening (TCP, bearer token)");
        Ok(Listener::Tcp(listener, token))
    } else {
        let path = config.api.socket.clone();
        let listener = bind_unix(&path)?;
        tracing::info!(socket = %path.display(), "local API listening (Unix socket)");
        Ok(Listener::Unix(listener, path))
    }
}

/// Serves the API until `stop` turns true.
pub(crate) async fn serve(
    listener: Listener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let app = router(shared.clone(), shared.config().max_packet_size);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = match listener {
        Listener::Tcp(listener, token) => {
            let app = app.layer(middleware::from_fn_with_state(
                Arc::new(token),
                require_token,
            ));
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Listener::Unix(listener, path) => {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
            let _ = std::fs::remove_file(&path);
            r
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "local API stopped");
    }
}

fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, NodeError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let err = |what: &str, e: std::io::Error| {
        NodeError::Internal(format!("local API socket {}: {what}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err("create its directory", e))?;
    }
    match std::fs::symlink_metadata(path) {
        // A socket left by a node that did not stop cleanly.
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| err("remove the stale socket", e))?
        }
        Ok(_) => {
            return Err(NodeError::Internal(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )));
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| err("bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| err("set mode 0660", e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(12 * 3600)));
        for bad in ["", "d", "7", "7w", "0s", "-1d", "400d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}

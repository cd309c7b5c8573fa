//! The one error shape of the HTTP API: `{"error": {"code", "message", "field"?}}` with the
//! matching status. Internal causes are logged, never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use openclaw_common::store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the part at fault when there is one.
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A webhook whose signature does not verify; the message names the header.
    #[error("{0}")]
    BadSignature(String),
    /// A resource only admins read (usage of others, the audit trail).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A quota or budget is reached: 429 with `Retry-After` (seconds).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// NATS is down or JetStream is not set up yet; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("the request took too long")]
    Timeout,
    /// A bug or an unexpected state: logged in full, reported as a bare 500.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::BadSignature(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code; also the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "invalid_request",
            Self::Unauthorized | Self::BadSignature(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::TooManyRequests { .. } => "quota_exceeded",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Contention(_) => {
                tracing::warn!(error = %e, "store unavailable");
                Self::Unavailable(
                    "the task store (NATS JetStream) is unavailable; retry later".into(),
                )
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        if let Self::BadRequest {
            field: Some(field), ..
        } = &self
        {
            error["field"] = json!(field);
        }
        let mut response = (self.status(), axum::Json(json!({ "error": error }))).into_response();
        if let Self::TooManyRequests { retry_after, .. } = &self
            && let Ok(value) = axum::http::HeaderValue::from_str(&retry_after.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
